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

import dataclasses
import math
import re
import types
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from math import isfinite
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from alerts.banstate import BanState
from alerts.model import Alert
from alerts.tasks import KnockTracker

# 2: contract v2 state (device plausibility, closing in, recent fixes, end of life)
VERSION = 2

T = TypeVar("T")
E = TypeVar("E", bound=Enum)

#: Formats a datetime (the path names where it is, for an error).
Ts = Callable[[datetime, str], str]
#: Writes one value of a type: (value, ts) -> JSON-ready value.
Encoder = Callable[[Any, Ts], Any]
#: Reads one value of a type: (JSON value, path) -> value, or SnapshotError.
Decoder = Callable[[object, str], Any]


class SnapshotError(ValueError):
    """A snapshot this build cannot read (unknown version, malformed), or state it cannot
    write (a naive datetime, a value JSON cannot hold). The message is one line."""


# ------------------------------------------------------------------------------ public API
def dump_ban_state(st: BanState) -> dict[str, Any]:
    """Everything `st` holds, as a JSON-ready dict (`"v": VERSION`)."""
    # Written for every ban a commit persists, so: each datetime object is formatted once
    # (a fix's time is in `newest`, `last_fix` and `watch`).
    texts: dict[int, str] = {}

    def ts(t: datetime, where: str) -> str:
        text = texts.get(id(t))  # the objects live in `st` until we return: ids are unique
        if text is None:
            text = texts[id(t)] = _ts(t, where)
        return text

    out: dict[str, Any] = _BAN_ENCODER(st, ts)
    return out


def load_ban_state(data: Mapping[str, Any]) -> BanState:
    """The `BanState` that `dump_ban_state` wrote; `SnapshotError` if `data` is not one."""
    d = _doc(data, "ban state", _BAN_KEYS)
    st: BanState = BanState(**{name: dec(d[name], name) for name, dec in _BAN_DECODERS})
    if not set(st.open.values()) <= st.alerts.keys():
        raise SnapshotError("snapshot: open: refers to an alert the state does not hold")
    return st


def dump_alert(a: Alert) -> dict[str, Any]:
    """Every field of `a`, as a JSON-ready dict (`"v": VERSION`): an unmatched-incident
    alert."""
    out: dict[str, Any] = {"v": VERSION}
    out.update(_ALERT_ENCODER(a, _ts))
    return out


def load_alert(data: Mapping[str, Any]) -> Alert:
    """The `Alert` that `dump_alert` wrote; `SnapshotError` if `data` is not one."""
    d = _doc(data, "alert", _ALERT_KEYS)
    a: Alert = _ALERT_DECODER({k: v for k, v in d.items() if k != "v"}, "alert")
    return a


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


# ------------------------------------------------------------------------------ reading
# Each reader takes the raw JSON value and `where` (a path of names and indices, never data).
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


def _deque_in(x: object, where: str, item: Callable[[object, str], T]) -> deque[T]:
    d = _obj(x, where, frozenset({"maxlen", "items"}))
    m = d["maxlen"]
    maxlen = None if m is None else _int(m, f"{where}.maxlen")
    items = _list(d["items"], f"{where}.items")
    if maxlen is not None and len(items) > maxlen:
        raise SnapshotError(f"snapshot: {where}: more items than maxlen")
    return deque((item(v, f"{where}.items[{i}]") for i, v in enumerate(items)), maxlen=maxlen)


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


# ------------------------------------------------------------------- derived from the types
# The codec of a type is built once, from its type hints: str, int, bool and float (non-finite
# by name), datetime (RFC 3339), enums (by value), `X | None`, dict[str, Any] (a free-form
# JSON object, as published), dict[str, X] (`[key, value]` pairs in insertion order), or a
# list of the values when the dataclass field says `keyed_by` (the values' own key field),
# list[X], set[str] (sorted), deque[X] ({"maxlen", "items"}), tuple[X, ...] of a fixed length,
# and dataclasses (an object of every field, in field order). A type it does not know is an
# error at import: a new state field of a new kind of type is added here, once.


