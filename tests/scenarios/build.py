"""Generate the golden replay scenarios: `python tests/scenarios/build.py`.

Each scenario is a short story in real places (Södertälje, Södermalm, Kungsholmen) told as
input records. For every scenario NAME this writes `NAME/bans.jsonl`, `NAME/events.jsonl`,
`NAME/args.json` (the replay's `--now` / `--until`) and `NAME/README.md`. The golden outputs
(`NAME/expected.jsonl`) are written by the test with `UPDATE_GOLDEN=1` (see README.md).

Nothing here is random: GPS jitter comes from `random.Random` with a fixed seed per person.
Acknowledgements need the id of the alert they act on; ids are deterministic but are the
engine's business, so `_resolve_refs` runs the replay and looks them up by kind and order.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NOW = "2026-11-23T00:00:00Z"  # replay's --now: every scenario happens before it
M_PER_DEG = 111_320.0

Json = dict[str, Any]


# ----------------------------------------------------------------------------- time and space
def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def move(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """A point `north_m`/`east_m` metres from (lat, lon) (local flat approximation)."""
    return lat + north_m / M_PER_DEG, lon + east_m / (M_PER_DEG * math.cos(math.radians(lat)))


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dn = (b[0] - a[0]) * M_PER_DEG
    de = (b[1] - a[1]) * M_PER_DEG * math.cos(math.radians(a[0]))
    return math.hypot(dn, de)


def walk(
    points: list[tuple[float, float]], start: datetime, speed_mps: float, every_s: int = 30
) -> Iterator[tuple[datetime, float, float]]:
    """Positions every `every_s` seconds along a polyline at constant speed, ending on its end."""
    legs = [(a, b, metres(a, b)) for a, b in itertools.pairwise(points)]
    total = sum(d for _, _, d in legs)
    steps = max(1, math.ceil(total / (speed_mps * every_s)))
    for i in range(steps + 1):
        s = min(total, i * speed_mps * every_s)  # metres along the route
        for a, b, d in legs:
            if s <= d or b == points[-1]:
                f = 0.0 if d == 0 else min(1.0, s / d)
                ts = start + timedelta(seconds=i * every_s)
                yield ts, a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f
                break
            s -= d


def stay(
    at: tuple[float, float], start: datetime, end: datetime, every_s: int = 30
) -> Iterator[tuple[datetime, float, float]]:
    ts = start
    while ts <= end:
        yield ts, at[0], at[1]
        ts += timedelta(seconds=every_s)


def box(lat: float, lon: float, half_ns_m: float, half_ew_m: float) -> list[list[float]]:
    """A closed GeoJSON ring ([lon, lat]) around a centre: a city block."""
    s, w = move(lat, lon, -half_ns_m, -half_ew_m)
    n, e = move(lat, lon, half_ns_m, half_ew_m)
    ring = [(w, s), (e, s), (e, n), (w, n), (w, s)]
    return [[round(x, 5), round(y, 5)] for x, y in ring]


# ----------------------------------------------------------------------------------- records
def polygon_zone(zone_id: str, label: str, ring: list[list[float]], buffer_m: float) -> Json:
    return {
        "type": "Feature",
        "properties": {"zone_id": zone_id, "label": label, "buffer_m": buffer_m},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def circle_zone(zone_id: str, label: str, lat: float, lon: float, radius_m: float) -> Json:
    return {
        "type": "Feature",
        "properties": {"zone_id": zone_id, "label": label, "radius_m": radius_m},
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
    }


def ban(
    ban_id: str,
    restrained: str,
    protected: list[str],
    zones: list[Json],
    *,
    version: int = 1,
    kind: str = "extended",
    status: str = "active",
    valid_from: str = "2026-11-01T00:00:00Z",
    valid_until: str | None = "2027-05-01T00:00:00Z",
    em: bool = True,
    proximity_m: float | None = None,
) -> Json:
    return {
        "ban_id": ban_id,
        "version": version,
        "kind": kind,
        "status": status,
        "restrained_person": restrained,
        "protected_persons": protected,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "electronic_monitoring": em,
        "proximity_m": proximity_m,
        "zones": {"type": "FeatureCollection", "features": zones},
    }


@dataclass(frozen=True)
class Ref:
    """The id of the `nth` alert of `kind` (in order of first appearance), for an ack."""

    kind: str
    nth: int = 0


@dataclass(frozen=True)
class TaskRef:
    """The id of the `nth` task of `kind` (in order of first revision), for a task update."""

    kind: str
    nth: int = 0


@dataclass
class Story:
    """Events of one scenario, kept in arrival order: by arrival time, then as added.
    An action may be timed relative to the opening of the alert it refers to (`after_s`):
    its arrival time is then `None` until `_resolve_refs` knows when that alert opened."""

    items: list[tuple[datetime | None, int, Json]] = field(default_factory=list)

    def add(self, arrives: datetime | None, event: Json) -> None:
        self.items.append((arrives, len(self.items), event))

    def fix(
        self,
        person: str,
        device: str,
        ts: datetime,
        lat: float,
        lon: float,
        acc: float,
        source: str = "ankle_tag",
        arrives: datetime | None = None,
        **extra: Any,
    ) -> None:
        value = {
            "person_id": person,
            "device_id": device,
            "ts": iso(ts),
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "accuracy_m": round(acc, 1),
            "source": source,
            **extra,
        }
        self.add(arrives or ts, {"topic": "positions", "key": person, "value": value})

    def track(
        self,
        person: str,
        device: str,
        points: Iterable[tuple[datetime, float, float]],
        acc: tuple[float, float] = (5.0, 12.0),
        jitter_m: float = 0.0,
        source: str = "ankle_tag",
        seed: int = 1,
    ) -> list[tuple[datetime, float, float]]:
        """Fixes along `points`, each moved by up to `jitter_m` and with an accuracy drawn
        from `acc`. Returns the positions as sent."""
        rng = random.Random(seed)
        sent = []
        for ts, lat, lon in points:
            a = rng.uniform(*acc)
            ang, r = rng.uniform(0, 2 * math.pi), jitter_m * math.sqrt(rng.random())
            la, lo = move(lat, lon, r * math.sin(ang), r * math.cos(ang))
            self.fix(person, device, ts, la, lo, a, source)
            sent.append((ts, la, lo))
        return sent

    def patrols(
        self,
        units: list[tuple[str, float, float, str]],
        start: datetime,
        end: datetime,
        every_s: int = 45,
    ) -> None:
        """Each unit reports every `every_s` s while circling 80 m around its post."""
        for i, (unit, lat, lon, status) in enumerate(units):
            ts = start + timedelta(seconds=7 * i)
            k = 0
            while ts <= end:
                ang = k * 0.5 + i
                la, lo = move(lat, lon, 80 * math.sin(ang), 80 * math.cos(ang))
                value = {
                    "unit_id": unit,
                    "ts": iso(ts),
                    "lat": round(la, 6),
                    "lon": round(lo, 6),
                    "status": status,
                    "capabilities": ["patrol"],
                }
                self.add(ts, {"topic": "patrol-positions", "key": unit, "value": value})
                ts += timedelta(seconds=every_s)
                k += 1

    def incident(self, incident_id: str, ts: datetime, kind: str, **fields: Any) -> None:
        for k in ("lat", "lon"):
            if fields.get(k) is not None:
                fields[k] = round(fields[k], 6)
        value = {"incident_id": incident_id, "ts": iso(ts), "kind": kind, **fields}
        self.add(ts, {"topic": "incidents", "key": incident_id, "value": value})

    def action(
        self,
        ref: Ref,
        action: str,
        by: str,
        note: str = "",
        at: datetime | None = None,
        after_s: float | None = None,
    ) -> None:
        """An operator's action at `at`, or `after_s` seconds after the alert opened."""
        assert (at is None) != (after_s is None)
        value = {"alert_id": ref, "action": action, "by": by, "ts": at, "note": note}
        self.add(at, {"topic": "alert-acks", "key": ref, "value": value, "after_s": after_s})

    def task_update(
        self,
        ref: TaskRef,
        action: str,
        by: str,
        role: str = "patrol",
        at: datetime | None = None,
        after_s: float | None = None,
        outcome: str | None = None,
        consent: bool | None = None,
        note: str = "",
    ) -> None:
        """A unit's or role's answer to a task at `at`, or `after_s` s after it was created."""
        assert (at is None) != (after_s is None)
        value = {
            "task_id": ref,
            "by": by,
            "role": role,
            "ts": at,
            "action": action,
            "outcome": outcome,
            "consent_to_share": consent,
            "note": note,
        }
        self.add(at, {"topic": "task-updates", "key": ref, "value": value, "after_s": after_s})

    def ban_record(self, arrives: datetime, record: Json | None, key: str) -> None:
        self.add(arrives, {"topic": "contact-bans", "key": key, "value": record})

    def raw(self, arrives: datetime, topic: str, key: str | None, **value: Any) -> None:
        """A record given as it is (`value` a string of raw text, or `value_b64`)."""
        self.add(arrives, {"topic": topic, "key": key, **value})

    def events(self, opened: dict[Any, tuple[str, datetime]]) -> list[Json]:
        """The events in arrival order, with the alert and task ids of `opened` filled in;
        actions on alerts or tasks not (yet) in `opened` are left out."""
        timed = []
        for arrives, n, e in self.items:
            ref = e["key"]
            if isinstance(ref, Ref | TaskRef):
                if ref not in opened:
                    continue
                ident, opened_at = opened[ref]
                after_s = e["after_s"]
                if arrives is None:
                    arrives = opened_at + timedelta(seconds=after_s)
                id_field = "alert_id" if isinstance(ref, Ref) else "task_id"
                value = {**e["value"], id_field: ident, "ts": iso(arrives)}
                e = {"topic": e["topic"], "key": ident, "value": value}
            assert arrives is not None
            timed.append((arrives, n, e))
        return [e for _, _, e in sorted(timed, key=lambda x: (x[0], x[1]))]


