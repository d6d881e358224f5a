"""Everything held for one contact ban: the unit of state, and of partitioning in the stream.

A `BanState` holds the latest fixes of the ban's persons, the newest event time per device,
open episodes and their alerts, approach histories and signal watches. It is data (and two
queries on it): what is decided with it lives in the detectors (alerts/detectors/, one module
each, entry points `(state, ctx, input) -> outputs appended to ctx.out`), the alert lifecycle
(alerts/lifecycle.py), the fix path (alerts/fixpath.py) and the timers (alerts/timers.py).
Its snapshot (alerts/snapshot.py) is written from these attributes. Times come from the records
(event time) or from the caller's clock for timers: nothing here reads the clock.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.assignment import Fleet
from alerts.model import Alert, Output
from alerts.outreach import OutreachBook
from alerts.tasks import KnockTracker
from config.policy import Policy
from geofence.bans import HeldBan
from geofence.evaluation import Episode
from geofence.geodesy import ecef1
from geofence.records import LocationFix

log = logging.getLogger("banwatch.detectors")


class _EcefSlot:
    """A place for a fix's earth-centred position, computed at most once per fix (rule 3
    compares every fix with the device's previous one): a slot, not a dataclass field, so it
    is in no snapshot, comparison or repr, and a `LastFix` read back from a snapshot (or
    copied) computes it again when first asked."""

    __slots__ = ("_xyz",)
    _xyz: tuple[float, float, float]


@dataclass(frozen=True, slots=True, init=False)
class LastFix(_EcefSlot):
    lat: float
    lon: float
    accuracy_m: float
    ts: datetime
    device_id: str
    # implied speed (m/s) of an implausible jump (rule 3: counts at most as possible), else 0
    jump_mps: float = 0.0

    def __init__(
        self,
        lat: float,
        lon: float,
        accuracy_m: float,
        ts: datetime,
        device_id: str,
        jump_mps: float = 0.0,
    ) -> None:
        # the generated __init__ of a frozen dataclass sets each field with
        # object.__setattr__; the slots' own setters do the same at half the cost (one
        # LastFix is built per fix)
        _set_lat(self, lat)
        _set_lon(self, lon)
        _set_accuracy_m(self, accuracy_m)
        _set_ts(self, ts)
        _set_device_id(self, device_id)
        _set_jump_mps(self, jump_mps)

    @classmethod
    def of(cls, fix: LocationFix, jump_mps: float = 0.0) -> LastFix:
        return cls(fix.lat, fix.lon, fix.accuracy_m, fix.ts, fix.device_id, jump_mps)

    def xyz(self) -> tuple[float, float, float]:
        """Earth-centred coordinates of (lat, lon) (`geofence.geodesy.ecef1`), kept."""
        xyz: tuple[float, float, float] | None = getattr(self, "_xyz", None)
        if xyz is None:
            xyz = ecef1(self.lat, self.lon)
            object.__setattr__(self, "_xyz", xyz)
        return xyz

    def keep_xyz(self, xyz: tuple[float, float, float]) -> None:
        """Keep `xyz`, computed by the caller as `ecef1(self.lat, self.lon)`."""
        object.__setattr__(self, "_xyz", xyz)


_set_lat, _set_lon, _set_accuracy_m, _set_ts, _set_device_id, _set_jump_mps = (
    LastFix.__dict__[f.name].__set__ for f in dataclasses.fields(LastFix)
)


#: Rule 5: how many of each person's fixes are kept to find the one closest in time to a late
#: fix of the other person, and how far apart (in `max_fix_age_s`) kept fixes are at least.
RECENT_FIXES = 32
RECENT_SPACING = 1 / 8


@dataclass(slots=True)
class Ctx:
    """What a detector may use besides the ban's own state, and where outputs go."""

    policy: Policy
    fleet: Fleet
    ban: HeldBan
    now: datetime  # the caller's clock: event time in replay, wall clock in the stream
    knock: KnockTracker | None = None
    book: OutreachBook | None = None  # the restrained persons' outreach chains
    out: list[Output] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # detectors that raised on this input

    def guard(self, detector: str, fn: Callable[..., None], *args: Any) -> None:
        """Run one detector, `fn(*args)`; if it raises, log it (type only: no data), note it,
        go on."""
        try:
            fn(*args)
        except Exception as exc:  # a bug in one detector must not silence the others
            self.failed(detector, exc)

    def failed(self, detector: str, exc: Exception) -> None:
        """What `guard` does when a detector raised (the fix path writes the `try` inline)."""
        log.error(
            "detector %s failed on ban %s: %s", detector, self.ban.record.ban_id, type(exc).__name__
        )
        self.failures.append(detector)


