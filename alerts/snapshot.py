"""Ban decision state as plain JSON, for the stream's changelogged tables, and back.

The stream worker keeps every `BanState`, every unmatched-incident `Alert` and every knock
count in a table whose values are JSON; a worker that takes over a partition rebuilds its
engine from them. A restored state must decide exactly as the lost one would have, so the
round trip keeps everything:

- datetimes as RFC 3339 text with their own offset and always six fractional digits;
- enums by value; ints stay ints and floats stay floats (JSON keeps the difference);
- a float that is not finite as the string "inf", "-inf" or "nan" where the field is a number,
  and as `{"$float": "inf"}` inside free-form values (alert positions, recommended units);
- maps as `[key, value]` pairs in insertion order, so that no serializer's `sort_keys` can
  reorder them; deques with their `maxlen`; the seen-incident set sorted.

The same state always gives the same JSON, and the text is `json.dumps(allow_nan=False)`-safe.
A document is versioned (`"v"`); one this build cannot read, or one malformed in any way
(missing or unknown key, wrong type, naive time), raises `SnapshotError` with a one-line
message that names where, never the data (no coordinates, no free text).

Pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import UTC, datetime
from math import isfinite
from typing import Any, TypeVar

from alerts.banstate import BanState, LastFix
from alerts.model import Alert, Kind, State
from alerts.tasks import KnockTracker
from geofence.evaluation import Confidence, Episode

# 2: contract v2 state (device plausibility, closing in, recent fixes, end of life)
VERSION = 2

T = TypeVar("T")
E = TypeVar("E", Kind, State, Confidence)


class SnapshotError(ValueError):
    """A snapshot this build cannot read (unknown version, malformed), or state it cannot
    write (a naive datetime, a value JSON cannot hold). The message is one line."""


# ------------------------------------------------------------------------------ public API
def dump_ban_state(st: BanState) -> dict[str, Any]:
    """Everything `st` holds, as a JSON-ready dict (`"v": VERSION`)."""
    # Written for every fix the stream applies, so: each datetime object is formatted once
    # (a fix's time is in `newest`, `last_fix` and `watch`), empty maps cost no loop.
    texts: dict[int, str] = {}

    def ts(t: datetime, where: str) -> str:
        text = texts.get(id(t))  # the objects live in `st` until we return: ids are unique
        if text is None:
            text = texts[id(t)] = _ts(t, where)
        return text

    def fix(f: LastFix, where: str) -> dict[str, Any]:
        lat, lon, acc, jump = f.lat, f.lon, f.accuracy_m, f.jump_mps
        plain = type(lat) is float and type(lon) is float and type(acc) is float
        if not (plain and isfinite(lat) and isfinite(lon) and isfinite(acc)):
            return {
                "lat": _num(lat),
                "lon": _num(lon),
                "accuracy_m": _num(acc),
                "ts": ts(f.ts, where),
                "device_id": f.device_id,
                "jump_mps": _num(jump),
            }
        return {
            "lat": lat,
            "lon": lon,
            "accuracy_m": acc,
            "ts": ts(f.ts, where),
            "device_id": f.device_id,
            "jump_mps": jump if type(jump) is float and isfinite(jump) else _num(jump),
        }

    return {
        "v": VERSION,
        "ban_id": st.ban_id,
        "newest": [[k, ts(t, "newest")] for k, t in st.newest.items()] if st.newest else [],
        "last_fix": [[k, fix(f, "last_fix")] for k, f in st.last_fix.items()]
        if st.last_fix
        else [],
        "episodes": [
            [k, {"level": e.level.value, "outside": e.outside}] for k, e in st.episodes.items()
        ]
        if st.episodes
        else [],
        "open": [[k, aid] for k, aid in st.open.items()] if st.open else [],
        "alerts": [_alert_out(a, ts) for a in st.alerts.values()] if st.alerts else [],
        "approach": [
            [
                k,
                {
                    "maxlen": q.maxlen,
                    "items": [[ts(t, "approach"), _num(d), _num(acc)] for t, d, acc in q],
                },
            ]
            for k, q in st.approach.items()
        ]
        if st.approach
        else [],
        "watch": [[k, fix(f, "watch")] for k, f in st.watch.items()] if st.watch else [],
        "signal_rise": [[k, ts(t, "signal_rise")] for k, t in st.signal_rise.items()]
        if st.signal_rise
        else [],
        "incidents_seen": sorted(st.incidents_seen),
        "opened": [[k, n] for k, n in st.opened.items()] if st.opened else [],
        "spans": [
            [
                k,
                {
                    "maxlen": q.maxlen,
                    "items": [[ts(a, "spans"), ts(b, "spans")] for a, b in q],
                },
            ]
            for k, q in st.spans.items()
        ]
        if st.spans
        else [],
        "device_last": [[k, fix(f, "device_last")] for k, f in st.device_last.items()]
        if st.device_last
        else [],
        "device_anchor": [[k, fix(f, "device_anchor")] for k, f in st.device_anchor.items()]
        if st.device_anchor
        else [],
        "closing_at": [[k, ts(t, "closing_at")] for k, t in st.closing_at.items()]
        if st.closing_at
        else [],
        "recent": [
            [k, {"maxlen": q.maxlen, "items": [fix(f, "recent") for f in q]}]
            for k, q in st.recent.items()
        ]
        if st.recent
        else [],
        "ended": None if st.ended is None else ts(st.ended, "ended"),
    }


def load_ban_state(data: Mapping[str, Any]) -> BanState:
    """The `BanState` that `dump_ban_state` wrote; `SnapshotError` if `data` is not one."""
    d = _doc(data, "ban state", _BAN_KEYS)
    st = BanState(_str(d["ban_id"], "ban_id"))
    st.newest = _pairs(d["newest"], "newest", _dt)
    st.last_fix = _pairs(d["last_fix"], "last_fix", _fix_in)
    st.episodes = _pairs(d["episodes"], "episodes", _episode_in)
    st.open = _pairs(d["open"], "open", _str)
    alerts = _list(d["alerts"], "alerts")
    for i, raw in enumerate(alerts):
        a = _alert_in(_obj(raw, f"alerts[{i}]", _ALERT_KEYS), f"alerts[{i}]")
        if a.alert_id in st.alerts:
            raise SnapshotError(f"snapshot: alerts[{i}]: duplicate alert_id")
        st.alerts[a.alert_id] = a
    if not set(st.open.values()) <= st.alerts.keys():
        raise SnapshotError("snapshot: open: refers to an alert the state does not hold")
    st.approach = _pairs(d["approach"], "approach", lambda x, w: _deque_in(x, w, _approach_in))
    st.watch = _pairs(d["watch"], "watch", _fix_in)
    st.signal_rise = _pairs(d["signal_rise"], "signal_rise", _dt)
    seen = [
        _str(x, f"incidents_seen[{i}]")
        for i, x in enumerate(_list(d["incidents_seen"], "incidents_seen"))
    ]
    st.incidents_seen = set(seen)
    if len(st.incidents_seen) != len(seen):
        raise SnapshotError("snapshot: incidents_seen: duplicate incident id")
    st.opened = _pairs(d["opened"], "opened", _int)
    st.spans = _pairs(d["spans"], "spans", lambda x, w: _deque_in(x, w, _span_in))
    st.device_last = _pairs(d["device_last"], "device_last", _fix_in)
    st.device_anchor = _pairs(d["device_anchor"], "device_anchor", _fix_in)
    st.closing_at = _pairs(d["closing_at"], "closing_at", _dt)
    st.recent = _pairs(d["recent"], "recent", lambda x, w: _deque_in(x, w, _fix_in))
    st.ended = None if d["ended"] is None else _dt(d["ended"], "ended")
    return st


def dump_alert(a: Alert) -> dict[str, Any]:
    """Every field of `a`, as a JSON-ready dict (`"v": VERSION`): an unmatched-incident
    alert."""
    return {"v": VERSION, **_alert_out(a, _ts)}


def load_alert(data: Mapping[str, Any]) -> Alert:
    """The `Alert` that `dump_alert` wrote; `SnapshotError` if `data` is not one."""
    return _alert_in(_doc(data, "alert", _ALERT_KEYS), "alert")


def dump_knock(tracker: KnockTracker, person: str) -> dict[str, Any] | None:
    """`person`'s approach events counted since the last knock (oldest first) and the last
    counted event, or None when there is neither."""
    q = tracker._seen.get(person)
    last = tracker._last.get(person)
    if not q and last is None:
        return None
    return {
        "counted": [_ts(t, "knock.counted") for t in q] if q else [],
        "last": None if last is None else _ts(last, "knock.last"),
    }


def load_knock(tracker: KnockTracker, person: str, data: object) -> None:
    """Set `person`'s count in `tracker` to what `dump_knock` wrote; None removes it."""
    if data is None:
        tracker._seen.pop(person, None)
        tracker._last.pop(person, None)
        return
    d = _obj(data, "knock", frozenset({"counted", "last"}))
    times = [_dt(x, f"knock.counted[{i}]") for i, x in enumerate(_list(d["counted"], "knock"))]
    last = None if d["last"] is None else _dt(d["last"], "knock.last")
    if times:
        tracker._seen[person] = deque(times)
    else:
        tracker._seen.pop(person, None)
    if last is not None:
        tracker._last[person] = last
    else:
        tracker._last.pop(person, None)