@dataclass
class Scenario:
    name: str
    readme: str
    bans: list[Json]
    story: Story
    until: str | None = None


# --------------------------------------------------------------------------------- places
# Södertälje
SODERTALJE_HOME = (59.1955, 17.6290)  # a block near Södertälje centrum
RONNA = (59.2085, 17.6470)
SODERTALJE_C = (59.1962, 17.6262)
GARTUNA = (59.2130, 17.6730)
OSTERTALJE = (59.1860, 17.6580)
GENETA = (59.1870, 17.5950)
# Stockholm, Södermalm
MEDBORGARPLATSEN = (59.3143, 18.0735)
HORNSTULL = (59.3157, 18.0340)
MARIATORGET = (59.3169, 18.0630)
SLUSSEN = (59.3195, 18.0720)
SKANSTULL = (59.3080, 18.0760)
HAMMARBY_SJOSTAD = (59.3040, 18.1000)

SO_UNITS = [
    ("SÖ-2140", 59.1966, 17.6268, "available"),  # Södertälje centrum, by the police station
    ("SÖ-2150", 59.2060, 17.6500, "available"),  # Ronna
    ("SÖ-2160", GENETA[0], GENETA[1], "available"),
]


# ------------------------------------------------------------------------------ scenarios
def sodertalje_breach() -> Scenario:
    home = polygon_zone("home", "Bostad", box(*SODERTALJE_HOME, 45, 60), 50)
    work = circle_zone("work", "Arbetsplats", 59.1830, 17.6080, 150)
    b = ban("KF-2026-0042", "P-7731", ["P-1102"], [home, work], version=3, proximity_m=500)
    s = Story()
    t0 = t("2026-11-22T21:40:00Z")
    # the block's north edge + buffer lies 45 + 50 m north of its centre
    north = move(*SODERTALJE_HOME, 150, 0)
    route = [RONNA, (59.2030, 17.6400), (59.1995, 17.6330), north]
    went = list(walk(route, t0, 1.3))
    s.track("P-7731", "EM-0091", went, jitter_m=4, seed=11)
    ts = went[-1][0]
    # in through the gate: a coarse fix (140 m, counts as possible), then ever more certain
    for north_m, acc in ((80, 140.0), (88, 12.0), (50, 9.0)):
        ts += timedelta(seconds=30)
        s.fix("P-7731", "EM-0091", ts, *move(*SODERTALJE_HOME, north_m, 0), acc)
    inside = list(stay(SODERTALJE_HOME, ts + timedelta(seconds=30), ts + timedelta(minutes=5)))
    s.track("P-7731", "EM-0091", inside, acc=(6, 30), jitter_m=6, seed=12)
    away = [SODERTALJE_HOME, (59.1990, 17.6340), (59.2010, 17.6370)]
    back = list(walk(away, inside[-1][0] + timedelta(seconds=30), 1.4))
    s.track("P-7731", "EM-0091", back, jitter_m=4, seed=13)
    end = back[-1][0]
    busy = [("SÖ-2170", 59.1950, 17.6300, "busy")]  # nearest of all, but busy elsewhere
    s.patrols([*SO_UNITS, *busy], t0, end)
    # dispatch acknowledges only after the escalation, and resolves once he has left
    s.action(Ref("zone_breach"), "acknowledge", "op-17", "Patrull på väg", after_s=150)
    s.action(Ref("zone_breach"), "resolve", "op-17", "Personen har lämnat området", at=end)
    return Scenario(
        "sodertalje_breach",
        """\
        P-7731 walks from Ronna to the protected person's home near Södertälje centrum.
        Expect: one `approach` (p2), then one `zone_breach` rising possible (a 140 m fix, p2) →
        probable (p1, `respond` to the nearest available unit SÖ-2140, not the busy SÖ-2170) →
        confirmed (follow-up chain 24 h/72 h/7 d); `escalated` 60 s after it became p1, then
        `acknowledged`; the episode ends when he walks away, and dispatch `resolved` it.
        """,
        [b],
        s,
    )