def _optional(tp: Any) -> Any | None:
    """X for `X | None`, else None."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0]
    return None


def _is_json_object(tp: Any) -> bool:
    return get_origin(tp) is dict and get_args(tp)[1] is Any


class _Writer:
    """Writes the source of an encoder from type hints (dumping runs for every ban a commit
    persists: the generated code is what one would write by hand, with no call per field)."""

    def __init__(self) -> None:
        self.env: dict[str, Any] = {
            "isfinite": isfinite,
            "_num": _num,
            "_value_out": _value_out,
            "VERSION": VERSION,
        }
        self.n = 0
        self.done: dict[tuple[type, str], str] = {}

    def fresh(self) -> str:
        self.n += 1
        return str(self.n)

    def expr(self, tp: Any, var: str, where: str) -> str:
        """A Python expression for the JSON form of the value `var` holds, of type `tp`."""
        inner = _optional(tp)
        if inner is not None:
            if _is_json_object(inner):
                return f"_value_out({var}, {where!r})"
            return f"(None if {var} is None else {self.expr(inner, var, where)})"
        if tp in (str, int, bool):
            return var
        if tp is float:
            return f"({var} if type({var}) is float and isfinite({var}) else _num({var}))"
        if tp is datetime:
            return f"ts({var}, {where!r})"
        if isinstance(tp, type) and issubclass(tp, Enum):
            return f"{var}.value"
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return f"{self.dataclass(tp, where)}({var}, ts)"
        origin, args = get_origin(tp), get_args(tp)
        if _is_json_object(tp):
            return f"_value_out({var}, {where!r})"
        n = self.fresh()
        if origin is dict and args[0] is str:
            item = self.expr(args[1], f"x{n}", where)
            return f"([[k{n}, {item}] for k{n}, x{n} in {var}.items()] if {var} else [])"
        if origin is list:
            if _is_json_object(args[0]):
                return f"_value_out({var}, {where!r})"
            return f"[{self.expr(args[0], f'x{n}', where)} for x{n} in {var}]"
        if origin is set and args[0] is str:
            return f"sorted({var})"
        if origin is deque:
            item = self.expr(args[0], f"x{n}", where)
            return f'{{"maxlen": {var}.maxlen, "items": [{item} for x{n} in {var}]}}'
        if origin is tuple and args and args[-1] is not Ellipsis:
            return (
                "["
                + ", ".join(self.expr(a, f"{var}[{i}]", where) for i, a in enumerate(args))
                + "]"
            )
        raise TypeError(f"snapshot: {where}: no codec for {tp!r}")

    def fields(self, cls: type, where: str | None) -> list[str]:
        """`"name": expression` for every field of dataclass `cls`, its value in `v`."""
        hints = get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            path = f.name if where is None else f"{where}.{f.name}"
            var = f"v.{f.name}"
            if f.metadata.get("keyed_by"):
                n = self.fresh()
                item = self.expr(get_args(hints[f.name])[1], f"x{n}", path)
                out.append(f"{f.name!r}: ([{item} for x{n} in {var}.values()] if {var} else [])")
            else:
                out.append(f"{f.name!r}: {self.expr(hints[f.name], var, path)}")
        return out

    def dataclass(self, cls: type, where: str, versioned: bool = False) -> str:
        """The name of the generated encoder of `cls` met at path `where` (errors name it)."""
        name = self.done.get((cls, where))
        if name is None:
            name = self.done[(cls, where)] = f"_enc_{cls.__name__}_{self.fresh()}"
            body = self.fields(cls, None if versioned else where)
            head = ['"v": VERSION'] if versioned else []
            src = f"def {name}(v, ts):\n    return {{" + ", ".join(head + body) + "}\n"
            exec(src, self.env)  # the source is written above, from type hints only
        return name

    def compile(self, cls: type, where: str, versioned: bool = False) -> Encoder:
        fn: Encoder = self.env[self.dataclass(cls, where, versioned)]
        return fn


def _decoder(tp: Any) -> Decoder:
    inner = _optional(tp)
    if inner is not None:
        dec = _decoder(inner)
        return lambda x, w: None if x is None else dec(x, w)
    if tp is str:
        return _str
    if tp is int:
        return _int
    if tp is bool:
        return _bool
    if tp is float:
        return _float
    if tp is datetime:
        return _dt
    if isinstance(tp, type) and issubclass(tp, Enum):
        cls = tp
        return lambda x, w: _enum(cls, x, w)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    origin, args = get_origin(tp), get_args(tp)
    if _is_json_object(tp):
        return _value_obj
    if origin is dict and args[0] is str:
        dec = _decoder(args[1])
        return lambda x, w: _pairs(x, w, dec)
    if origin is list:
        dec = _decoder(args[0])
        return lambda x, w: [dec(v, f"{w}[{i}]") for i, v in enumerate(_list(x, w))]
    if origin is set and args[0] is str:
        return _str_set
    if origin is deque:
        dec = _decoder(args[0])
        return lambda x, w: _deque_in(x, w, dec)
    if origin is tuple and args and args[-1] is not Ellipsis:
        decs = [_decoder(a) for a in args]
        n = len(decs)
        if n == 3:  # the shape the state holds most (approach samples)
            d0, d1, d2 = decs

            def triple(x: object, w: str) -> tuple[Any, ...]:
                a, b, c = _tuple(x, w, 3)
                return d0(a, w), d1(b, w), d2(c, w)

            return triple
        return lambda x, w: tuple([d(v, w) for d, v in zip(decs, _tuple(x, w, n), strict=True)])
    raise TypeError(f"snapshot: no codec for {tp!r}")


def _dataclass_decoder(cls: type[T]) -> Callable[[object, str], T]:
    fields = _field_decoders(cls)
    keys = frozenset(name for name, _ in fields)

    def dec(x: object, where: str) -> T:
        d = _obj(x, where, keys)
        # positionally: a dataclass's __init__ takes its fields in order
        return cls(*[f(d[name], where + "." + name) for name, f in fields])

    return dec


def _field_decoders(cls: type) -> list[tuple[str, Decoder]]:
    hints = get_type_hints(cls)
    out: list[tuple[str, Decoder]] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f.metadata.get("keyed_by")
        if key:
            out.append((f.name, _keyed_decoder(_decoder(get_args(tp)[1]), key)))
        else:
            out.append((f.name, _decoder(tp)))
    return out


def _keyed_decoder(dec: Decoder, key: str) -> Decoder:
    def read(x: object, where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, raw in enumerate(_list(x, where)):
            v = dec(raw, f"{where}[{i}]")
            k = getattr(v, key)
            if k in out:
                raise SnapshotError(f"snapshot: {where}[{i}]: duplicate {key}")
            out[k] = v
        return out

    return read


def _str_set(x: object, where: str) -> set[str]:
    items = [_str(v, f"{where}[{i}]") for i, v in enumerate(_list(x, where))]
    out = set(items)
    if len(out) != len(items):
        raise SnapshotError(f"snapshot: {where}: duplicate value")
    return out


_WRITER = _Writer()
_BAN_ENCODER = _WRITER.compile(BanState, "ban state", versioned=True)
_BAN_DECODERS = [(name, dec) for name, dec in _field_decoders(BanState)]
_BAN_KEYS = frozenset(f.name for f in dataclasses.fields(BanState))
_ALERT_ENCODER = _WRITER.compile(Alert, "alert")
_ALERT_DECODER = _dataclass_decoder(Alert)
_ALERT_KEYS = frozenset(f.name for f in dataclasses.fields(Alert))
