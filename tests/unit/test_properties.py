"""Hypothesis properties of the core: index == brute force, replay is deterministic, nothing
alerts outside a ban's validity, zone-breach alerts follow their lifecycle, batching changes
nothing. Examples are kept small enough that each test runs in a few seconds.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alerts.engine import Engine, Incoming
from alerts.model import ALERTS, Output
from alerts.replay import replay
from config.policy import Policy
from geofence.decoding import ACKS, BANS, INCIDENTS, PATROL_POSITIONS, POSITIONS
from geofence.records import ZoneFeature
from geofence.spatial import ZoneIndex, ZoneTable
from geofence.zones import Zone, compile_zone, signed_distance
from tests.unit.catalogue import (
    BOUNDARY_TOL_M,
    Json,
    ban,
    circle,
    direct,
    encode,
    feature,
    fix,
    incident,
    patrol,
    rect,
    ts,
)

POLICY = Policy()
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
REPLAY_NOW = T0 + timedelta(days=2)  # decode's "now": no record below is from the future
CENTRE = (59.1961, 17.6268)  # Södertälje
BAN_ID = "KF-2026-0042"
RESTRAINED, PROTECTED = "P-7731", "P-1102"
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ======================================================================== zones
# Centres to scatter zones around: Södertälje, and both sides of the antimeridian (Fiji).
BASES = [CENTRE, (-17.0, 179.998), (-17.0, -179.998)]


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


@st.composite
def zone_features(draw: st.DrawFn, zone_id: str, bases: list[tuple[float, float]]) -> Json:
    """A circle, a lon/lat rectangle (mostly at most 1 km a side, sometimes up to 40 km), or
    a U-shaped block open to the south (concave: a buffer may fill its courtyard), within
    2 km of a base point; shapes reaching across the antimeridian get longitudes jumping from
    +179.x to -179.x."""
    base = draw(st.sampled_from(bases))
    lat, lon = direct(*base, draw(st.floats(-180, 180)), draw(st.floats(0, 2000)))
    buffer_m = draw(st.sampled_from([0.0, 0.0, 5.0, 50.0]) | st.floats(0, 200))
    kind = draw(st.sampled_from(["circle", "rect", "u"]))
    if kind == "circle":
        return circle(zone_id, lat, lon, draw(st.floats(1, 800)), buffer_m=buffer_m)
    lo = 30.0 if kind == "u" else 2.0
    side = st.floats(lo, 1000) | st.floats(1000, 40_000)
    lat1 = direct(lat, lon, 0.0, draw(side))[0]
    lon1 = direct(lat, lon, 90.0, draw(side))[1]
    if kind == "rect":
        return rect(zone_id, lon, lat, lon1, lat1, buffer_m=buffer_m)
    w, h = _wrap(lon1 - lon), lat1 - lat
    a, b, top = _wrap(lon + w / 3), _wrap(lon + 2 * w / 3), lat + 2 * h / 3
    u = [[lon, lat], [a, lat], [a, top], [b, top], [b, lat], [lon1, lat], [lon1, lat1]]
    return feature(zone_id, "Polygon", [[*u, [lon, lat1], [lon, lat]]], buffer_m=buffer_m)


@st.composite
def points_near(draw: st.DrawFn, bases: list[tuple[float, float]]) -> tuple[float, float]:
    base = draw(st.sampled_from(bases))
    return direct(*base, draw(st.floats(-180, 180)), draw(st.floats(0, 3500)))


def _compile(f: Json) -> Zone:
    return compile_zone(ZoneFeature.model_validate(f))


def _check_index(table: ZoneTable, index: ZoneIndex, points: Iterable[tuple[float, float]]) -> None:
    """index.containing(p) == every live zone with signed_distance <= 0; a zone within
    BOUNDARY_TOL_M of its boundary may go either way (float noise, see test_geometry)."""
    for lat, lon in points:
        got = set(index.containing(lat, lon).tolist())
        for slot, zone in enumerate(table.zones):
            if zone is None:
                assert slot not in got
                continue
            sd = signed_distance(zone, lat, lon)
            if abs(sd) > BOUNDARY_TOL_M:
                assert (slot in got) == (sd <= 0.0), (slot, zone.zone_id, sd)


@FAST
@given(
    zones=st.lists(zone_features("z", BASES), min_size=1, max_size=12),
    points=st.lists(points_near(BASES), min_size=1, max_size=25),
)
def test_index_containing_equals_brute_force(
    zones: list[Json], points: list[tuple[float, float]]
) -> None:
    table = ZoneTable()
    index = ZoneIndex(table)
    for f in zones:
        index.add(table.add(_compile(f)))
    # the probes: random points plus every zone's own centre or corner
    own = [
        tuple(f["geometry"]["coordinates"][::-1])
        if f["geometry"]["type"] == "Point"
        else tuple(f["geometry"]["coordinates"][0][0][::-1])
        for f in zones
    ]
    _check_index(table, index, [*points, *own])


@FAST
@given(
    zones=st.lists(zone_features("z", BASES), min_size=1, max_size=6),
    points=st.lists(points_near(BASES), min_size=1, max_size=25),
)
def test_batched_signed_distances_equal_scalar(
    zones: list[Json], points: list[tuple[float, float]]
) -> None:
    """Every (zone, point) pair in one batched call, in shuffled order, equals the scalar
    reference (contract v2 rule 2's exact depths included)."""
    table = ZoneTable()
    compiled = [_compile(f) for f in zones]
    slots = [table.add(z) for z in compiled]
    pairs = [(i, p) for i in range(len(zones)) for p in points][::-1]
    got = table.signed_distances(
        np.asarray([slots[i] for i, _ in pairs], dtype=np.int64),
        np.asarray([p[0] for _, p in pairs]),
        np.asarray([p[1] for _, p in pairs]),
    )
    want = [signed_distance(compiled[i], *p) for i, p in pairs]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@dataclass(frozen=True)
class Add:
    feature: Json


@dataclass(frozen=True)
class Remove:
    pick: int  # index into the live slots, modulo their number


OPS = st.lists(
    st.one_of(
        zone_features("z", BASES).map(Add),
        zone_features("z", BASES).map(Add),
        st.integers(0, 1000).map(Remove),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=OPS,
    capacity=st.integers(1, 6),
    rebuild_after=st.integers(0, 5),
    points=st.lists(points_near(BASES), min_size=1, max_size=4),
)
def test_index_equals_brute_force_through_adds_and_removes(
    ops: list[Add | Remove], capacity: int, rebuild_after: int, points: list[tuple[float, float]]
) -> None:
    """Random add/remove sequences with a small rebuild threshold (so that they cross it many
    times), slots reused after removal, the table growing: checked after every step."""
    table = ZoneTable(capacity=capacity)
    index = ZoneIndex(table)
    index.REBUILD_AFTER = rebuild_after  # the class's threshold, lowered for this index
    live: list[int] = []
    compiled: dict[str, Zone] = {}
    for op in ops:
        if isinstance(op, Add):
            key = json.dumps(op.feature)
            zone = compiled.setdefault(key, _compile(op.feature))
            slot = table.add(zone)
            index.add(slot)
            live.append(slot)
        elif live:
            slot = live.pop(op.pick % len(live))
            index.remove(slot)  # the registry's order: index first, then the table
            table.remove(slot)
        _check_index(table, index, points)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_index_equals_brute_force_across_the_real_rebuild_threshold(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = ZoneIndex.REBUILD_AFTER + 40
    table = ZoneTable()
    index = ZoneIndex(table)
    slots = []
    for i in range(n):
        lat, lon = direct(*CENTRE, rng.uniform(-180, 180), rng.uniform(0, 5000))
        slots.append(table.add(_compile(circle(f"z{i}", lat, lon, rng.uniform(5, 300)))))
        index.add(slots[-1])
    points = [direct(*CENTRE, rng.uniform(-180, 180), rng.uniform(0, 5500)) for _ in range(40)]
    _check_index(table, index, points)
    rng.shuffle(slots)
    for slot in slots[: ZoneIndex.REBUILD_AFTER + 10]:
        index.remove(slot)
        table.remove(slot)
    _check_index(table, index, points)
    for i in range(20):  # reuse freed slots while some removals are still pending
        lat, lon = direct(*CENTRE, rng.uniform(-180, 180), rng.uniform(0, 5000))
        index.add(table.add(_compile(rect(f"r{i}", lon, lat, lon + 0.005, lat + 0.003))))
    _check_index(table, index, points)


# ======================================================================== event logs
def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _msg(topic: str, key: str | None, value: Json | None) -> Incoming:
    return Incoming(topic, key, None if value is None else encode(value))


def _position(draw: st.DrawFn, max_m: float = 2500.0) -> tuple[float, float]:
    return direct(*CENTRE, draw(st.floats(-180, 180)), draw(st.floats(0, max_m)))


def _ban_value(draw: st.DrawFn, **overrides: Any) -> Json:
    feats = [draw(zone_features("home", [CENTRE]))]
    if draw(st.booleans()):
        feats.append(draw(zone_features("work", [CENTRE])))
    value = ban(
        BAN_ID,
        features=feats,
        version=1,
        valid_from=ts(T0 - timedelta(days=1)),
        valid_until=ts(T0 + timedelta(days=1)),
        proximity_m=draw(st.none() | st.sampled_from([100.0, 500.0])),
        electronic_monitoring=draw(st.booleans()),
    )
    value.update(overrides)
    return value


@st.composite
def event_logs(draw: st.DrawFn) -> tuple[Json, list[Incoming]]:
    """One ban, then a log of fixes (both persons, two devices of the restrained person),
    patrol positions, incidents, ban updates and lifts, and undecodable junk, in an event
    time that mostly moves forward (sometimes back: out-of-order records)."""
    the_ban = _ban_value(draw)
    version = 1
    events: list[Incoming] = []
    clock = 0.0
    for _ in range(draw(st.integers(1, 30))):
        clock = max(0.0, clock + draw(st.sampled_from([-40, 0, 5, 10, 30, 60, 200, 400])))
        at = _at(clock)
        what = draw(
            st.sampled_from(
                ["restrained"] * 6 + ["protected"] * 2 + ["patrol", "incident", "junk", "ban"]
            )
        )
        if what == "restrained":
            device = draw(st.sampled_from(["EM-0091", "EM-0091", "PH-7731"]))
            source = "ankle_tag" if device.startswith("EM") else "phone"
            f = fix(
                *_position(draw),
                at=at,
                device_id=device,
                source=source,
                accuracy_m=draw(st.sampled_from([3.0, 10.0, 40.0, 99.0, 150.0])),
            )
            events.append(_msg(POSITIONS, RESTRAINED, f))
        elif what == "protected":
            f = fix(
                *_position(draw),
                at=at,
                person_id=PROTECTED,
                device_id="PH-1102",
                source="victim_device",
                accuracy_m=draw(st.sampled_from([5.0, 30.0])),
            )
            events.append(_msg(POSITIONS, PROTECTED, f))
        elif what == "patrol":
            lat, lon = _position(draw, 5000.0)
            unit = draw(st.sampled_from(["SÖ-2140", "SÖ-2150"]))
            p = patrol(
                unit_id=unit,
                ts=ts(at),
                lat=lat,
                lon=lon,
                status=draw(st.sampled_from(["available", "busy"])),
            )
            events.append(_msg(PATROL_POSITIONS, unit, p))
        elif what == "incident":
            lat, lon = _position(draw)
            iid = draw(st.sampled_from(["I-1", "I-2", "I-3"]))
            inc = incident(
                incident_id=iid,
                ts=ts(at),
                lat=lat,
                lon=lon,
                kind=draw(
                    st.sampled_from(
                        [
                            "reported_contact",
                            "sos",
                            "threat",
                            "tip",
                            "device_tamper",
                            "device_battery_low",
                        ]
                    )
                ),
                ban_id=draw(st.sampled_from([BAN_ID, None, "KF-OTHER"])),
                person_id=draw(st.sampled_from([None, RESTRAINED, PROTECTED, "P-9999"])),
            )
            events.append(_msg(INCIDENTS, iid, inc))
        elif what == "junk":
            events.append(
                Incoming(
                    draw(st.sampled_from([POSITIONS, ACKS, INCIDENTS])),
                    "x",
                    draw(st.binary(max_size=30)),
                )
            )
        elif draw(st.booleans()):
            events.append(_msg(BANS, BAN_ID, None))  # lifted
        else:
            version += 1
            update = _ban_value(
                draw, version=version, status=draw(st.sampled_from(["active", "revoked"]))
            )
            events.append(_msg(BANS, BAN_ID, update))
    return the_ban, events


def _replay_bytes(the_ban: Json, events: list[Incoming]) -> bytes:
    out = replay([encode(the_ban)], events, POLICY, REPLAY_NOW)
    return b"".join(
        json.dumps({"topic": t, "key": k, "value": v}, ensure_ascii=False).encode() + b"\n"
        for t, k, v in out
    )


# ======================================================================== (b) determinism
@FAST
@given(event_logs())
def test_replay_is_deterministic(log: tuple[Json, list[Incoming]]) -> None:
    the_ban, events = log
    first = list(replay([encode(the_ban)], events, POLICY, REPLAY_NOW))
    second = list(replay([encode(the_ban)], list(events), POLICY, REPLAY_NOW))
    assert first == second
    assert _replay_bytes(the_ban, events) == _replay_bytes(the_ban, events)


_SUBPROCESS = """
import sys
from tests.unit.test_properties import _replay_bytes, _fixed_log
sys.stdout.buffer.write(_replay_bytes(*_fixed_log()))
"""


def _fixed_log() -> tuple[Json, list[Incoming]]:
    """A busy log from a fixed seed: 200 fixes, patrols, incidents matched by position."""
    rng = np.random.default_rng(2026)
    the_ban = ban(
        BAN_ID,
        features=[
            circle("home", *CENTRE, 150.0, buffer_m=20.0),
            rect("work", 17.64, 59.20, 17.645, 59.203),
        ],
        version=1,
        valid_from=ts(T0 - timedelta(days=1)),
        proximity_m=500.0,
    )
    events = [
        _msg(PATROL_POSITIONS, u, patrol(unit_id=u, ts=ts(T0), lat=lat, lon=lon))
        for u, (lat, lon) in (
            ("SÖ-2140", direct(*CENTRE, 10, 900)),
            ("SÖ-2150", direct(*CENTRE, 200, 1500)),
        )
    ]
    for i in range(200):
        who = RESTRAINED if rng.uniform() < 0.7 else PROTECTED
        lat, lon = direct(*CENTRE, rng.uniform(-180, 180), rng.uniform(0, 1500))
        device = "EM-0091" if who == RESTRAINED else "PH-1102"
        events.append(
            _msg(
                POSITIONS,
                who,
                fix(
                    lat,
                    lon,
                    at=_at(20 * i),
                    person_id=who,
                    device_id=device,
                    accuracy_m=float(rng.choice([5, 30, 120])),
                ),
            )
        )
        if i % 37 == 5:
            events.append(
                _msg(
                    INCIDENTS,
                    f"I-{i}",
                    incident(
                        incident_id=f"I-{i}", ts=ts(_at(20 * i)), ban_id=None, lat=lat, lon=lon
                    ),
                )
            )
    return the_ban, events


@pytest.mark.slow  # > 2 s
def test_replay_is_deterministic_across_processes() -> None:
    """Byte for byte, also under different string-hash seeds (set and dict order)."""
    root = Path(__file__).resolve().parents[2]
    outs = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        done = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS],
            cwd=root,
            env=env,
            capture_output=True,
            check=True,
            timeout=120,
        )
        outs.append(done.stdout)
    assert outs[0] and outs[0] == outs[1] == outs[2]
    assert outs[0] == _replay_bytes(*_fixed_log())


# ======================================================================== (c) validity window
WINDOW = (T0, T0 + timedelta(hours=1))


@st.composite
def outside_window(draw: st.DrawFn) -> datetime:
    before = WINDOW[0] - timedelta(microseconds=draw(st.integers(1, 86_400 * 10**6)))
    after = WINDOW[1] + timedelta(microseconds=draw(st.integers(0, 86_400 * 10**6)))
    return draw(st.sampled_from([before, after, WINDOW[1], WINDOW[0] - timedelta(microseconds=1)]))


@st.composite
def anytime(draw: st.DrawFn) -> datetime:
    return WINDOW[0] + timedelta(seconds=draw(st.integers(-7200, 7200)))


@st.composite
def unenforceable_logs(draw: st.DrawFn) -> tuple[Json, list[Incoming]]:
    """A ban and records that it must not act on: all timestamped outside its validity
    window; or a revoked ban; or a ban lifted (tombstone) before everything else."""
    case = draw(st.sampled_from(["window", "revoked", "lifted"]))
    the_ban = _ban_value(
        draw,
        valid_from=ts(WINDOW[0]),
        valid_until=ts(WINDOW[1]),
        status="revoked" if case == "revoked" else "active",
    )
    when = outside_window() if case == "window" else anytime()
    events = [_msg(BANS, BAN_ID, None)] if case == "lifted" else []
    for _ in range(draw(st.integers(1, 25))):
        at = draw(when)
        kind = draw(st.sampled_from(["restrained", "restrained", "protected", "incident"]))
        lat, lon = _position(draw, 1200.0)
        if kind == "restrained":
            events.append(
                _msg(
                    POSITIONS,
                    RESTRAINED,
                    fix(lat, lon, at=at, accuracy_m=draw(st.sampled_from([3.0, 30.0, 150.0]))),
                )
            )
        elif kind == "protected":
            events.append(
                _msg(
                    POSITIONS,
                    PROTECTED,
                    fix(lat, lon, at=at, person_id=PROTECTED, device_id="PH-1102"),
                )
            )
        else:
            iid = f"I-{len(events)}"
            events.append(
                _msg(
                    INCIDENTS,
                    iid,
                    incident(
                        incident_id=iid,
                        ts=ts(at),
                        lat=lat,
                        lon=lon,
                        kind=draw(st.sampled_from(["reported_contact", "sos", "device_tamper"])),
                        ban_id=draw(st.sampled_from([BAN_ID, None])),
                        person_id=draw(st.sampled_from([None, RESTRAINED, PROTECTED])),
                    ),
                )
            )
    return the_ban, events


def _mentions_ban(outputs: Iterable[Output]) -> list[Output]:
    return [o for o in outputs if o[2] is not None and o[2].get("ban_id") == BAN_ID]


@FAST
@given(unenforceable_logs())
def test_nothing_alerts_outside_a_bans_validity(log: tuple[Json, list[Incoming]]) -> None:
    the_ban, events = log
    lifted = any(m.topic == BANS for m in events)
    out = list(replay([encode(the_ban)], events, POLICY, REPLAY_NOW))
    assert _not_sos_after_end(_mentions_ban(out), lifted) == []
    # and timers do not wake it up later either
    out = list(
        replay([encode(the_ban)], events, POLICY, REPLAY_NOW, until=WINDOW[1] + timedelta(days=1))
    )
    assert _not_sos_after_end(_mentions_ban(out), lifted) == []


def _not_sos_after_end(outputs: list[Output], lifted: bool) -> list[Output]:
    """`outputs` less what contract v2 rule 8 allows: an SOS (and its tasks) matched to a ban
    that ended (validity over or revoked: not lifted) and not before it began."""
    sos = {
        v["alert_id"]
        for _, _, v in outputs
        if v is not None
        and v.get("kind") == "sos"
        and "ban not in force" in v.get("reason", "")
        and not lifted
        and ts_of(v["opened_at"]) >= WINDOW[0]
    }
    return [o for o in outputs if o[2] is None or o[2].get("alert_id") not in sos]


def ts_of(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_window_sample_does_alert_inside() -> None:
    """The same kind of log, but inside the window: it does alert (the property is not
    vacuous)."""
    the_ban = ban(
        BAN_ID,
        features=[circle("home", *CENTRE, 150.0)],
        valid_from=ts(WINDOW[0]),
        valid_until=ts(WINDOW[1]),
    )
    f = fix(*CENTRE, at=WINDOW[0])
    out = list(replay([encode(the_ban)], [_msg(POSITIONS, RESTRAINED, f)], POLICY, REPLAY_NOW))
    assert any(v and v.get("kind") == "zone_breach" for _, _, v in _mentions_ban(out))


# ======================================================================== (d) lifecycle
@dataclass(frozen=True)
class Step:
    dt_s: int  # event time since the previous step (negative: an out-of-order fix)
    distance_m: float  # from the zone's centre
    azimuth: float
    accuracy_m: float
    device: str
    act: str | None = None  # "acknowledge" / "resolve" the newest zone-breach alert instead
    repeat: int = 1  # the same fix again, dt_s later each time (runs of clear fixes)


def steps(devices: list[str]) -> st.SearchStrategy[Step]:
    fixes = st.builds(
        Step,
        dt_s=st.sampled_from([-30, 0, 10, 30, 30, 60, 60, 120, 400]),
        # inside any walk zone, anywhere, or clearly outside every one (reach <= 454 m)
        distance_m=st.floats(0, 20) | st.floats(0, 900) | st.floats(1000, 1500),
        azimuth=st.floats(-180, 180),
        accuracy_m=st.sampled_from([3.0, 10.0, 40.0, 99.0, 150.0]),
        device=st.sampled_from(devices),
        repeat=st.integers(1, 4),
    )
    acts = st.builds(
        Step,
        dt_s=st.sampled_from([0, 5, 60]),
        distance_m=st.just(0.0),
        azimuth=st.just(0.0),
        accuracy_m=st.just(1.0),
        device=st.just(""),
        act=st.sampled_from(["acknowledge", "resolve"]),
    )
    return st.one_of(fixes, fixes, fixes, acts)


@st.composite
def walk_zone(draw: st.DrawFn) -> Json:
    buffer_m = draw(st.sampled_from([0.0, 30.0]))
    if draw(st.booleans()):
        return circle("home", *CENTRE, draw(st.floats(20, 400)), buffer_m=buffer_m)
    half = draw(st.floats(10, 300))
    lat0, lon0 = direct(*CENTRE, 225.0, half * 2**0.5)
    lat1, lon1 = direct(*CENTRE, 45.0, half * 2**0.5)
    return rect("home", lon0, lat0, lon1, lat1, buffer_m=buffer_m)


def _walk(zone: Json, walk: list[Step], em: bool) -> list[Json]:
    """Run the walk through the engine on an event clock; the zone_breach alert revisions."""
    engine = Engine(POLICY, event_clock=True)
    b = ban(
        BAN_ID,
        features=[zone],
        proximity_m=None,
        electronic_monitoring=em,
        valid_from=ts(T0 - timedelta(days=1)),
    )
    engine.handle(_msg(BANS, BAN_ID, b), REPLAY_NOW)
    revisions: list[Json] = []
    clock = 0
    for s in walk:
        clock = max(0, clock + s.dt_s)
        if s.act is not None:
            live = [r["alert_id"] for r in revisions]
            if not live:
                continue
            act = {"alert_id": live[-1], "action": s.act, "by": "op-17", "ts": ts(_at(clock))}
            results = [engine.handle(_msg(ACKS, live[-1], act), REPLAY_NOW)]
        else:
            lat, lon = direct(*CENTRE, s.azimuth, s.distance_m)
            source = "ankle_tag" if s.device.startswith("EM") else "phone"
            results = []
            for k in range(s.repeat):
                at = _at(clock + k * max(s.dt_s, 1))
                f = fix(lat, lon, at=at, device_id=s.device, source=source, accuracy_m=s.accuracy_m)
                results.append(engine.handle(_msg(POSITIONS, RESTRAINED, f), REPLAY_NOW))
            clock += (s.repeat - 1) * max(s.dt_s, 1)
        revisions.extend(
            v
            for res in results
            for t, _, v in res.outputs
            if t == ALERTS and v and v["kind"] == "zone_breach"
        )
    revisions.extend(
        v
        for t, _, v in engine.tick(_at(clock + 3600))
        if t == ALERTS and v and v["kind"] == "zone_breach"
    )
    return revisions


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


STATE_ORDER = {"open": 0, "updated": 1, "escalated": 2, "acknowledged": 3, "resolved": 4}


def _check_lifecycle(revisions: list[Json], one_device: bool = True) -> None:
    """Per alert: seq 1, 2, 3, ...; priority never 1 -> 2; states only move forward; after
    the episode ended only state changes. Per episode key (kind + zone or protected person):
    a new alert only once the previous one ended or was resolved (enter/exit alternate).
    With `one_device`, `updated_at` never goes back either (fixes are ordered per device
    only, so a second device may legitimately revise an alert with an older event time)."""
    by_alert: dict[str, list[Json]] = {}
    finished: dict[str, bool] = {}  # alert id -> its episode ended or it was resolved
    current: dict[tuple[str, str], str] = {}  # episode key -> newest alert id
    for r in revisions:
        aid, zone = r["alert_id"], (r["kind"], r["zone_id"] or r["protected_person"])
        history = by_alert.setdefault(aid, [])
        # seq 1, 2, 3, ... without gaps, and one alert id is one alert (never restarted)
        assert r["seq"] == len(history) + 1, (aid, r["seq"], [h["seq"] for h in history])
        if r["seq"] == 1:
            assert r["state"] == "open"
            prev = current.get(zone)
            assert prev is None or finished[prev], "a new alert while the previous one is live"
            current[zone] = aid
            finished[aid] = False
        else:
            last = history[-1]
            assert r["state"] != "open"
            assert last["state"] != "resolved", "a resolved alert never changes again"
            assert STATE_ORDER[r["state"]] >= STATE_ORDER[last["state"]], (last, r)
            assert r["priority"] <= last["priority"], "priority never goes from 1 to 2"
            assert r["opened_at"] == last["opened_at"]
            if one_device:
                assert _time(r["updated_at"]) >= _time(last["updated_at"])
            if last["episode"] == "ended":
                # after the exit only state changes: escalation, acknowledgement, resolution
                assert r["episode"] == "ended"
                assert r["state"] != last["state"]
                assert (r["position"], r["reason"]) == (last["position"], last["reason"])
        if r["episode"] == "ended" or r["state"] == "resolved":
            finished[aid] = True
        history.append(r)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zone=walk_zone(), walk=st.lists(steps(["EM-0091"]), max_size=40), em=st.booleans())
def test_zone_breach_alert_lifecycle(zone: Json, walk: list[Step], em: bool) -> None:
    _check_lifecycle(_walk(zone, walk, em))


def test_zone_breach_lifecycle_walk_is_not_vacuous() -> None:
    """In, out three times, in again: two alerts, the first ended, then escalations."""
    zone = circle("home", *CENTRE, 100.0)
    walk = [Step(60, 0.0, 0.0, 5.0, "EM-0091")] + [Step(60, 500.0, 0.0, 5.0, "EM-0091")] * 3
    walk += [Step(60, 0.0, 0.0, 5.0, "EM-0091")]
    revisions = _walk(zone, walk, em=False)
    _check_lifecycle(revisions)
    assert len({r["alert_id"] for r in revisions}) == 2
    assert [r["episode"] for r in revisions].count("ended") >= 1
    assert any(r["state"] == "escalated" for r in revisions)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone=walk_zone(),
    walk=st.lists(steps(["EM-0091", "PH-7731"]), max_size=40),
    em=st.booleans(),
)
@example(
    zone=circle("home", *CENTRE, 300.0),
    walk=[
        Step(0, 0.0, 0.0, 8.5, "EM-0091"),  # t=0 inside: alert A opens at t=0
        Step(60, 1000.0, 0.0, 8.5, "EM-0091"),
        Step(60, 1000.0, 0.0, 8.5, "EM-0091"),
        Step(60, 1000.0, 0.0, 8.5, "EM-0091"),  # t=180: third clear fix, A ended
        Step(-180, 0.0, 0.0, 8.5, "PH-7731"),  # t=0 from the phone: in order for its device
    ],
    em=False,
)
def test_zone_breach_alert_lifecycle_with_two_devices(
    zone: Json, walk: list[Step], em: bool
) -> None:
    """Ankle tag and phone: the explicit example is the alert-id collision once found (a new
    episode opened at the same event time as an ended one got the same alert id)."""
    _check_lifecycle(_walk(zone, walk, em), one_device=False)