def sodermalm_proximity() -> Scenario:
    home = polygon_zone("home", "Bostad", box(*HAMMARBY_SJOSTAD, 40, 50), 25)
    b = ban("KF-2026-0077", "P-8810", ["P-2207"], [home], kind="special_extended", proximity_m=500)
    s = Story()
    t0 = t("2026-11-22T17:00:00Z")
    loop = [
        MEDBORGARPLATSEN,
        (59.3150, 18.0760),
        (59.3135, 18.0772),
        (59.3128, 18.0742),
        MEDBORGARPLATSEN,
    ]
    victim: list[tuple[datetime, float, float]] = []
    start = t0
    while start < t0 + timedelta(minutes=45):
        lap = list(walk(loop, start, 0.9))
        victim.extend(lap[:-1])
        start = lap[-1][0]
    stop = (59.3160, 18.0682)  # Götgatan, ~300 m from Medborgarplatsen
    went = list(walk([HORNSTULL, MARIATORGET, stop], t0 + timedelta(minutes=2), 1.4))
    wait = list(stay(stop, went[-1][0] + timedelta(seconds=30), went[-1][0] + timedelta(minutes=4)))
    back = list(walk([stop, MARIATORGET, HORNSTULL], wait[-1][0] + timedelta(seconds=30), 1.5))
    s.track("P-8810", "EM-0412", went, jitter_m=4, seed=22)
    s.track("P-8810", "EM-0412", wait, jitter_m=5, seed=23)
    s.track("P-8810", "EM-0412", back, jitter_m=4, seed=24)
    end = back[-1][0]
    victim = [v for v in victim if v[0] <= end]
    s.track("P-2207", "VD-2207", victim, acc=(5, 15), source="victim_device", seed=21)
    units = [
        ("SM-3310", SKANSTULL[0], SKANSTULL[1], "available"),
        ("SM-3320", SLUSSEN[0], SLUSSEN[1], "available"),
        ("SM-3330", HORNSTULL[0], HORNSTULL[1], "available"),
    ]
    s.patrols(units, t0, end, every_s=40)
    s.action(Ref("proximity_breach"), "acknowledge", "op-22", "Två patruller skickade", after_s=40)
    s.action(Ref("proximity_breach"), "resolve", "op-22", "Avvek västerut", at=end)
    return Scenario(
        "sodermalm_proximity",
        """\
        The protected person P-2207 (victim_device) strolls around Medborgarplatsen while P-8810
        walks from Hornstull along Hornsgatan towards her and waits on Götgatan.
        Expect: `approach` to the person (p2), one `proximity_breach` (p1, confirmed) with
        `respond` (SM-3320) and `protect` (SM-3310) and the follow-up chain, acknowledged in time
        (no escalation); both episodes end as he walks back to Hornstull; then it is resolved.
        """,
        [b],
        s,
    )


