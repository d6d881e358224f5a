"""JSON codecs derived from type hints, for the state snapshots (alerts/snapshot.py).

A dataclass's codec is built once from its fields' type hints: str, int, bool and float
(non-finite by name: "inf", "-inf", "nan"), datetime (RFC 3339 with its own offset, six
fractional digits), enums (by value), `X | None`, dict[str, Any] (a free-form JSON object, as
published: non-finite floats as `{"$float": ...}`), dict[str, X] (`[key, value]` pairs in
insertion order, or a list of the values when the field's metadata says `keyed_by`: the
values' own key field), list[X], set[str] (sorted), deque[X] (`{"maxlen", "items"}`),
tuple[X, ...] of a fixed length, and nested dataclasses (an object of every field, in field
order). A type it does not know is an error at import.

Writing runs for every ban a commit persists, so the encoder is generated source: what one
would write by hand, with no call per field. Reading checks every value and raises
`SnapshotError` with a one-line message naming where (a path of names and indices), never the
data. (Somewhat over 400 lines, on purpose: the writer and the reader must agree type by type,
so they stay side by side.)
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

    def dataclass(self, cls: type, where: str, version: int | None = None) -> str:
        """The name of the generated encoder of `cls` met at path `where` (errors name it)."""
        name = self.done.get((cls, where))
        if name is None:
            name = self.done[(cls, where)] = f"_enc_{cls.__name__}_{self.fresh()}"
            body = self.fields(cls, None if version is not None else where)
            head = [f'"v": {version!r}'] if version is not None else []
            src = f"def {name}(v, ts):\n    return {{" + ", ".join(head + body) + "}\n"
            exec(src, self.env)  # the source is written above, from type hints only
        return name

    def compile(self, cls: type, where: str, version: int | None = None) -> Encoder:
        """The encoder of dataclass `cls`; with `version`, its objects start with `"v"` and
        its fields' paths start at the top."""
        fn: Encoder = self.env[self.dataclass(cls, where, version)]
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


#: The names alerts/snapshot.py uses.
write_time = _ts
read_time = _dt
read_list = _list
read_object = _obj
field_decoders = _field_decoders
dataclass_decoder = _dataclass_decoder
Writer = _Writer
