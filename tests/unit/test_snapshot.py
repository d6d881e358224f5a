"""Ban state snapshots (alerts/snapshot.py): what the stream's tables hold must decide the same.

- golden: every scenario, replayed with every ban state, unmatched alert and knock count
  swapped after every input record for one loaded from its JSON text, gives the golden output;
- round trip: after every record of every scenario, dump -> JSON text -> load -> dump gives the
  same text, and the loaded objects equal the originals in every attribute (dict order, int or
  float, offsets, microseconds, tuples, deque maxlen included);
- completeness: snapshots name every attribute of BanState and every field of Alert, and the
  scenarios give each of them a value somewhere (so the checks above are not vacuous);
- edges the scenarios never reach: non-finite floats, other offsets, ints in float fields;
- errors: unknown versions and malformed documents raise SnapshotError with one line.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from alerts.banstate import BanState, LastFix
from alerts.engine import Engine, Incoming
from alerts.model import Alert, Kind, Output, State
from alerts.replay import _after
from alerts.snapshot import (
    SnapshotError,
    dump_alert,
    dump_ban_state,
    dump_knock,
    dump_outreach,
    load_alert,
    load_ban_state,
    load_knock,
    load_outreach,
)
from alerts.taskmodel import Task
from alerts.tasks import KnockTracker
from config.policy import load_policy
from geofence.decoding import BANS
from geofence.evaluation import Confidence, Episode
from streams.cli.replay_files import read_bans, read_events

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
NAMES = sorted(p.parent.name for p in SCENARIOS.glob("*/expected.jsonl"))


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def text(doc: Any) -> str:
    """How a snapshot is stored: strict JSON (no NaN/inf), keys sorted."""
    return json.dumps(doc, sort_keys=True, allow_nan=False)


def replay_with(name: str, after_each: Callable[[Engine], None]) -> str:
    """`banwatch replay` of a scenario (as alerts/replay.py and the CLI do it), calling
    `after_each(engine)` after every input record, bans included."""
    d = SCENARIOS / name
    args = json.loads((d / "args.json").read_text("utf-8"))
    now = ts(args["now"])
    until = ts(args["until"]) if args.get("until") else None
    policy = load_policy()
    engine = Engine(policy, event_clock=True)
    out: list[Output] = []
    for raw in read_bans(str(d / "bans.jsonl"), policy, now):
        out.extend(engine.handle(Incoming(BANS, None, raw), now).outputs)
        after_each(engine)
    for msg in read_events(str(d / "events.jsonl")):
        if until is not None and _after(msg, until, now, policy):
            continue
        for result in engine.handle_batch([msg], now):
            out.extend(result.outputs)
        after_each(engine)
    end = until if until is not None else engine.clock
    if end is not None:
        out.extend(engine.tick(end))
    return "".join(
        json.dumps(
            {"topic": t, "key": k, "value": v},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        + "\n"
        for t, k, v in out
    )


# Alert fields holding free-form JSON as published. A snapshot keeps their content (ints and
# floats apart, non-finite floats too) but not the order of keys inside their objects: that
# order means nothing in JSON, and a snapshot stored with sort_keys could not keep it.
JSON_VALUES = {"position", "protected_position", "recommended_units", "response", "target"}


def shape(x: Any) -> Any:
    """Everything an object holds, as a comparable tree: types, order and offsets kept.
    An attribute of a type not known here fails the test (teach it, and the snapshot)."""
    if x is None or type(x) in (bool, int, str):
        return (type(x).__name__, x)
    if type(x) is float:
        return ("float", repr(x))
    if isinstance(x, Enum):
        return (type(x).__name__, x.value)
    if isinstance(x, datetime):
        assert x.tzinfo is not None
        return ("datetime", x.isoformat(timespec="microseconds"), x.utcoffset())
    if isinstance(x, deque):
        return ("deque", x.maxlen, [shape(v) for v in x])
    if type(x) in (list, tuple):
        return (type(x).__name__, [shape(v) for v in x])
    if type(x) is dict:
        return ("dict", [(shape(k), shape(v)) for k, v in x.items()])
    if type(x) in (set, frozenset):
        return (type(x).__name__, sorted(repr(shape(v)) for v in x))
    if isinstance(x, Alert | Task):  # its published JSON values: content kept, key order not
        return (
            "Alert",
            [
                (f.name, ("json", json.dumps(getattr(x, f.name), sort_keys=True)))
                if f.name in JSON_VALUES
                else (f.name, shape(getattr(x, f.name)))
                for f in dataclasses.fields(x)
            ],
        )
    if dataclasses.is_dataclass(x):
        return (
            type(x).__name__,
            [(f.name, shape(getattr(x, f.name))) for f in dataclasses.fields(x)],
        )
    if type(x) in (BanState, KnockTracker):
        return (type(x).__name__, [(k, shape(v)) for k, v in vars(x).items()])
    raise AssertionError(f"shape: unknown type {type(x).__name__}")


# ------------------------------------------------------------------------------ golden
def swap_everything(engine: Engine) -> None:
    """Replace every piece of per-ban state by one loaded from its snapshot's JSON text."""
    for ban_id, st in list(engine.states.items()):
        engine.states[ban_id] = load_ban_state(json.loads(text(dump_ban_state(st))))
    for aid, a in list(engine.unmatched.items()):
        engine.unmatched[aid] = load_alert(json.loads(text(dump_alert(a))))
    fresh = KnockTracker()
    for person in engine.knock.persons():
        load_knock(fresh, person, json.loads(text(dump_knock(engine.knock, person))))
    engine.knock = fresh
    for person, o in list(engine.book.people.items()):
        engine.book.people[person] = load_outreach(json.loads(text(dump_outreach(o))))