def incidents() -> Scenario:
    home = polygon_zone("home", "Bostad", box(*OSTERTALJE, 40, 40), 30)
    work = circle_zone("work", "Arbetsplats Gärtuna", GARTUNA[0], GARTUNA[1], 250)
    b = ban("KF-2026-0142", "P-5520", ["P-3301"], [home, work])
    s = Story()
    t0 = t("2026-11-22T08:00:00Z")
    end = t0 + timedelta(minutes=50)
    # after the tamper alarm (08:33) the tag reports until 08:45, then goes silent
    silent = t0 + timedelta(minutes=45)
    s.track("P-5520", "EM-0733", stay(SODERTALJE_C, t0, silent), acc=(6, 14), jitter_m=5, seed=31)
    s.patrols(SO_UNITS, t0, end, every_s=60)
    note = "Grannen hörde skrik i trapphuset"
    at = t0 + timedelta(minutes=5)
    s.incident(
        "I-88123",
        at,
        "reported_contact",
        ban_id="KF-2026-0142",
        person_id=None,
        lat=SODERTALJE_C[0],
        lon=SODERTALJE_C[1],
        source="112",
        note=note,
    )
    s.action(Ref("reported_contact"), "acknowledge", "op-17", "ok", after_s=40)
    at = t0 + timedelta(minutes=12)
    parking = move(*OSTERTALJE, 90, 60)  # she pressed her alarm in the car park
    s.incident(
        "I-88124",
        at,
        "sos",
        person_id="P-3301",
        lat=parking[0],
        lon=parking[1],
        source="alarm",
        note="Larmknapp",
    )
    s.action(Ref("sos"), "acknowledge", "op-17", after_s=180)
    s.action(Ref("sos"), "resolve", "op-17", "Falsklarm", after_s=18 * 60)
    s.incident(
        "I-88125",
        t0 + timedelta(minutes=20),
        "threat",
        person_id="P-5520",
        source="112",
        note="Hot via sms",
    )
    work_spot = move(*GARTUNA, 60, -40)
    s.incident(
        "I-88126",
        t0 + timedelta(minutes=25),
        "tip",
        lat=work_spot[0],
        lon=work_spot[1],
        source="tipsrad",
        note="Sågs utanför entrén",
    )
    syd = (59.1630, 17.6460)  # Södertälje syd station: no zone of any ban
    s.incident(
        "I-88127",
        t0 + timedelta(minutes=27),
        "tip",
        lat=syd[0],
        lon=syd[1],
        source="tipsrad",
        note="Anonymt tips",
    )
    s.action(Ref("unmatched_incident"), "acknowledge", "op-31", after_s=120)
    s.action(Ref("unmatched_incident"), "resolve", "op-31", after_s=180)
    at = t0 + timedelta(minutes=33)
    s.incident("I-88128", at, "device_tamper", ban_id="KF-2026-0142", source="em-central")
    s.action(Ref("tamper"), "acknowledge", "op-17", after_s=30)
    s.incident(
        "I-88129",
        t0 + timedelta(minutes=40),
        "device_battery_low",
        person_id="P-5520",
        source="em-central",
    )
    # the 112 call delivered again: the same incident id adds nothing
    s.incident(
        "I-88123",
        t0 + timedelta(minutes=41),
        "reported_contact",
        ban_id="KF-2026-0142",
        lat=SODERTALJE_C[0],
        lon=SODERTALJE_C[1],
        note=note,
    )
    return Scenario(
        "incidents",
        """\
        Incidents around ban KF-2026-0142 while P-5520 stands at Södertälje C, then his tag
        goes silent. Expect: reported_contact (p1, respond + follow-ups, acked in time); sos
        (p1, respond + protect, escalated, acked, resolved); threat (p2); a tip matched by its
        position in the work zone (p3); an unmatched tip (unmatched_incident, acked, resolved);
        tamper (p1); battery_low (p3); with `--until` 08:52, signal_lost (p1) and escalation.
        """,
        [b],
        s,
        until="2026-11-22T08:52:00Z",
    )