def speed(mps: float) -> str:
    """A speed for a reason text."""
    return f"{mps:.0f} m/s" if math.isfinite(mps) else "no time between the fixes"


def fresh(a: datetime, b: datetime, max_age_s: float) -> bool:
    return abs((a - b).total_seconds()) <= max_age_s


@dataclass(eq=False)
class BanState:
    """Every field is written to the ban's snapshot and read back (alerts/snapshot.py derives
    the codec from these type hints: a new field needs no other change, unless its type is
    one the codec does not know yet). `alerts` is stored as a list of alerts (each keyed by
    its `alert_id`)."""

    ban_id: str
    newest: dict[str, datetime] = field(default_factory=dict)  # device -> newest event time
    last_fix: dict[str, LastFix] = field(default_factory=dict)  # person -> latest applied fix
    episodes: dict[str, Episode] = field(default_factory=dict)  # episode key -> geometric state
    open: dict[str, str] = field(default_factory=dict)  # episode key -> its live alert's id
    alerts: dict[str, Alert] = field(default_factory=dict, metadata={"keyed_by": "alert_id"})
    approach: dict[str, deque[tuple[datetime, float, float]]] = field(default_factory=dict)
    watch: dict[str, LastFix] = field(default_factory=dict)  # monitored ankle tags -> last fix
    signal_rise: dict[str, datetime] = field(default_factory=dict)  # device -> p1 due
    incidents_seen: set[str] = field(default_factory=set)
    opened: dict[str, int] = field(default_factory=dict)  # "kind|target" -> alerts opened
    # past episodes per key: (first, last) event time, so that an out-of-order fix inside
    # a span that was already alerted on is not "late evidence"
    spans: dict[str, deque[tuple[datetime, datetime]]] = field(default_factory=dict)
    # rule 3: per device, the newest applied fix and the newest plausible one (the same
    # object unless the newest was an implausible jump)
    device_last: dict[str, LastFix] = field(default_factory=dict)
    device_anchor: dict[str, LastFix] = field(default_factory=dict)
    # rule 4: approach episode key -> event time it last closed in
    closing_at: dict[str, datetime] = field(default_factory=dict)
    # rule 5: per person, a thin recent history (bans with proximity_m only)
    recent: dict[str, deque[LastFix]] = field(default_factory=dict)
    # when the ban's end of life (lifted, revoked, validity over) was applied here: its
    # alerts were resolved then; None while the ban is (again) in force
    ended: datetime | None = None

    def at_time(self, person: str, ts: datetime, max_age_s: float) -> LastFix | None:
        """Rule 5: `person`'s latest fix if it is within `max_age_s` of `ts`, else the fix of
        the recent history closest in time to `ts` (at most `max_age_s` apart), else None."""
        last = self.last_fix.get(person)
        if last is None:
            return None
        if fresh(last.ts, ts, max_age_s):
            return last
        q = self.recent.get(person)
        if not q or (q[0].ts - ts).total_seconds() > max_age_s:
            return None
        best: LastFix | None = None
        gap = max_age_s
        for f in q:
            d = abs((f.ts - ts).total_seconds())
            if d <= gap:
                best, gap = f, d
        return best

    def covered(self, key: str, ts: datetime) -> bool:
        """Whether an episode of `key` was live at event time `ts` (so it was alerted on)."""
        if key in self.episodes and self.spans.get(key) and self.spans[key][-1][0] <= ts:
            return True
        return any(a <= ts <= b for a, b in self.spans.get(key, ()))