# ======================================================================== (e) batching
def _results(engine: Engine, batches: list[list[Incoming]], now: datetime) -> list[Any]:
    out = []
    for batch in batches:
        for r in engine.handle_batch(batch, now):
            out.append((r.outcome, r.reason, r.outputs))
    return out


def _split(events: list[Incoming], cuts: list[int]) -> list[list[Incoming]]:
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    return [events[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@FAST
@given(
    log=event_logs(),
    cuts=st.lists(st.integers(0, 100), max_size=5),
    event_clock=st.booleans(),
)
def test_batches_decide_like_single_records(
    log: tuple[Json, list[Incoming]], cuts: list[int], event_clock: bool
) -> None:
    the_ban, events = log
    events = [_msg(BANS, BAN_ID, the_ban), *events]
    now = REPLAY_NOW if event_clock else T0 + timedelta(hours=3)
    one_by_one = _results(Engine(POLICY, event_clock), [[e] for e in events], now)
    batched = _results(Engine(POLICY, event_clock), _split(events, cuts), now)
    assert batched == one_by_one
    whole = _results(Engine(POLICY, event_clock), [events], now)
    assert whole == one_by_one


@FAST
@given(
    fixes=st.lists(
        st.tuples(
            st.floats(0, 1500),
            st.floats(-180, 180),
            st.sampled_from([3.0, 40.0, 150.0]),
            st.integers(1, 120),
        ),
        min_size=1,
        max_size=60,
    ),
    zone=walk_zone(),
)
def test_a_batch_of_fixes_decides_like_single_fixes(
    fixes: list[tuple[float, float, float, int]], zone: Json
) -> None:
    """Many fixes of both persons in one batch: the vectorised pass over all (fix, zone) pairs
    equals fix-by-fix evaluation."""
    the_ban = ban(
        BAN_ID,
        features=[zone, circle("work", *direct(*CENTRE, 90, 800), 200.0)],
        valid_from=ts(T0 - timedelta(days=1)),
        proximity_m=300.0,
    )
    events = [_msg(BANS, BAN_ID, the_ban)]
    clock = 0
    for i, (dist, azi, acc, dt) in enumerate(fixes):
        clock += dt
        who, device = (PROTECTED, "PH-1102") if i % 4 == 3 else (RESTRAINED, "EM-0091")
        lat, lon = direct(*CENTRE, azi, dist)
        events.append(
            _msg(
                POSITIONS,
                who,
                fix(lat, lon, at=_at(clock), person_id=who, device_id=device, accuracy_m=acc),
            )
        )
    for event_clock in (True, False):
        now = REPLAY_NOW if event_clock else _at(clock)
        single = _results(Engine(POLICY, event_clock), [[e] for e in events], now)
        batched = _results(Engine(POLICY, event_clock), [events[:1], events[1:]], now)
        assert batched == single


def test_proximity_alert_ids_do_not_collide_across_episodes() -> None:
    """Alert ids stay distinct across episodes opened at the same event time, with one device
    per person: a proximity episode opened by the restrained person's fix at t=100 ends; the
    protected person's next fix, also stamped t=100 (in order for her device, and fresh
    against his t=130 fix), opens a new episode, which must be a new alert."""
    engine = Engine(POLICY, event_clock=True)
    far_zone = circle("far", 59.5, 18.0, 50.0)
    engine.handle(
        _msg(
            BANS,
            BAN_ID,
            ban(BAN_ID, features=[far_zone], proximity_m=200.0, electronic_monitoring=False),
        ),
        REPLAY_NOW,
    )
    here, there = CENTRE, direct(*CENTRE, 90.0, 3000.0)
    log = [(PROTECTED, "PH-1102", 90, here), (RESTRAINED, "EM-0091", 100, here)]
    log += [(RESTRAINED, "EM-0091", t, there) for t in (110, 120, 130)]
    log += [(PROTECTED, "PH-1102", 100, there)]
    revisions = []
    for who, device, t, (lat, lon) in log:
        f = fix(lat, lon, at=_at(t), person_id=who, device_id=device)
        outs = engine.handle(_msg(POSITIONS, who, f), REPLAY_NOW).outputs
        revisions += [
            v for topic, _, v in outs if topic == ALERTS and v and v["kind"] == "proximity_breach"
        ]
    assert len(revisions) > 4
    _check_lifecycle(revisions)