def signal_loss() -> Scenario:
    home_a = polygon_zone("home", "Bostad", box(59.1880, 17.6500, 40, 40), 30)
    a = ban("KF-2026-0201", "P-6610", ["P-4401"], [home_a])
    home_b = polygon_zone("home", "Bostad", box(*SODERTALJE_HOME, 45, 60), 50)
    b = ban("KF-2026-0202", "P-6620", ["P-4402"], [home_b])
    s = Story()
    t0 = t("2026-11-22T02:00:00Z")
    end = t0 + timedelta(minutes=32)
    gnesta = (59.0490, 17.3110)  # ~25 km from the zone: 300 s of silence cannot reach it
    s.track("P-6610", "EM-0550", stay(gnesta, t0, t0 + timedelta(minutes=10)), jitter_m=5, seed=41)
    s.track("P-6610", "EM-0550", stay(gnesta, t0 + timedelta(minutes=25), end), jitter_m=5, seed=42)
    # Ronna, ~2 km from B's zone: reachable within the timeout, so p1 at once
    s.track("P-6620", "EM-0551", stay(RONNA, t0, t0 + timedelta(minutes=12)), jitter_m=5, seed=43)
    s.track("P-6620", "EM-0551", stay(RONNA, t0 + timedelta(minutes=24), end), jitter_m=5, seed=44)
    # the protected person's phone goes quiet too: not a monitored device, no alert
    s.track(
        "P-4402",
        "PH-4402",
        stay(SODERTALJE_HOME, t0, t0 + timedelta(minutes=3)),
        acc=(10, 20),
        source="phone",
        seed=45,
    )
    units = [*SO_UNITS, ("SÖ-2810", 59.0510, 17.3170, "available")]  # Gnesta
    s.patrols(units, t0, end, every_s=30)
    gnesta_lost, ronna_lost = Ref("signal_lost", 0), Ref("signal_lost", 1)
    s.action(ronna_lost, "acknowledge", "op-05", at=t0 + timedelta(minutes=20))
    s.action(gnesta_lost, "acknowledge", "op-05", at=t0 + timedelta(minutes=23))
    s.action(gnesta_lost, "resolve", "op-05", at=t0 + timedelta(minutes=30))
    s.action(ronna_lost, "resolve", "op-05", at=t0 + timedelta(minutes=30))
    return Scenario(
        "signal_loss",
        """\
        Two ankle tags go silent at night. P-6610 in Gnesta (~25 km from the zone): `signal_lost`
        p2 after 300 s, rising to p1 (respond SÖ-2810) once 40 m/s could have reached the zone.
        P-6620 in Ronna (~2 km): `signal_lost` p1 at once (respond). Both escalate, are acked,
        the signals come back (episode ended) and both are resolved. The protected person's
        silent phone raises nothing.
        """,
        [a, b],
        s,
    )


def late_evidence() -> Scenario:
    home_c = (59.2000, 17.6100)  # Viksängen
    home = polygon_zone("home", "Bostad", box(*home_c, 40, 50), 30)
    b = ban("KF-2026-0310", "P-9120", ["P-7702"], [home])
    s = Story()
    t0 = t("2026-11-22T13:00:00Z")
    near = move(*home_c, 320, 0)  # 320 m north of the house (≈250 m outside zone + buffer)
    s.track("P-9120", "EM-0871", stay(near, t0, t0 + timedelta(minutes=6)), jitter_m=3, seed=51)
    # 13:06:30-13:09:30 the tag has no coverage; it stores its fixes and uploads them after
    # the live fix of 13:10:00 (at 13:10:05): the person went in and came back out
    buffered = list(walk([near, home_c], t0 + timedelta(minutes=6, seconds=30), 3.0))
    buffered += list(walk([home_c, near], buffered[-1][0] + timedelta(seconds=30), 3.0))[:-1]
    live_back = t0 + timedelta(minutes=10)
    upload = live_back + timedelta(seconds=5)
    for ts, lat, lon in buffered:
        if ts < live_back:
            s.fix("P-9120", "EM-0871", ts, lat, lon, 9.0, arrives=upload)
    later = t0 + timedelta(minutes=20)
    s.track("P-9120", "EM-0871", stay(near, live_back, later), jitter_m=3, seed=52)
    # live breach: he walks in and stays; a fix from inside that episode arrives late too
    went = list(walk([near, home_c], later + timedelta(seconds=30), 1.3))
    inside = list(
        stay(home_c, went[-1][0] + timedelta(seconds=30), went[-1][0] + timedelta(minutes=4))
    )
    s.track("P-9120", "EM-0871", went, jitter_m=3, seed=53)
    s.track("P-9120", "EM-0871", inside, jitter_m=3, seed=54)
    ts, lat, lon = inside[1]
    s.fix(
        "P-9120",
        "EM-0871",
        ts - timedelta(seconds=15),
        lat,
        lon,
        8.0,
        arrives=inside[3][0] + timedelta(seconds=1),
    )
    end = inside[-1][0]
    s.patrols(SO_UNITS, t0, end)
    s.action(Ref("zone_breach"), "acknowledge", "op-09", after_s=40)
    return Scenario(
        "late_evidence",
        """\
        P-9120's tag loses coverage for four minutes 320 m from the house in Viksängen; the
        stored fixes, uploaded after a newer live one, show him inside the zone.
        Expect: one `late_evidence` (p3) for the buffered fixes, no live breach from them; later
        a live `zone_breach` (p1), and a late fix inside that episode adds no late_evidence.
        """,
        [b],
        s,
    )


def knock() -> Scenario:
    home_c = (59.1900, 17.6050)  # Mariekälla
    home = polygon_zone("home", "Bostad", box(*home_c, 40, 40), 30)
    b = ban("KF-2026-0404", "P-3141", ["P-2718"], [home], kind="basic", em=False)
    s = Story()
    his = (59.1820, 17.6350)  # Hagaberg, ~1.9 km away
    close = move(*home_c, -250, 500)  # ≈ 500 m from the zone
    for day, seed in (
        ("2026-11-16T18:00:00Z", 61),
        ("2026-11-18T19:30:00Z", 62),
        ("2026-11-21T17:15:00Z", 63),
    ):
        t0 = t(day)
        went = list(walk([his, close], t0, 1.3))
        wait = list(
            stay(close, went[-1][0] + timedelta(seconds=30), went[-1][0] + timedelta(minutes=2))
        )
        back = list(walk([close, his], wait[-1][0] + timedelta(seconds=30), 1.3))
        s.track("P-3141", "PH-3141", went + wait + back, source="phone", jitter_m=4, seed=seed)
        s.patrols(SO_UNITS, t0, back[-1][0], every_s=60)
    return Scenario(
        "knock",
        """\
        P-3141 (basic ban, positions from his phone) walks from Hagaberg towards the protected
        person's home in Mariekälla on three evenings within a week, turning back ~500 m away.
        Expect: three `approach` alerts (p2), each episode ending, no breach, and one `knock`
        task (role outreach) with the third approach.
        """,
        [b],
        s,
    )


