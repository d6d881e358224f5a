"""Ban decision state as plain JSON, for the stream's changelogged tables, and back.

The stream worker keeps every `BanState`, every unmatched-incident `Alert`, every knock
count and every restrained person's outreach chain (`Outreach`) in a table whose values are
JSON; a worker that takes over a partition rebuilds its engine from them. A restored state
must decide exactly as the lost one would have, so the round trip keeps everything:

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

The codec is derived from the types of `BanState` and `Alert` (alerts/codec.py): a new field
of the state is a change to alerts/banstate.py alone (unless its type is a new kind of type).

Pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from alerts.banstate import BanState
from alerts.codec import (
    SnapshotError,
    Writer,
    dataclass_decoder,
    field_decoders,
    read_list,
    read_object,
    read_time,
    write_time,
)
from alerts.model import Alert
from alerts.outreach import Outreach
from alerts.tasks import KnockTracker

__all__ = [
    "VERSION",
    "SnapshotError",
    "dump_alert",
    "dump_ban_state",
    "dump_knock",
    "dump_outreach",
    "load_alert",
    "load_ban_state",
    "load_knock",
    "load_outreach",
]

# 2: contract v2 state (device plausibility, closing in, recent fixes, end of life)
# 3: contract v2 tasks (an alert's unit tasks and response; outreach chains)
VERSION = 3


# ------------------------------------------------------------------------------ public API
def dump_ban_state(st: BanState) -> dict[str, Any]:
    """Everything `st` holds, as a JSON-ready dict (`"v": VERSION`)."""
    # Written for every ban a commit persists, so: each datetime object is formatted once
    # (a fix's time is in `newest`, `last_fix` and `watch`).
    texts: dict[int, str] = {}

    def ts(t: datetime, where: str) -> str:
        text = texts.get(id(t))  # the objects live in `st` until we return: ids are unique
        if text is None:
            text = texts[id(t)] = write_time(t, where)
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
    out.update(_ALERT_ENCODER(a, write_time))
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
        "counted": [write_time(t, "knock.counted") for t in q] if q else [],
        "last": None if last is None else write_time(last, "knock.last"),
    }


def load_knock(tracker: KnockTracker, person: str, data: object) -> None:
    """Set `person`'s count in `tracker` to what `dump_knock` wrote; None removes it."""
    if data is None:
        tracker._seen.pop(person, None)
        tracker._last.pop(person, None)
        return
    d = read_object(data, "knock", frozenset({"counted", "last"}))
    times = [
        read_time(x, f"knock.counted[{i}]") for i, x in enumerate(read_list(d["counted"], "knock"))
    ]
    last = None if d["last"] is None else read_time(d["last"], "knock.last")
    if times:
        tracker._seen[person] = deque(times)
    else:
        tracker._seen.pop(person, None)
    if last is not None:
        tracker._last[person] = last
    else:
        tracker._last.pop(person, None)


def dump_outreach(o: Outreach) -> dict[str, Any]:
    """A restrained person's outreach chain and role tasks, as a JSON-ready dict."""
    out: dict[str, Any] = {"v": VERSION}
    out.update(_OUTREACH_ENCODER(o, write_time))
    return out


def load_outreach(data: Mapping[str, Any]) -> Outreach:
    """The `Outreach` that `dump_outreach` wrote; `SnapshotError` if `data` is not one."""
    d = _doc(data, "outreach", _OUTREACH_KEYS)
    o: Outreach = _OUTREACH_DECODER({k: v for k, v in d.items() if k != "v"}, "outreach")
    return o


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
    return read_object(data, what, keys | {"v"})


_WRITER = Writer()
_BAN_ENCODER = _WRITER.compile(BanState, "ban state", version=VERSION)
_BAN_DECODERS = field_decoders(BanState)
_BAN_KEYS = frozenset(f.name for f in dataclasses.fields(BanState))
_ALERT_ENCODER = _WRITER.compile(Alert, "alert")
_ALERT_DECODER = dataclass_decoder(Alert)
_ALERT_KEYS = frozenset(f.name for f in dataclasses.fields(Alert))
_OUTREACH_ENCODER = _WRITER.compile(Outreach, "outreach")
_OUTREACH_DECODER = dataclass_decoder(Outreach)
_OUTREACH_KEYS = frozenset(f.name for f in dataclasses.fields(Outreach))