@pytest.mark.parametrize("name", NAMES)
def test_replay_from_snapshots_matches_golden_file(name: str) -> None:
    expected = (SCENARIOS / name / "expected.jsonl").read_text("utf-8")
    assert replay_with(name, lambda _engine: None) == expected  # the loop is the replay's
    assert replay_with(name, swap_everything) == expected


# -------------------------------------------------------------------------- round trip
@dataclass
class Seen:
    """What the scenarios put in state: non-empty BanState attributes, Alert fields away
    from their defaults, knock entries, unmatched alerts; and how many states were checked."""

    state_attrs: set[str] = field(default_factory=set)
    alert_fields: set[str] = field(default_factory=set)
    knock: int = 0
    unmatched: int = 0
    states: int = 0
    outreach: int = 0


_FIELD_DEFAULTS = {
    f.name: None if f.default is dataclasses.MISSING else f.default
    for f in dataclasses.fields(Alert)
}


def _note_alert(a: Alert, seen: Seen) -> None:
    for name, default in _FIELD_DEFAULTS.items():
        value = getattr(a, name)
        if value != default and value != [] and value != "":
            seen.alert_fields.add(name)


def check_round_trip(engine: Engine, seen: Seen) -> None:
    for st in engine.states.values():
        first = text(dump_ban_state(st))
        back = load_ban_state(json.loads(first))
        assert text(dump_ban_state(back)) == first
        assert shape(back) == shape(st)
        seen.states += 1
        seen.state_attrs |= {k for k, v in vars(st).items() if v}
        for a in st.alerts.values():
            _note_alert(a, seen)
    for a in engine.unmatched.values():
        first = text(dump_alert(a))
        back_a = load_alert(json.loads(first))
        assert text(dump_alert(back_a)) == first
        assert shape(back_a) == shape(a)
        seen.unmatched += 1
        _note_alert(a, seen)
    restored = KnockTracker()
    for person in engine.knock.persons():
        first = text(dump_knock(engine.knock, person))
        load_knock(restored, person, json.loads(first))
        assert text(dump_knock(restored, person)) == first
        seen.knock += bool(engine.knock._seen.get(person))
    assert shape(restored) == shape(_nonempty_knock(engine.knock))
    for o in engine.book.people.values():
        first = text(dump_outreach(o))
        back_o = load_outreach(json.loads(first))
        assert text(dump_outreach(back_o)) == first
        assert shape(back_o) == shape(o)
        seen.outreach += bool(o.tasks)