def jitter() -> Scenario:
    west = (59.1985, 17.6150)  # Västergård
    home = polygon_zone("home", "Bostad", box(*west, 40, 40), 30)
    outside = ban("KF-2026-0505", "P-2718", ["P-1001"], [home])
    centre = (59.1920, 17.6320)
    work = circle_zone("work", "Arbetsplats", centre[0], centre[1], 200)
    inside = ban("KF-2026-0506", "P-1618", ["P-1002"], [work])
    s = Story()
    t0 = t("2026-11-22T07:30:00Z")
    end = t0 + timedelta(minutes=30)
    bus_stop = move(*west, 40 + 30 + 200, 0)  # 200 m north of zone + buffer
    s.track("P-2718", "EM-0314", stay(bus_stop, t0, end), acc=(8, 15), jitter_m=20, seed=71)
    edge = move(*centre, 0, 200 - 8)  # 8 m inside the circle's edge
    s.track("P-1618", "EM-0315", stay(edge, t0, end), acc=(8, 15), jitter_m=20, seed=72)
    s.patrols(SO_UNITS, t0 - timedelta(minutes=1), end)
    s.action(Ref("zone_breach"), "acknowledge", "op-17", after_s=40)
    return Scenario(
        "jitter",
        """\
        Two people stand still for 30 minutes with ±20 m GPS jitter: P-2718 at a bus stop
        200 m outside a zone, P-1618 8 m inside a work circle's edge.
        Expect: no `approach` and no breach for P-2718; exactly one `zone_breach` alert for
        P-1618 (revisions, not new alerts), acknowledged in time, and no approach either.
        """,
        [outside, inside],
        s,
    )


def ban_lifecycle() -> Scenario:
    kungsholmen = (59.3310, 18.0300)
    vasastan = (59.3440, 18.0450)
    bromma = (59.3380, 17.9400)

    def zone(c: tuple[float, float]) -> Json:
        return polygon_zone("home", "Bostad", box(*c, 40, 40), 20)

    a2 = ban("KF-2026-0601", "P-6001", ["P-6101"], [zone(kungsholmen)], version=2, em=False)
    b1 = ban(
        "KF-2026-0602",
        "P-6002",
        ["P-6102"],
        [zone(vasastan)],
        em=False,
        valid_from="2026-11-22T12:00:00Z",
        valid_until="2026-11-22T14:00:00Z",
    )
    c1 = ban("KF-2026-0603", "P-6003", ["P-6103"], [zone(bromma)], em=False)
    s = Story()
    t0 = t("2026-11-22T11:50:00Z")
    units = [
        ("C-1210", 59.3320, 18.0350, "available"),
        ("C-1220", 59.3430, 18.0420, "available"),
        ("C-1230", 59.3370, 17.9450, "available"),
    ]
    s.patrols(units, t0, t0 + timedelta(minutes=25), every_s=60)
    s.patrols(units, t("2026-11-22T13:55:00Z"), t("2026-11-22T14:06:00Z"), every_s=60)
    ts = t0
    # A: an older version (revoked) arrives late: ignored, the ban still holds
    s.ban_record(ts + timedelta(seconds=1), {**a2, "version": 1, "status": "revoked"}, a2["ban_id"])
    s.fix("P-6001", "PH-6001", ts + timedelta(seconds=30), *kungsholmen, 8, "phone")
    s.action(Ref("zone_breach", 0), "acknowledge", "op-40", after_s=20)
    # A revoked by version 3: no more alerts; the open alert can still be resolved
    s.ban_record(ts + timedelta(minutes=2), {**a2, "version": 3, "status": "revoked"}, a2["ban_id"])
    s.fix("P-6001", "PH-6001", ts + timedelta(minutes=3), *kungsholmen, 8, "phone")
    s.action(Ref("zone_breach", 0), "resolve", "op-40", "Hävt", at=ts + timedelta(minutes=4))
    s.ban_record(ts + timedelta(minutes=5), {**a2, "version": 2}, a2["ban_id"])  # stale
    s.fix("P-6001", "PH-6001", ts + timedelta(minutes=6), *kungsholmen, 8, "phone")
    # B: in force 12:00-14:00 only
    s.fix("P-6002", "PH-6002", t("2026-11-22T11:59:30Z"), *vasastan, 7, "phone")
    s.fix("P-6002", "PH-6002", t("2026-11-22T12:00:00Z"), *vasastan, 7, "phone")
    s.action(Ref("zone_breach", 1), "acknowledge", "op-40", after_s=40)
    s.fix("P-6002", "PH-6002", t("2026-11-22T14:00:00Z"), *vasastan, 7, "phone")
    s.action(Ref("zone_breach", 1), "resolve", "op-40", at=t("2026-11-22T14:01:00Z"))
    s.fix("P-6002", "PH-6002", t("2026-11-22T14:05:00Z"), *vasastan, 7, "phone")
    # C: lifted by a tombstone; replaying its old version does not bring it back
    s.ban_record(t("2026-11-22T12:10:00Z"), None, c1["ban_id"])
    s.fix("P-6003", "PH-6003", t("2026-11-22T12:11:00Z"), *bromma, 8, "phone")
    s.ban_record(t("2026-11-22T12:12:00Z"), c1, c1["ban_id"])
    s.fix("P-6003", "PH-6003", t("2026-11-22T12:13:00Z"), *bromma, 8, "phone")
    return Scenario(
        "ban_lifecycle",
        """\
        Three bans on Kungsholmen, Vasastan and in Bromma change under way.
        Expect: A's stale v1 (revoked) is ignored, so a fix at home breaches v2; after v3
        revokes A (and a stale v2 re-send) nothing more; B alerts only inside its validity
        window [12:00, 14:00); C, lifted by a tombstone and re-sent at the same version, never.
        """,
        [a2, b1, c1],
        s,
    )


