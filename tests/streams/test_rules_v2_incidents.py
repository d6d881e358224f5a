"""Contract v2 rules 7-9 in the stream: two `banwatch worker` processes on the real broker.

Bans reach every worker through the group-less ban feed, but a ban's state lives only in the
worker that owns its restrained person's partition: the end of a ban must be published by that
worker, exactly once, and the validity timer must fire there. An SOS from a person protected
by two bans whose restrained persons live on different partitions (and so, with two workers
sharing four partitions, on different workers or at least in different states) must send one
respond and one protect in all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.kafka.broker import EmbeddedBroker
from streams.worker.routing import partition_for
from tests.streams.workers import Feed, WorkerProc, ban, collect, fix, patrol, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]

LAT, LON = 59.3600, 18.0000  # Solna


def _adopted(w: WorkerProc) -> list[int]:
    lines = [x for x in w.lines if "adopted:" in x]
    if not lines:
        return []
    inside = lines[-1].split("partitions [", 1)[1].split("]", 1)[0]
    return [int(p) for p in inside.split(",") if p.strip()]


@pytest.fixture(scope="module")
def two_workers(broker: EmbeddedBroker) -> Iterator[tuple[str, Feed, list[WorkerProc]]]:
    prefix = f"v2i{uuid.uuid4().hex[:6]}."
    workers = [WorkerProc(broker.bootstrap, prefix, BANWATCH_LOG_LEVEL="info") for _ in range(2)]
    for w in workers:
        w.start()
    feed = Feed(broker.bootstrap, prefix)
    try:
        deadline = time.monotonic() + 40
        owned: list[list[int]] = []
        while time.monotonic() < deadline:  # until the group settled: partitions shared
            owned = [_adopted(w) for w in workers]
            if sorted(p for ps in owned for p in ps) == [0, 1, 2, 3] and all(owned):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"partitions not shared: {owned}")
        yield prefix, feed, workers
    finally:
        feed.close()
        for w in workers:
            assert w.stop() == 0, "\n".join(w.lines[-30:])


def persons_on_two_partitions(tag: str) -> tuple[str, str]:
    """Two restrained persons' ids whose states live on different partitions."""
    first = f"P-{tag}0"
    for i in range(1, 100):
        other = f"P-{tag}{i}"
        if partition_for(other) != partition_for(first):
            return first, other
    raise AssertionError("no second partition")


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_ban_ending_resolves_its_open_alert_once_in_the_owning_worker(
    broker: EmbeddedBroker, two_workers: tuple[str, Feed, list[WorkerProc]]
) -> None:
    prefix, feed, _ = two_workers
    lifted, revoked, expiring = (
        ban(f"KF-E{i}", f"P-E{i}", f"P-E{i}V", LON + 0.01 * i, LAT) for i in range(3)
    )
    ends_at = (datetime.now(UTC) + timedelta(seconds=12)).replace(microsecond=0)
    expiring["valid_until"] = _iso(ends_at)
    for b in (lifted, revoked, expiring):
        feed.send("contact-bans", b["ban_id"], b)
    feed.send("patrol-positions", "U-1", patrol("U-1", LAT + 0.003, LON, ts()))
    feed.flush()
    time.sleep(1.0)
    for i in range(3):
        p = f"P-E{i}"
        feed.send("positions", p, fix(p, "EM-" + p, LAT + 0.001, LON + 0.01 * i + 0.001, ts()))
    feed.flush()
    ids = {b["ban_id"] for b in (lifted, revoked, expiring)}

    def opened(r: list[dict[str, Any]]) -> bool:
        return {a["ban_id"] for a in r if a.get("kind") == "zone_breach"} == ids

    collect(broker.bootstrap, prefix + "alerts", opened, timeout_s=30)
    feed.send("contact-bans", lifted["ban_id"], None)
    feed.send("contact-bans", revoked["ban_id"], {**revoked, "version": 2, "status": "revoked"})
    feed.flush()

    def resolved(r: list[dict[str, Any]]) -> bool:
        return {a["ban_id"] for a in r if a.get("state") == "resolved"} == ids

    alerts = collect(broker.bootstrap, prefix + "alerts", resolved, timeout_s=60, settle_s=3.0)
    for b, why in ((lifted, "lifted"), (revoked, "revoked"), (expiring, "expired")):
        mine = [a for a in alerts if a["ban_id"] == b["ban_id"]]
        assert len({a["alert_id"] for a in mine}) == 1  # one alert, nothing new after the end
        done = [a for a in mine if a["state"] == "resolved"]
        # exactly once across workers: one final revision (the same seq, if ever re-sent)
        assert len({a["seq"] for a in done}) == 1 and len(done) == 1, done
        last = max(mine, key=lambda a: a["seq"])
        assert last is done[0] and last["resolved_by"] == "system" and why in last["reason"]
        assert last["contract_version"] == 2
    # the validity timer fired in the worker holding the state, at the ban's end (event time)
    [end] = [a for a in alerts if a["ban_id"] == "KF-E2" and a["state"] == "resolved"]
    assert datetime.fromisoformat(end["updated_at"].replace("Z", "+00:00")) == ends_at