def _nonempty_knock(tracker: KnockTracker) -> KnockTracker:
    """`tracker` without its emptied counts (a knock clears a count; the snapshot holds an
    empty count as no entry), its last counted events kept."""
    out = KnockTracker()
    out._seen = {p: q for p, q in tracker._seen.items() if q}
    out._last = dict(tracker._last)
    return out


@cache
def round_trip_run(name: str) -> Seen:
    seen = Seen()
    replay_with(name, lambda engine: check_round_trip(engine, seen))
    return seen


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_after_every_record(name: str) -> None:
    assert round_trip_run(name).states > 0


def test_snapshots_name_every_attribute() -> None:
    st = BanState("KF-1")
    assert set(dump_ban_state(st)) == set(vars(st)) | {"v"}
    a = Alert("a", Kind.tip, 3, None, None, None, None, ts("2026-11-22T10:00:00Z"), "")
    assert set(dump_alert(a)) == {f.name for f in dataclasses.fields(Alert)} | {"v"}


def test_scenarios_exercise_every_attribute() -> None:
    """Each BanState attribute non-empty and each Alert field off its default somewhere, so
    that the golden and round-trip checks cover all of them."""
    total = Seen()
    for name in NAMES:
        s = round_trip_run(name)
        total.state_attrs |= s.state_attrs
        total.alert_fields |= s.alert_fields
        total.knock += s.knock
        total.unmatched += s.unmatched
        total.outreach += s.outreach
    assert total.state_attrs == set(vars(BanState("x")))
    assert total.alert_fields == set(_FIELD_DEFAULTS)
    assert total.knock > 0 and total.unmatched > 0 and total.outreach > 0


# ------------------------------------------------------------------- edges by hand
def edge_state() -> BanState:
    """What the scenarios never hold: non-finite floats, offsets other than Z, microseconds,
    ints in float fields, a deque with another maxlen, maps not in sorted key order."""
    cet = timezone(timedelta(hours=1))
    t0 = datetime(2026, 11, 22, 10, 15, 3, 123456, tzinfo=cet)
    st = BanState("KF-EDGE")
    st.newest["EM-1"] = t0
    st.newest["EM-0"] = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)  # insertion order kept
    st.last_fix["P-1"] = LastFix(59, 17.5, math.inf, t0, "EM-1")
    st.watch["EM-1"] = LastFix(59.1, 17.6, 8.5, t0 + timedelta(microseconds=1), "EM-1")
    st.episodes["zone_breach|home"] = Episode(Confidence.possible, 2)
    st.approach["zone:work"] = deque([(t0, 1500.5, 12.0)])
    st.approach["zone:home"] = deque([(t0, math.inf, 5), (t0, -math.inf, math.nan)])
    st.spans["zone_breach|home"] = deque([(t0, t0 + timedelta(seconds=1))], maxlen=3)
    st.signal_rise["EM-1"] = t0 + timedelta(hours=1)
    st.incidents_seen |= {"I-2", "I-1", "I-10"}
    st.opened["zone_breach|home"] = 2
    st.device_last["EM-1"] = LastFix(59.2, 17.7, 5.0, t0, "EM-1", math.inf)
    st.device_anchor["EM-1"] = LastFix(59.1, 17.6, 8.5, t0 - timedelta(seconds=1), "EM-1", 0)
    st.closing_at["approach|zone:work"] = t0
    st.recent["P-1"] = deque([LastFix(59, 17.5, 3, t0, "EM-1", 41.5)], maxlen=4)
    st.ended = t0 + timedelta(hours=2, microseconds=7)
    a = Alert(
        alert_id="A-1",
        kind=Kind.zone_breach,
        priority=1,
        confidence="possible",
        ban_id="KF-EDGE",
        ban_version=3,
        restrained_person="P-1",
        opened_at=t0,
        reason="fix inside zone 'home' — ±8 m",
        zone_id="home",
        position={"lat": 59.0, "lon": 17, "accuracy_m": math.nan, "ts": "2026-11-22T09:15:03Z"},
        protected_position={"lat": 59.1, "lon": 17.1, "accuracy_m": None, "ts": "x"},
        distance_m=math.inf,
        recommended_units=[{"unit_id": "SÖ-2140", "distance_m": -math.inf}, {"nested": [1.5]}],
        state=State.escalated,
        seq=4,
        updated_at=t0,
        p1_since=t0,
    )
    st.alerts[a.alert_id] = a
    st.open["zone_breach|home"] = a.alert_id
    return st