def poison() -> Scenario:
    hovsjo = (59.1795, 17.5920)
    home = polygon_zone("home", "Bostad", box(*hovsjo, 40, 50), 30)
    b = ban("KF-2026-0707", "P-4040", ["P-4041"], [home])
    s = Story()
    t0 = t("2026-11-22T16:00:00Z")
    went = list(walk([move(*hovsjo, 900, 600), hovsjo], t0, 1.3))
    inside = list(
        stay(hovsjo, went[-1][0] + timedelta(seconds=30), went[-1][0] + timedelta(minutes=2))
    )
    sent = s.track("P-4040", "EM-0404", went + inside, jitter_m=3, seed=81)
    end = inside[-1][0]
    s.patrols(SO_UNITS, t0, end)
    # each poison record with the reason it must be dead-lettered for; "T" in a timestamp
    # stands for the moment it is sent (just after a valid fix)
    poisons = [
        ("decode", "positions", "P-4040", {"value": '{"person_id": "P-4040", "lat": 59.18,'}),
        ("schema", "positions", "P-4040", {"value": _bad_fix(lat="59.1805")}),  # wrong type
        ("schema", "positions", "P-4040", {"value": _bad_fix(ts="2026-11-22T16:03:00")}),  # naive
        ("future", "positions", "P-4040", {"value": _bad_fix(ts="2026-11-24T09:00:00Z")}),
        ("schema", "positions", "P-4040", {"value": _bad_fix(lat="NaN")}),  # NaN as a string
        ("schema", "positions", "P-4040", {"value": _NAN_LITERAL}),
        ("schema", "positions", "P-4040", {"value": _bad_fix(lat=91.0)}),
        ("schema", "positions", "P-4040", {"value": _bad_fix(accuracy_m=0)}),
        ("schema", "positions", _PNR, {"value": _bad_fix(person_id=_PNR)}),
        ("key_mismatch", "positions", "P-9999", {"value": _bad_fix()}),
        ("decode", "positions", "P-4040", {"value": None}),  # a tombstone where none exist
        ("decode", "positions", "P-4040", {"value": "[59.18, 17.6]"}),  # not an object
        ("decode", "positions", "P-4040", {"value_b64": _random_bytes_b64()}),
        ("too_large", "positions", "P-4040", {"value": _bad_fix(device_id="EM-" + "9" * 70_000)}),
        ("schema", "incidents", "I-90001", {"value": _bad_tip("I-90001", note="x" * 12_000)}),
        ("schema", "contact-bans", "KF-2026-0708", {"value": {**_bad_ban(), "kind": "lifelong"}}),
        ("geometry", "contact-bans", "KF-2026-0708", {"value": _bad_ban(_BOWTIE)}),
        ("geometry", "contact-bans", "KF-2026-0708", {"value": _bad_ban(_OPEN_RING)}),
        ("schema", "patrol-positions", "SÖ-2140", {"value": _bad_patrol(status="on_break")}),
        ("unknown_alert", "alert-acks", "0" * 32, {"value": _bad_ack("0" * 32)}),
        ("schema", "incidents", "I-90002", {"value": {}}),
    ]
    # one poison record after each of the first fixes
    for (ts, _, _), (_, topic, key, value) in zip(sent[1:], poisons, strict=False):
        arrives = ts + timedelta(seconds=1)
        s.raw(arrives, topic, key, **{k: _stamp(v, iso(arrives)) for k, v in value.items()})
    assert len(sent) > len(poisons)
    s.incident(
        "I-90003",
        end - timedelta(seconds=10),
        "device_battery_low",
        person_id="P-4040",
        source="em-central",
    )
    s.action(Ref("zone_breach"), "acknowledge", "op-17", after_s=40)
    return Scenario(
        "poison",
        """\
        P-4040 walks into the home zone in Hovsjö while the topics carry poison: broken JSON,
        wrong types, a naive and a future timestamp, NaN, a personal identity number, random
        bytes, oversized records, a ban of unknown kind and bans with invalid polygons.
        Expect: one dead letter with a reason for each, and the valid fixes and incident
        between them still raise `approach`, `zone_breach` (respond) and `battery_low`.
        """,
        [b],
        s,
    )


# Poison records for the `poison` scenario.
_PNR = "198504121234"  # looks like a personal identity number: must never travel further
_BOWTIE = [[17.59, 59.18], [17.60, 59.19], [17.60, 59.18], [17.59, 59.19], [17.59, 59.18]]
_OPEN_RING = [[17.59, 59.18], [17.60, 59.18], [17.60, 59.19], [17.59, 59.19]]
_NAN_LITERAL = (
    '{"person_id": "P-4040", "device_id": "EM-0404", "ts": "T", "lat": NaN, "lon": 17.6, '
    '"accuracy_m": 8.0, "source": "ankle_tag"}'
)


def _bad_fix(**changes: Any) -> Json:
    fix = {"person_id": "P-4040", "device_id": "EM-0404", "ts": "T", "lat": 59.18, "lon": 17.6}
    return {**fix, "accuracy_m": 8.0, "source": "ankle_tag", **changes}


def _bad_tip(incident_id: str, **changes: Any) -> Json:
    return {"incident_id": incident_id, "ts": "T", "kind": "tip", **changes}


