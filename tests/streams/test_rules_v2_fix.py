"""Contract v2 fix-path rules through the stream worker against the real embedded broker:
approach (rule 4: a fast car with one fix a minute, the episode ending) and implausible jumps
(rule 3: a multipath fix counts as possible; a jump confirmed by the next fix rises to p1).

The decisions themselves are tested in tests/unit/test_rules_v2_fix.py; these prove that the
stream wiring (routing, state, the published revisions and tasks) carries them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from pyproj import Geod

from streams.kafka.broker import EmbeddedBroker
from tests.streams.workers import Feed, WorkerProc, ban, collect, fix, patrol, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(180)]

G = Geod(ellps="WGS84")
KUNGSHOLMEN = (59.3325, 18.0265)  # a school's zone
SUNDBYBERG = (59.3612, 17.9717)  # a home
DANDERYD = (59.4000, 18.0300)  # another home


def fwd(at: tuple[float, float], azimuth: float, metres: float) -> tuple[float, float]:
    lon, lat, _ = G.fwd(at[1], at[0], azimuth, metres)
    return lat, lon


def circle_ban(
    ban_id: str, person: str, centre: tuple[float, float], radius: float, buffer: float
) -> dict[str, Any]:
    zone = {
        "type": "Feature",
        "properties": {"zone_id": "home", "radius_m": radius, "buffer_m": buffer},
        "geometry": {"type": "Point", "coordinates": [centre[1], centre[0]]},
    }
    return ban(
        ban_id,
        person,
        f"{person}V",
        centre[1],
        centre[0],
        electronic_monitoring=False,  # fixes stamped minutes ago must not look like silence
        proximity_m=None,
        zones={"type": "FeatureCollection", "features": [zone]},
    )


@pytest.fixture(scope="module")
def worker(broker: EmbeddedBroker) -> Iterator[tuple[str, Feed]]:
    prefix = f"v2fix{time.monotonic_ns() % 10**8}."
    w = WorkerProc(broker.bootstrap, prefix).start()
    feed = Feed(broker.bootstrap, prefix)
    try:
        yield prefix, feed
    finally:
        feed.close()
        assert w.stop() == 0, "\n".join(w.lines[-30:])


def of_ban(records: list[dict[str, Any]], ban_id: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("ban_id") == ban_id]


def test_a_fast_car_is_warned_and_the_episode_ends_when_it_stops_closing_in(
    broker: EmbeddedBroker, worker: tuple[str, Feed]
) -> None:
    """100 km/h, a fix a minute: 2,167 m then 500 m from zone + buffer (stamped 12 and 11
    minutes ago), then parked there, a fix a minute: one approach alert, ended 300 s after he
    last closed in (the window still held the 2,167 m fix), no revisions while parked."""
    prefix, feed = worker
    feed.send("contact-bans", "KF-V2A", circle_ban("KF-V2A", "P-V2A", KUNGSHOLMEN, 150, 50))
    feed.flush()
    time.sleep(0.5)
    for k, d in enumerate([2166.7, 500.0, *([500.0] * 10)]):
        lat, lon = fwd(KUNGSHOLMEN, 270, 200 + d + (k % 2))
        feed.send("positions", "P-V2A", fix("P-V2A", "EM-V2A", lat, lon, ts(-720 + 60 * k)))
    feed.flush()

    def ended(records: list[dict[str, Any]]) -> bool:
        return any(a["episode"] == "ended" for a in of_ban(records, "KF-V2A"))

    alerts = collect(broker.bootstrap, prefix + "alerts", ended, timeout_s=30, settle_s=1.0)
    approach = [a for a in of_ban(alerts, "KF-V2A") if a["kind"] == "approach"]
    assert approach and len({a["alert_id"] for a in approach}) == 1, alerts
    first = approach[0]
    assert (first["priority"], first["state"]) == (2, "open")
    assert first["distance_m"] == pytest.approx(500, abs=2)
    closer = float(first["reason"].split(", ")[1].split(" m closer")[0])
    assert closer == pytest.approx(1667, abs=2)
    assert [a["episode"] for a in approach] == ["active", "ended"]  # parked: nothing material
    assert "not closing in" in approach[-1]["reason"]
    assert [a["kind"] for a in of_ban(alerts, "KF-V2A")] == ["approach", "approach"]


def test_a_multipath_jump_is_possible_only_and_a_confirmed_jump_rises_to_p1(
    broker: EmbeddedBroker, worker: tuple[str, Feed]
) -> None:
    """Two persons, a fix every 5 s, 300 m outside their zones; each has one fix 20-40 m
    inside zone + buffer, 61 m/s from the previous fix after both accuracies. P-V2J's next
    fixes are back where he stands: p2 `possible` only, no respond task. P-V2K's next fixes
    stay inside, plausible from the jump: the alert rises to p1 and a unit is sent."""
    prefix, feed = worker
    feed.send("contact-bans", "KF-V2J", circle_ban("KF-V2J", "P-V2J", SUNDBYBERG, 60, 30))
    feed.send("contact-bans", "KF-V2K", circle_ban("KF-V2K", "P-V2K", DANDERYD, 60, 30))
    unit = fwd(DANDERYD, 90, 800)
    feed.send("patrol-positions", "SO-V2", patrol("SO-V2", unit[0], unit[1], ts()))
    feed.flush()
    time.sleep(0.5)
    stand_j, stand_k = fwd(SUNDBYBERG, 10, 390), fwd(DANDERYD, 200, 390)
    for k in range(16):
        at = ts(-80 + 5 * k)
        j = fwd(SUNDBYBERG, 10, 70) if k == 8 else fwd(stand_j, 40 * k, 3)
        feed.send("positions", "P-V2J", fix("P-V2J", "EM-V2J", *j, at, accuracy_m=8.0))
        kk = stand_k if k < 8 else fwd(fwd(DANDERYD, 200, 50), 40 * k, 2)
        feed.send("positions", "P-V2K", fix("P-V2K", "EM-V2K", *kk, at, accuracy_m=8.0))
    feed.flush()

    def done(records: list[dict[str, Any]]) -> bool:
        j = of_ban(records, "KF-V2J")
        return any(a["episode"] == "ended" for a in j) and any(
            a["priority"] == 1 for a in of_ban(records, "KF-V2K")
        )

    alerts = collect(broker.bootstrap, prefix + "alerts", done, timeout_s=30, settle_s=1.0)
    j = [a for a in of_ban(alerts, "KF-V2J") if a["kind"] == "zone_breach"]
    assert j and {a["priority"] for a in j} == {2} and {a["confidence"] for a in j} == {"possible"}
    assert "implausible jump" in j[0]["reason"]
    assert j[-1]["episode"] == "ended"
    assert not [a for a in of_ban(alerts, "KF-V2J") if a["kind"] != "zone_breach"]
    k = [a for a in of_ban(alerts, "KF-V2K") if a["kind"] == "zone_breach"]
    assert (k[0]["priority"], k[0]["confidence"]) == (2, "possible")
    assert (k[1]["priority"], k[1]["confidence"]) == (1, "confirmed")
    tasks = collect(
        broker.bootstrap,
        prefix + "patrol-tasks",
        lambda r: any(t["kind"] == "respond" for t in of_ban(r, "KF-V2K")),
        timeout_s=15,
        settle_s=1.0,
    )
    assert not of_ban(tasks, "KF-V2J")
    [respond] = [t for t in of_ban(tasks, "KF-V2K") if t["kind"] == "respond" and t["seq"] == 1]
    assert respond["unit_id"] == "SO-V2" and respond["alert_id"] == k[0]["alert_id"]