def test_edges_round_trip_exactly() -> None:
    st = edge_state()
    first = text(dump_ban_state(st))  # allow_nan=False: raises if a non-finite float leaks
    back = load_ban_state(json.loads(first))
    assert text(dump_ban_state(back)) == first
    assert shape(back) == shape(st)
    assert back.newest["EM-1"].utcoffset() == timedelta(hours=1)
    assert back.newest["EM-1"].microsecond == 123456
    assert type(back.last_fix["P-1"].lat) is int
    assert back.spans["zone_breach|home"].maxlen == 3
    assert list(back.newest) == ["EM-1", "EM-0"]
    assert list(back.approach) == ["zone:work", "zone:home"]


def test_same_state_same_text() -> None:
    assert text(dump_ban_state(edge_state())) == text(dump_ban_state(edge_state()))


def test_knock_round_trip_and_removal() -> None:
    t0 = datetime(2026, 11, 22, 10, 0, 0, 5, tzinfo=UTC)
    k = KnockTracker()
    assert dump_knock(k, "P-1") is None
    k._seen["P-1"] = deque([t0, t0 + timedelta(days=1)])
    k._last["P-1"] = t0 + timedelta(days=1)
    data = json.loads(text(dump_knock(k, "P-1")))
    k2 = KnockTracker()
    load_knock(k2, "P-1", data)
    assert shape(k2) == shape(k)
    load_knock(k2, "P-1", None)
    assert "P-1" not in k2._seen and "P-1" not in k2._last
    k._seen["P-1"].clear()  # a knock emptied the count: the last counted event stays
    data = json.loads(text(dump_knock(k, "P-1")))
    assert data == {"counted": [], "last": "2026-11-23T10:00:00.000005+00:00"}
    load_knock(k2, "P-1", data)
    assert "P-1" not in k2._seen and k2._last["P-1"] == k._last["P-1"]
    del k._last["P-1"]
    assert dump_knock(k, "P-1") is None