def _bad_patrol(**changes: Any) -> Json:
    pos = {"unit_id": "SÖ-2140", "ts": "T", "lat": 59.19, "lon": 17.62, "status": "available"}
    return {**pos, **changes}


def _bad_ack(alert_id: str) -> Json:
    return {"alert_id": alert_id, "action": "acknowledge", "by": "op-17", "ts": "T"}


def _bad_ban(ring: list[list[float]] | None = None) -> Json:
    zone = polygon_zone("home", "x", ring or box(59.1795, 17.5920, 40, 50), 0)
    return ban("KF-2026-0708", "P-4050", ["P-4051"], [zone])


def _random_bytes_b64() -> str:
    junk = bytes([0xFF, 0xFE]) + random.Random(8).randbytes(46)  # never valid UTF-8
    return base64.b64encode(junk).decode("ascii")


def _stamp(value: Any, ts: str) -> Any:
    """Put the moment a poison record is sent in place of its placeholder timestamp "T"."""
    if isinstance(value, str):
        return value.replace('"ts": "T"', f'"ts": "{ts}"')
    if isinstance(value, dict) and value.get("ts") == "T":
        return {**value, "ts": ts}
    return value


SCENARIOS = [
    sodertalje_breach,
    sodermalm_proximity,
    incidents,
    signal_loss,
    late_evidence,
    knock,
    jitter,
    ban_lifecycle,
    poison,
]
from build_v2_geometry import v2_geometry  # noqa: E402  (contract v2 rules 1, 2, 10)

SCENARIOS.append(v2_geometry)


# --------------------------------------------------------------------------------- writing
def _jsonl(rows: list[Json]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _replay(bans: list[Json], events: list[Json], until: str | None) -> list[Json]:
    sys.path.insert(0, str(HERE.parents[1]))
    from alerts.replay import replay
    from config.policy import load_policy
    from streams.cli.replay_files import read_bans, read_events

    policy = load_policy()
    with tempfile.TemporaryDirectory() as tmp:
        bp, ep = Path(tmp, "bans.jsonl"), Path(tmp, "events.jsonl")
        bp.write_text(_jsonl(bans), "utf-8")
        ep.write_text(_jsonl(events), "utf-8")
        now = t(NOW)
        out = replay(
            read_bans(str(bp), policy, now),
            read_events(str(ep)),
            policy,
            now,
            None if until is None else t(until),
        )
        return [{"topic": tp, "key": k, "value": v} for tp, k, v in out]


def _resolve_refs(sc: Scenario) -> list[Json]:
    """Replay, look up the alerts the actions refer to, and repeat until nothing changes: an
    action can change what follows it, so later ids are read from a replay that includes it."""
    refs = {e["key"] for _, _, e in sc.story.items if isinstance(e["key"], Ref | TaskRef)}
    opened: dict[Any, tuple[str, datetime]] = {}
    for _ in range(20):
        events = sc.story.events(opened)
        seen: dict[str, list[tuple[str, datetime]]] = {}
        tasks: dict[str, list[tuple[str, datetime]]] = {}
        for o in _replay(sc.bans, events, sc.until):
            if o["topic"] == "alerts":
                of_kind = seen.setdefault(o["value"]["kind"], [])
                if o["key"] not in [aid for aid, _ in of_kind]:
                    of_kind.append((o["key"], t(o["value"]["opened_at"])))
            elif o["topic"] == "patrol-tasks" and o["value"]["seq"] == 1:
                tasks.setdefault(o["value"]["kind"], []).append(
                    (o["value"]["task_id"], t(o["value"]["created_at"]))
                )
        new: dict[Any, tuple[str, datetime]] = {}
        for r in refs:
            found = (seen if isinstance(r, Ref) else tasks).get(r.kind, [])
            if r.nth < len(found):
                new[r] = found[r.nth]
        if new == opened and len(new) == len(refs):
            return events
        opened = new
    missing = sorted(f"{r.kind}#{r.nth}" for r in refs - set(opened))
    raise SystemExit(f"{sc.name}: acks refer to alerts that never appear: {missing}")


def write(sc: Scenario) -> None:
    d = HERE / sc.name
    d.mkdir(exist_ok=True)
    (d / "bans.jsonl").write_text(_jsonl(sc.bans), "utf-8")
    (d / "events.jsonl").write_text(_jsonl(_resolve_refs(sc)), "utf-8")
    (d / "args.json").write_text(json.dumps({"now": NOW, "until": sc.until}) + "\n", "utf-8")
    (d / "README.md").write_text(f"# {sc.name}\n\n{textwrap.dedent(sc.readme)}", "utf-8")


def main(names: list[str]) -> None:
    sys.modules.setdefault("build", sys.modules[__name__])  # one module: one `Ref` class
    from build_v2_fix import SCENARIOS as V2_FIX  # contract v2 rules 3-6
    from build_v2_incidents import SCENARIOS as V2_INCIDENTS  # contract v2 rules 7-9
    from build_v2_tasks import SCENARIOS as V2_TASKS  # contract v2 task lifecycle
    from build_v2_warnings import SCENARIOS as V2_WARNINGS  # protected-person warnings

    for make in [*SCENARIOS, *V2_FIX, *V2_INCIDENTS, *V2_TASKS, *V2_WARNINGS]:
        sc = make()
        if not names or sc.name in names:
            write(sc)
            print(f"wrote tests/scenarios/{sc.name}/")


if __name__ == "__main__":
    import build  # one copy of Ref and Story for this file and the build_*.py it loads

    build.main(sys.argv[1:])