# ------------------------------------------------------------------------------ writing
def _ts(t: datetime, where: str) -> str:
    if t.tzinfo is not UTC:  # UTC (most times: see records.Timestamp) needs no check
        off = t.utcoffset()
        if off is None:
            raise SnapshotError(f"snapshot: {where}: a naive datetime cannot be written")
        if off.seconds % 60 or off.microseconds:  # not whole minutes (days are whole)
            raise SnapshotError(f"snapshot: {where}: an offset of seconds has no RFC 3339 form")
    return t.isoformat(timespec="microseconds")


_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _nonfinite(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _num(x: float) -> float | str:
    """A number as JSON: ints and finite floats as they are, others by name."""
    if isinstance(x, int) or math.isfinite(x):
        return x
    return _nonfinite(x)


def _value_out(v: Any, where: str) -> Any:
    """A free-form JSON value (as published), copied; non-finite floats tagged."""
    kind = type(v)
    if kind is str or kind is int or v is None:  # most leaves, and the plain containers
        return v
    if kind is float:
        return v if isfinite(v) else {"$float": _nonfinite(v)}
    if kind is dict and "$float" not in v:
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise SnapshotError(f"snapshot: {where}: not a JSON value")
            out[k] = _value_out(x, where)
        return out
    if kind is list:
        return [_value_out(x, where) for x in v]
    if v is None or isinstance(v, str | bool | int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else {"$float": _nonfinite(v)}
    if isinstance(v, list | tuple):
        return [_value_out(x, where) for x in v]
    if isinstance(v, dict) and all(isinstance(k, str) for k in v) and "$float" not in v:
        return {k: _value_out(x, where) for k, x in v.items()}
    raise SnapshotError(f"snapshot: {where}: not a JSON value")


def _alert_out(a: Alert, ts: Callable[[datetime, str], str]) -> dict[str, Any]:
    def opt_ts(t: datetime | None, where: str) -> str | None:
        return None if t is None else ts(t, where)

    return {
        "alert_id": a.alert_id,
        "kind": a.kind.value,
        "priority": a.priority,
        "confidence": a.confidence,
        "ban_id": a.ban_id,
        "ban_version": a.ban_version,
        "restrained_person": a.restrained_person,
        "opened_at": ts(a.opened_at, "alert.opened_at"),
        "reason": a.reason,
        "zone_id": a.zone_id,
        "protected_person": a.protected_person,
        "device_id": a.device_id,
        "incident_id": a.incident_id,
        "position": _value_out(a.position, "alert.position"),
        "protected_position": _value_out(a.protected_position, "alert.protected_position"),
        "distance_m": None if a.distance_m is None else _num(a.distance_m),
        "recommended_units": _value_out(a.recommended_units, "alert.recommended_units"),
        "state": a.state.value,
        "seq": a.seq,
        "updated_at": opt_ts(a.updated_at, "alert.updated_at"),
        "episode": a.episode,
        "p1_since": opt_ts(a.p1_since, "alert.p1_since"),
        "acknowledged_by": a.acknowledged_by,
        "resolved_by": a.resolved_by,
        "followups_sent": a.followups_sent,
        "respond_sent": a.respond_sent,
        "evidence_count": a.evidence_count,
    }


# ------------------------------------------------------------------------------ reading
# Each reader takes the raw JSON value and `where` (a path of names and indices, never data).
# A field added to BanState or Alert but not here makes every load fail: loudly, not lossily.
_BAN_KEYS = frozenset(dump_ban_state(BanState("")))
_ALERT_KEYS = frozenset(f.name for f in fields(Alert))
_FIX_KEYS = frozenset({"lat", "lon", "accuracy_m", "ts", "device_id", "jump_mps"})
_NAME = re.compile(r"[a-z_$][a-z0-9_]{0,39}")


def _bad(where: str, expected: str) -> SnapshotError:
    return SnapshotError(f"snapshot: {where}: expected {expected}")


def _doc(data: object, what: str, keys: frozenset[str]) -> Mapping[str, Any]:
    """A versioned document: its version checked first, then its keys (`keys` and "v")."""
    if not isinstance(data, Mapping):
        raise SnapshotError(f"snapshot: {what}: expected a JSON object")
    v = data.get("v")
    if type(v) is not int or v != VERSION:
        shown = repr(v) if type(v) in (int, float, str) and len(repr(v)) <= 20 else "missing"
        raise SnapshotError(
            f"snapshot: {what}: format version {shown} is not one this build reads ({VERSION})"
        )
    return _obj(data, what, keys | {"v"})


def _obj(x: object, where: str, keys: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(x, Mapping):
        raise _bad(where, "an object")
    if x.keys() != keys:
        missing = sorted(keys - x.keys())
        if missing:
            raise SnapshotError(f"snapshot: {where}: missing {', '.join(missing)}")
        # name unknown keys only when they look like field names: never echo data
        unknown = [k for k in x.keys() - keys if isinstance(k, str) and _NAME.fullmatch(k)]
        shown = ", ".join(sorted(unknown)[:5]) or "keys that are no field names"
        raise SnapshotError(f"snapshot: {where}: unknown {shown}")
    return x


def _list(x: object, where: str) -> list[Any]:
    if not isinstance(x, list):
        raise _bad(where, "a list")
    return x


def _str(x: object, where: str) -> str:
    if not isinstance(x, str):
        raise _bad(where, "a string")
    return x


def _opt_str(x: object, where: str) -> str | None:
    return None if x is None else _str(x, where)


def _int(x: object, where: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool):
        raise _bad(where, "an integer")
    return x


def _bool(x: object, where: str) -> bool:
    if not isinstance(x, bool):
        raise _bad(where, "true or false")
    return x


def _float(x: object, where: str) -> float:
    """A number as `_num` wrote it (an int stays an int: it renders differently)."""
    if isinstance(x, str) and x in _NONFINITE:
        return _NONFINITE[x]
    if isinstance(x, int | float) and not isinstance(x, bool):
        return x
    raise _bad(where, "a number")


def _dt(x: object, where: str) -> datetime:
    text = _str(x, where)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(where, "an RFC 3339 time") from None
    if t.tzinfo is None:
        raise _bad(where, "a time with an offset")
    return t


def _pairs(x: object, where: str, value: Callable[[object, str], T]) -> dict[str, T]:
    out: dict[str, T] = {}
    for i, p in enumerate(_list(x, where)):
        w = f"{where}[{i}]"
        if not isinstance(p, list) or len(p) != 2:
            raise _bad(w, "a [key, value] pair")
        k = _str(p[0], w)
        if k in out:
            raise SnapshotError(f"snapshot: {w}: duplicate key")
        out[k] = value(p[1], w)
    return out


def _tuple(x: object, where: str, n: int) -> list[Any]:
    if not isinstance(x, list) or len(x) != n:
        raise _bad(where, f"a list of {n}")
    return x


def _approach_in(x: object, where: str) -> tuple[datetime, float, float]:
    t, d, acc = _tuple(x, where, 3)
    return _dt(t, where), _float(d, where), _float(acc, where)


def _span_in(x: object, where: str) -> tuple[datetime, datetime]:
    a, b = _tuple(x, where, 2)
    return _dt(a, where), _dt(b, where)


def _deque_in(x: object, where: str, item: Callable[[object, str], T]) -> deque[T]:
    d = _obj(x, where, frozenset({"maxlen", "items"}))
    m = d["maxlen"]
    maxlen = None if m is None else _int(m, f"{where}.maxlen")
    items = _list(d["items"], f"{where}.items")
    if maxlen is not None and len(items) > maxlen:
        raise SnapshotError(f"snapshot: {where}: more items than maxlen")
    return deque((item(v, f"{where}.items[{i}]") for i, v in enumerate(items)), maxlen=maxlen)


def _fix_in(x: object, where: str) -> LastFix:
    d = _obj(x, where, _FIX_KEYS)
    return LastFix(
        _float(d["lat"], f"{where}.lat"),
        _float(d["lon"], f"{where}.lon"),
        _float(d["accuracy_m"], f"{where}.accuracy_m"),
        _dt(d["ts"], f"{where}.ts"),
        _str(d["device_id"], f"{where}.device_id"),
        _float(d["jump_mps"], f"{where}.jump_mps"),
    )


def _episode_in(x: object, where: str) -> Episode:
    d = _obj(x, where, frozenset({"level", "outside"}))
    return Episode(
        _enum(Confidence, d["level"], f"{where}.level"), _int(d["outside"], f"{where}.outside")
    )


def _enum(cls: type[E], x: object, where: str) -> E:
    text = _str(x, where)
    try:
        return cls(text)
    except ValueError:
        raise _bad(where, f"a {cls.__name__} value") from None


def _value_in(v: object, where: str) -> Any:
    if v is None or isinstance(v, str | bool | int | float):
        return v
    if isinstance(v, list):
        return [_value_in(x, where) for x in v]
    if isinstance(v, Mapping):
        if v.keys() == {"$float"}:
            name = v["$float"]
            if not isinstance(name, str) or name not in _NONFINITE:
                raise _bad(where, '"inf", "-inf" or "nan" in {"$float": ...}')
            return _NONFINITE[name]
        return {_str(k, where): _value_in(x, where) for k, x in v.items()}
    raise _bad(where, "a JSON value")


def _value_obj(v: object, where: str) -> dict[str, Any]:
    if not isinstance(v, Mapping) or v.keys() == {"$float"}:
        raise _bad(where, "an object")
    out: dict[str, Any] = _value_in(v, where)
    return out


def _opt_value(v: object, where: str) -> dict[str, Any] | None:
    return None if v is None else _value_obj(v, where)


def _alert_in(d: Mapping[str, Any], where: str) -> Alert:
    def at(key: str) -> str:
        return f"{where}.{key}"

    def opt_dt(key: str) -> datetime | None:
        return None if d[key] is None else _dt(d[key], at(key))

    units = _list(d["recommended_units"], at("recommended_units"))
    ban_version = d["ban_version"]
    distance = d["distance_m"]
    return Alert(
        alert_id=_str(d["alert_id"], at("alert_id")),
        kind=_enum(Kind, d["kind"], at("kind")),
        priority=_int(d["priority"], at("priority")),
        confidence=_opt_str(d["confidence"], at("confidence")),
        ban_id=_opt_str(d["ban_id"], at("ban_id")),
        ban_version=None if ban_version is None else _int(ban_version, at("ban_version")),
        restrained_person=_opt_str(d["restrained_person"], at("restrained_person")),
        opened_at=_dt(d["opened_at"], at("opened_at")),
        reason=_str(d["reason"], at("reason")),
        zone_id=_opt_str(d["zone_id"], at("zone_id")),
        protected_person=_opt_str(d["protected_person"], at("protected_person")),
        device_id=_opt_str(d["device_id"], at("device_id")),
        incident_id=_opt_str(d["incident_id"], at("incident_id")),
        position=_opt_value(d["position"], at("position")),
        protected_position=_opt_value(d["protected_position"], at("protected_position")),
        distance_m=None if distance is None else _float(distance, at("distance_m")),
        recommended_units=[
            _value_obj(u, at(f"recommended_units[{i}]")) for i, u in enumerate(units)
        ],
        state=_enum(State, d["state"], at("state")),
        seq=_int(d["seq"], at("seq")),
        updated_at=opt_dt("updated_at"),
        episode=_str(d["episode"], at("episode")),
        p1_since=opt_dt("p1_since"),
        acknowledged_by=_opt_str(d["acknowledged_by"], at("acknowledged_by")),
        resolved_by=_opt_str(d["resolved_by"], at("resolved_by")),
        followups_sent=_bool(d["followups_sent"], at("followups_sent")),
        respond_sent=_bool(d["respond_sent"], at("respond_sent")),
        evidence_count=_int(d["evidence_count"], at("evidence_count")),
    )