# ------------------------------------------------------------------------------ errors
@cache
def good_doc() -> str:
    doc = dump_ban_state(edge_state())
    return text(doc)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation: set the value at a dotted path (ints index lists); `...` deletes it."""

    def apply(doc: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = doc
        for p in parents:
            node = node[p]
        if value is ...:
            del node[last]
        else:
            node[last] = value

    return apply


def _dup(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        node: Any = doc
        for p in path.split("."):
            node = node[int(p) if p.isdigit() else p]
        node.append(copy.deepcopy(node[0]))

    return apply


BAD_BAN_STATES = {
    "version 1 (before contract v2)": _set("v", 1),
    "version 4": _set("v", 4),
    "version as text": _set("v", "2"),
    "version 2.0": _set("v", 2.0),
    "version true": _set("v", True),
    "no version": _set("v", ...),
    "missing attribute": _set("watch", ...),
    "unknown attribute": _set("extra", []),
    "ban_id a number": _set("ban_id", 7),
    "newest not a list": _set("newest", {"EM-1": "2026-11-22T10:00:00Z"}),
    "pair of three": _set("newest.0", ["EM-1", "2026-11-22T10:00:00Z", 1]),
    "duplicate key": _dup("newest"),
    "naive time": _set("newest.0.1", "2026-11-22T10:15:03"),
    "not a time": _set("newest.0.1", "yesterday"),
    "time a number": _set("signal_rise.0.1", 1764000000),
    "lat a string": _set("last_fix.0.1.lat", "north"),
    "lat a bool": _set("last_fix.0.1.lat", True),
    "unknown non-finite name": _set("last_fix.0.1.accuracy_m", "Infinity"),
    "fix without device": _set("watch.0.1.device_id", ...),
    "unknown confidence": _set("episodes.0.1.level", "certain"),
    "outside a float": _set("episodes.0.1.outside", 1.5),
    "unknown kind": _set("alerts.0.kind", "bogus"),
    "unknown alert state": _set("alerts.0.state", "closed"),
    "seq a bool": _set("alerts.0.seq", True),
    "opened_at null": _set("alerts.0.opened_at", None),
    "alert field missing": _set("alerts.0.evidence_count", ...),
    "alert field unknown": _set("alerts.0.colour", "red"),
    "alert inside has a version": _set("alerts.0.v", 1),
    "duplicate alert": _dup("alerts"),
    "position a list": _set("alerts.0.position", [59.0, 17.0]),
    "unit null": _set("alerts.0.recommended_units.0", None),
    "bad $float": _set("alerts.0.position.accuracy_m", {"$float": "huge"}),
    "followups_sent 0": _set("alerts.0.followups_sent", 0),
    "open names no alert": _set("open.0.1", "A-404"),
    "deque over maxlen": _set("spans.0.1.maxlen", 0),
    "maxlen a string": _set("spans.0.1.maxlen", "3"),
    "deque without items": _set("approach.0.1.items", ...),
    "approach item short": _set("approach.0.1.items.0", ["2026-11-22T10:00:00Z", 1.0]),
    "duplicate incident": _set("incidents_seen", ["I-1", "I-1"]),
    "incidents a string": _set("incidents_seen", "I-1"),
    "opened a float": _set("opened.0.1", 2.0),
}


def _one_line(exc: pytest.ExceptionInfo[SnapshotError]) -> None:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    assert "59." not in msg and "zone 'home'" not in msg  # never coordinates or free text


@pytest.mark.parametrize("case", sorted(BAD_BAN_STATES))
def test_malformed_ban_state_raises(case: str) -> None:
    doc = json.loads(good_doc())
    load_ban_state(copy.deepcopy(doc))  # the unmutated document loads
    BAD_BAN_STATES[case](doc)
    with pytest.raises(SnapshotError) as exc:
        load_ban_state(doc)
    _one_line(exc)


@pytest.mark.parametrize("data", [[], "{}", None, 1])
def test_ban_state_not_an_object_raises(data: Any) -> None:
    with pytest.raises(SnapshotError) as exc:
        load_ban_state(data)
    _one_line(exc)


def test_unknown_version_message() -> None:
    doc = json.loads(good_doc())
    doc["v"] = 4
    with pytest.raises(SnapshotError, match=r"format version 4 is not one this build reads"):
        load_ban_state(doc)
    assert issubclass(SnapshotError, ValueError)


def test_malformed_alert_raises() -> None:
    good = dump_alert(edge_state().alerts["A-1"])
    load_alert(json.loads(text(good)))
    for change in ({"v": 4}, {"v": None}, {"kind": "zone"}, {"priority": "1"}, {"reason": None}):
        with pytest.raises(SnapshotError) as exc:
            load_alert({**good, **change})
        _one_line(exc)
    with pytest.raises(SnapshotError):
        load_alert({k: v for k, v in good.items() if k != "v"})


@pytest.mark.parametrize(
    "data",
    [
        "2026-11-22T10:00:00Z",
        [1],
        ["2026-11-22T10:00:00Z"],
        {"a": 1},
        {"counted": [1], "last": None},
        {"counted": ["2026-11-22T10:00:00"], "last": None},
        {"counted": [], "last": "2026-11-22T10:00:00"},
        {"counted": "x", "last": None},
        {"counted": [], "last": None, "more": 1},
    ],
)
def test_malformed_knock_raises(data: Any) -> None:
    with pytest.raises(SnapshotError) as exc:
        load_knock(KnockTracker(), "P-1", data)
    _one_line(exc)


def test_state_that_json_cannot_hold_raises_on_dump() -> None:
    st = edge_state()
    st.newest["EM-2"] = datetime(2026, 11, 22, 10, 0)  # naive
    with pytest.raises(SnapshotError):
        dump_ban_state(st)
    st = edge_state()
    st.alerts["A-1"].position = {"lat": {59.0}}
    with pytest.raises(SnapshotError):
        dump_ban_state(st)
    st = edge_state()
    st.alerts["A-1"].position = {"$float": "inf"}  # would read back as a number
    with pytest.raises(SnapshotError):
        dump_ban_state(st)