def test_an_sos_gives_one_response_across_partitions_and_an_unmatched_sos_is_priority_1(
    broker: EmbeddedBroker, two_workers: tuple[str, Feed, list[WorkerProc]]
) -> None:
    prefix, feed, _ = two_workers
    a, b = persons_on_two_partitions("S")
    victim = "P-SV"
    bans = [
        ban("KF-S1", a, victim, LON + 0.05, LAT),
        ban("KF-S2", b, victim, LON + 0.07, LAT),
    ]
    for x in bans:
        feed.send("contact-bans", x["ban_id"], x)
    for unit, dlat in (("U-S1", 0.002), ("U-S2", 0.004), ("U-S3", 0.006)):
        feed.send("patrol-positions", unit, patrol(unit, LAT + dlat, LON + 0.06, ts()))
    feed.flush()
    time.sleep(1.0)
    call = {"lat": LAT + 0.001, "lon": LON + 0.06}
    feed.send(
        "incidents",
        "I-S1",
        {"incident_id": "I-S1", "ts": ts(), "kind": "sos", "person_id": victim, **call},
    )
    lost = {"lat": LAT - 0.2, "lon": LON + 0.06}  # nobody's ban anywhere near
    feed.send(
        "incidents",
        "I-S2",
        {"incident_id": "I-S2", "ts": ts(), "kind": "sos", "person_id": "P-NOBODY", **lost},
    )
    feed.flush()

    def seen(r: list[dict[str, Any]]) -> bool:
        return len({x["alert_id"] for x in r if x.get("kind") == "sos"}) >= 3

    alerts = collect(broker.bootstrap, prefix + "alerts", seen, timeout_s=30, settle_s=2.0)
    sos = {x["alert_id"]: x for x in alerts if x["kind"] == "sos" and x["seq"] == 1}
    by_incident: dict[str, list[dict[str, Any]]] = {}
    for x in sos.values():
        by_incident.setdefault(x["incident_id"], []).append(x)
    assert sorted(x["ban_id"] for x in by_incident["I-S1"]) == ["KF-S1", "KF-S2"]
    [unmatched] = by_incident["I-S2"]
    assert (unmatched["ban_id"], unmatched["priority"]) == (None, 1)
    assert not [x for x in alerts if x["kind"] == "unmatched_incident"]

    def tasks_done(r: list[dict[str, Any]]) -> bool:
        return sum(t.get("kind") == "respond" for t in r) >= 2

    tasks = collect(
        broker.bootstrap, prefix + "patrol-tasks", tasks_done, timeout_s=30, settle_s=3.0
    )
    ids = {x["alert_id"] for x in by_incident["I-S1"]}
    tasks = [t for t in tasks if t["seq"] == 1 and t["attempt"] == 1]  # the first units asked
    pair = [t for t in tasks if t["alert_id"] in ids]
    assert sorted(t["kind"] for t in pair) == ["protect", "respond"], pair
    [respond] = [t for t in pair if t["kind"] == "respond"]
    assert respond["ban_id"] == "KF-S1"  # the first of the match list
    assert respond["target"] == call
    [lone] = [t for t in tasks if t["alert_id"] == unmatched["alert_id"]]
    assert (lone["kind"], lone["target"], lone["ban_id"]) == ("respond", lost, None)
