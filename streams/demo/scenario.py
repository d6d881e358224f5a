"""`banwatch up --demo`: a scripted evening in Södertälje and on Södermalm, played in real time.

What a newcomer sees (seconds from the start of the demo; checked against the decision core by
tests/streams/test_console_demo.py):

- 0: three contact bans are registered; ankle tags, a victim's phone and seven patrol cars
  report every 5 s.
- 3: the monitoring centre relays a **tamper** alarm from P-5120's tag on Kungsholmen, raised
  45 s earlier: a priority-1 `tamper` alert and a `respond` task for CI-1210, already past
  its acceptance SLA (`task_accept_sla_s`, counted from the alarm): `expired`, and the task
  goes on to SM-3330.
- 5: P-7731 drives towards the protected home near Södertälje centrum: `approach` (p2).
- 11: P-8810 cycles down Götgatan towards P-2207 on Medborgarplatsen: `approach` (p2).
- 18: nobody acknowledged the tamper alarm within `ack_sla_s` of its raising: **escalated**.
- 20: a neighbour's **tip** about a man outside the protected home: `tip` (p3).
- 26-31: P-8810 comes within 500 m of P-2207: `proximity_breach`, possible (p2) then
  confirmed (p1) with `respond` and `protect` tasks for two Södermalm cars and the outreach
  chain's `interview`.
- 40: P-7731 is inside the home zone: `zone_breach` (p1, confirmed), `respond` for SÖ-2140 and
  an `interview`.
- 91 and 100: the two breaches, unless acknowledged by then, escalate.
- 150-175: both men leave, their episodes end. The demo then keeps every device reporting.

With `actors` (as `up --demo` plays it; streams/demo/actors.py) the units and roles answer
(measured in one run at the default pace): SM-3330 accepts the tamper task at 7 s, drives to
Kungsholmen and closes it at 58 s; P-8810's respond car declines at 35 s and the task moves
on to CI-1210, which accepts, drives and closes; SM-3310 protects P-2207; the investigator
holds P-8810's interview (37 s), the negotiator the motivational talk with consent (44 s),
and a `referral` to social services appears; SÖ-2140 accepts at 44 s, is on scene at the
protected home at 57 s and closes at 67 s. Without actors nobody answers: every respond
expires after `task_accept_sla_s` and goes to the next unit, three times.

The tamper alarm's relay delay is how real alarms reach a stream (the device's own time, late);
it is also what lets the escalation show within the first minute. P-5120's tag stays silent
after the tamper, so a `signal_lost` alert follows `signal_timeout_s` later.

Records are built by `script` (pure: given a start time, the same records) and sent by
`play_demo` at their moment, each timestamped with the wall clock when sent (so `speed`
changes the pace without producing records from the future). Places and identities are the
golden scenarios' (tests/scenarios/build.py); every identifier is a pseudonym.

One module over ~400 lines on purpose: it is a script, read top to bottom like the story it
tells; cut into parts it would have to be read in several files at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from config.topics import (
    CONTACT_BANS,
    INCIDENTS,
    PATROL_POSITIONS,
    PATROL_TASKS,
    POSITIONS,
    TASK_UPDATES,
    TopicNames,
)
from streams.demo.tracks import LatLon, Track, track
from streams.kafka.blocking import encode_json
from streams.kafka.clients import record_producer

if TYPE_CHECKING:
    from streams.demo.actors import Pace

log = logging.getLogger("banwatch.demo")

M_PER_DEG = 111_320.0
FIX_EVERY_S = 5.0
SCRIPT_S = 240.0  # after this the demo only keeps every device reporting, until stopped

# Södertälje
SODERTALJE_HOME = (59.1955, 17.6290)
POLICE_STATION = (59.1966, 17.6268)
RONNA = (59.2060, 17.6500)
GENETA = (59.1870, 17.5950)
# Södermalm
MEDBORGARPLATSEN = (59.3143, 18.0735)
HAMMARBY_SJOSTAD = (59.3040, 18.1000)
SKANSTULL = (59.3080, 18.0760)
SLUSSEN = (59.3195, 18.0720)
HORNSTULL = (59.3157, 18.0340)
# Kungsholmen / Vasastan
KUNGSHOLMEN = (59.3300, 18.0300)
VASASTAN = (59.3450, 18.0450)


def move(p: LatLon, north_m: float, east_m: float) -> LatLon:
    """The point `north_m`/`east_m` metres from `p` (local flat approximation)."""
    return (
        p[0] + north_m / M_PER_DEG,
        p[1] + east_m / (M_PER_DEG * math.cos(math.radians(p[0]))),
    )


def box(centre: LatLon, half_ns_m: float, half_ew_m: float) -> list[list[float]]:
    """A closed GeoJSON ring ([lon, lat]) around `centre`: a city block."""
    s, w = move(centre, -half_ns_m, -half_ew_m)
    n, e = move(centre, half_ns_m, half_ew_m)
    ring = [(w, s), (e, s), (e, n), (w, n), (w, s)]
    return [[round(x, 6), round(y, 6)] for x, y in ring]


def circling(centre: LatLon, radius_m: float, period_s: float, phase: float = 0.0) -> Track:
    """A patrol car circling its post, as waypoints every 5 s over the whole script."""
    pts = []
    t = 0.0
    while t <= SCRIPT_S + 5:
        ang = phase + 2 * math.pi * t / period_s
        pts.append((t, move(centre, radius_m * math.sin(ang), radius_m * math.cos(ang))))
        t += 5.0
    return track(*pts)


@dataclass
class Record:
    """One record to send `at_s` seconds into the demo; a `ts` field, when the value has one,
    is set to the send time plus `lag_s` (negative: something that happened earlier)."""

    at_s: float
    topic: str  # the contract's name, without prefix
    key: str
    value: dict[str, Any]
    lag_s: float = 0.0
    stamped: bool = field(default=True)


def _ban(
    ban_id: str,
    restrained: str,
    protected: list[str],
    zones: list[dict[str, Any]],
    t0: datetime,
    *,
    kind: str = "extended",
    proximity_m: float | None = 500,
) -> dict[str, Any]:
    day = t0.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "ban_id": ban_id,
        "version": 1,
        "kind": kind,
        "status": "active",
        "restrained_person": restrained,
        "protected_persons": protected,
        "valid_from": (day - timedelta(days=21)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "valid_until": (day + timedelta(days=160)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "electronic_monitoring": True,
        "proximity_m": proximity_m,
        "zones": {"type": "FeatureCollection", "features": zones},
    }


def _polygon(zone_id: str, label: str, ring: list[list[float]], buffer_m: float) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"zone_id": zone_id, "label": label, "buffer_m": buffer_m},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def _circle(zone_id: str, label: str, p: LatLon, radius_m: float) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"zone_id": zone_id, "label": label, "radius_m": radius_m},
        "geometry": {"type": "Point", "coordinates": [p[1], p[0]]},
    }


def bans(t0: datetime) -> list[dict[str, Any]]:
    """The demo's three bans; valid from three weeks before `t0`'s day for about five months."""
    return [
        _ban(
            "KF-2026-0042",
            "P-7731",
            ["P-1102"],
            [
                _polygon("home", "Bostad", box(SODERTALJE_HOME, 45, 60), 50),
                _circle("work", "Arbetsplats", (59.1830, 17.6080), 150),
            ],
            t0,
        ),
        _ban(
            "KF-2026-0077",
            "P-8810",
            ["P-2207"],
            [_polygon("home", "Bostad", box(HAMMARBY_SJOSTAD, 40, 50), 25)],
            t0,
            kind="special_extended",
        ),
        _ban(
            "KF-2026-0103",
            "P-5120",
            ["P-3390"],
            [_polygon("home", "Bostad", box(VASASTAN, 40, 40), 50)],
            t0,
            proximity_m=None,
        ),
    ]


# who moves where, in seconds since the start of the demo
P7731 = track(  # by car from the Ronna road into the protected home's block, then away
    (0, move(SODERTALJE_HOME, 560, 520)),
    (25, move(SODERTALJE_HOME, 260, 200)),
    (35, move(SODERTALJE_HOME, 110, 20)),
    (45, move(SODERTALJE_HOME, 30, 0)),
    (60, SODERTALJE_HOME),
    (150, SODERTALJE_HOME),
    (175, move(SODERTALJE_HOME, 260, 250)),
    (200, move(SODERTALJE_HOME, 600, 700)),
)
P2207 = circling(MEDBORGARPLATSEN, 60, 200)  # the protected person, strolling on the square
P8810 = track(  # by bike down Götgatan from Slussen towards her, waits, then back west
    (0, move(MEDBORGARPLATSEN, 680, -180)),
    (30, move(MEDBORGARPLATSEN, 500, -120)),
    (45, move(MEDBORGARPLATSEN, 420, -100)),
    (140, move(MEDBORGARPLATSEN, 420, -100)),
    (170, move(MEDBORGARPLATSEN, 700, -900)),
    (200, HORNSTULL),
)
P5120 = track((0, KUNGSHOLMEN))
TAMPER_AT_S = 3.0
TAMPER_LAG_S = 45.0
TIP_AT_S = 20.0

UNITS: list[tuple[str, Track]] = [
    (
        "SÖ-2140",
        track(  # from the police station to the protected home once the breach is on
            (0, POLICE_STATION),
            (45, POLICE_STATION),
            (75, move(SODERTALJE_HOME, 70, -20)),
        ),
    ),
    ("SÖ-2150", circling(RONNA, 150, 180, 1.0)),
    ("SÖ-2160", circling(GENETA, 150, 220, 2.0)),
    (
        "SM-3310",
        track((0, SKANSTULL), (40, SKANSTULL), (80, move(MEDBORGARPLATSEN, -30, 10))),
    ),
    (
        "SM-3320",
        track((0, SLUSSEN), (40, SLUSSEN), (80, move(MEDBORGARPLATSEN, 440, -80))),
    ),
    ("SM-3330", circling(HORNSTULL, 120, 200, 0.5)),
    (
        "CI-1210",
        track(
            (0, move(KUNGSHOLMEN, 400, -300)),
            (10, move(KUNGSHOLMEN, 400, -300)),
            (60, move(KUNGSHOLMEN, 20, -20)),
        ),
    ),
]


def _fix(person: str, device: str, source: str, p: LatLon, acc: float) -> dict[str, Any]:
    return {
        "person_id": person,
        "device_id": device,
        "lat": round(p[0], 6),
        "lon": round(p[1], 6),
        "accuracy_m": acc,
        "source": source,
    }


def script(t0: datetime, until_s: float = SCRIPT_S) -> list[Record]:
    """Every record of the demo up to `until_s`, in sending order."""
    out: list[Record] = [Record(0.0, CONTACT_BANS, b["ban_id"], b, stamped=False) for b in bans(t0)]
    people = [
        ("P-7731", "EM-0091", "ankle_tag", P7731, 0.5, (7.0, 9.0), None),
        ("P-2207", "VD-2207", "victim_device", P2207, 1.0, (6.0, 10.0), None),
        ("P-8810", "EM-0412", "ankle_tag", P8810, 1.5, (5.0, 8.0), None),
        ("P-5120", "EM-0233", "ankle_tag", P5120, 2.0, (6.0, 6.0), TAMPER_AT_S),
    ]
    n = 0
    t = 0.0
    while t <= until_s:
        for person, device, source, where, offset, (a, b), silent_after in people:
            at = t + offset
            if silent_after is not None and at > silent_after:
                continue  # the tag was torn off
            acc = a + (b - a) * ((n * 7 + len(person)) % 5) / 4
            out.append(
                Record(at, POSITIONS, person, _fix(person, device, source, where.at(at), acc))
            )
        for i, (unit, where) in enumerate(UNITS):
            at = t + 0.3 * i
            lat, lon = where.at(at)
            value = {
                "unit_id": unit,
                "lat": round(lat, 6),
                "lon": round(lon, 6),
                "status": "available",
                "capabilities": ["patrol"],
            }
            out.append(Record(at, PATROL_POSITIONS, unit, value))
        n += 1
        t += FIX_EVERY_S
    kungsholmen = P5120.at(TAMPER_AT_S)
    out.append(
        Record(
            TAMPER_AT_S,
            INCIDENTS,
            "I-DEMO-0001",
            {
                "incident_id": "I-DEMO-0001",
                "kind": "device_tamper",
                "ban_id": "KF-2026-0103",
                "person_id": "P-5120",
                "lat": round(kungsholmen[0], 6),
                "lon": round(kungsholmen[1], 6),
                "source": "monitoring_centre",
                "note": "strap opened, tag reports case tamper",
            },
            lag_s=-TAMPER_LAG_S,
        )
    )
    outside = move(SODERTALJE_HOME, 10, 20)
    out.append(
        Record(
            TIP_AT_S,
            INCIDENTS,
            "I-DEMO-0002",
            {
                "incident_id": "I-DEMO-0002",
                "kind": "tip",
                "ban_id": None,
                "person_id": None,
                "lat": round(outside[0], 6),
                "lon": round(outside[1], 6),
                "source": "public",
                "note": "neighbour: a man has been standing outside the entrance for a while",
            },
        )
    )
    out.sort(key=lambda r: r.at_s)
    return out


def stamp(record: Record, sent: datetime) -> dict[str, Any]:
    """The record's value with `ts` set for the moment it is sent."""
    if not record.stamped:
        return record.value
    ts = sent + timedelta(seconds=record.lag_s)
    return {**record.value, "ts": ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def heartbeat(t: float) -> list[Record]:
    """After the script: every device still reporting where its script left it."""
    out = []
    for person, device, source, where in (
        ("P-7731", "EM-0091", "ankle_tag", P7731),
        ("P-2207", "VD-2207", "victim_device", P2207),
        ("P-8810", "EM-0412", "ankle_tag", P8810),
    ):
        out.append(
            Record(t, POSITIONS, person, _fix(person, device, source, where.at(SCRIPT_S), 8.0))
        )
    for unit, where in UNITS:
        lat, lon = where.at(SCRIPT_S)
        value = {
            "unit_id": unit,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "status": "available",
            "capabilities": ["patrol"],
        }
        out.append(Record(t, PATROL_POSITIONS, unit, value))
    return out


def driven(record: Record, drives: Mapping[str, Track]) -> Record:
    """A patrol car's position record where the demo's actors drive it instead of its script
    (streams/demo/actors.py)."""
    drive = drives.get(record.key) if record.topic == PATROL_POSITIONS else None
    if drive is None:
        return record
    lat, lon = drive.at(record.at_s)
    value = {**record.value, "lat": round(lat, 6), "lon": round(lon, 6)}
    return Record(record.at_s, record.topic, record.key, value, record.lag_s, record.stamped)


def scripted_position(unit: str, t: float) -> LatLon | None:
    """Where the script has patrol car `unit` at `t` seconds into the demo."""
    for name, where in UNITS:
        if name == unit:
            return where.at(min(t, SCRIPT_S))
    return None


async def play_demo(
    bootstrap: str,
    prefix: str,
    stop: asyncio.Event,
    *,
    speed: float = 1.0,
    security: Mapping[str, Any] | None = None,
    actors: bool = False,
    pace: Pace | None = None,
) -> None:
    """Send the demo to the input topics in real time (`speed` > 1: faster) until `stop`.
    `actors`: units and roles answer their tasks too (streams/demo/actors.py, `pace` theirs),
    as `banwatch up --demo` plays it."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    names = TopicNames.with_prefix(prefix)
    topic = names.deployed()
    producer = record_producer(bootstrap, "banwatch-demo", security)
    await producer.start()
    loop = asyncio.get_running_loop()
    start = loop.time()
    drives: dict[str, Track] = {}
    players: asyncio.Task[None] | None = None
    if actors:
        from streams.demo.actors import Actors, Pace

        async def answer(task_id: str, value: dict[str, Any]) -> None:
            await producer.send_and_wait(
                topic[TASK_UPDATES], key=task_id.encode("utf-8"), value=encode_json(value)
            )

        cast = Actors(
            answer,
            lambda: (loop.time() - start) * speed,
            scripted_position,
            drives,
            pace if pace is not None else Pace(),
            speed,
        )
        players = asyncio.create_task(
            cast.run(bootstrap, topic[PATROL_TASKS], stop, security), name="demo-actors"
        )

    async def wait_until(at_s: float) -> bool:
        delay = start + at_s / speed - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        return not stop.is_set()

    async def send(record: Record) -> None:
        if players is not None and players.done():
            players.result()  # the actors failed: so does the demo
        value = stamp(driven(record, drives), datetime.now(UTC))
        await producer.send(
            topic[record.topic], key=record.key.encode("utf-8"), value=encode_json(value)
        )

    try:
        sent = 0
        for record in script(datetime.now(UTC)):
            if not await wait_until(record.at_s):
                return
            await send(record)
            sent += 1
            if record.topic == CONTACT_BANS:
                await producer.flush()  # the bans first, before any fix
        log.info("demo script done (%d records); devices keep reporting", sent)
        t = SCRIPT_S
        while True:
            t += 10.0
            if not await wait_until(t):
                return
            for record in heartbeat(t):
                await send(record)
    finally:
        if players is not None:
            players.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await players
        await producer.stop()
