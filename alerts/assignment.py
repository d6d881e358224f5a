"""Patrol units and who is sent: the nearest available units with a fresh position.

Distances are measured through the ellipsoid to rank (exact to a metre within 100 km) and
reported as exact geodesic metres. Positions are applied per unit in event-time order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from config.policy import Policy
from geofence.geodesy import ecef, geodesic_m
from geofence.records import PatrolPosition, PatrolStatus

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

#: Ranking rounds distances to a millimetre; a unit further than this beyond the k-th nearest
#: cannot round to its distance or below, so it is never among the k (see `Fleet.nearest`).
_RANK_SLACK_M = 0.002


def _micros(t: datetime) -> int:
    """Microseconds since the epoch, exactly (an aware datetime)."""
    return (t - _EPOCH) // _US


@dataclass(frozen=True, slots=True)
class Recommendation:
    unit_id: str
    distance_m: float

    def as_value(self) -> dict[str, object]:
        return {"unit_id": self.unit_id, "distance_m": round(self.distance_m, 1)}


_Query = tuple[float, float, datetime, float, frozenset[str], bool]

#: Task states that make a unit busy: never recommended nor tasked (alerts/taskmodel.py ACTIVE).
_ACTIVE = frozenset({"accepted", "en_route", "on_scene"})
_ENDED = frozenset({"done", "declined", "expired", "cancelled"})
#: How many ended tasks keep their newest seq (so that a repeated older revision of them is
#: ignored); beyond it the oldest are forgotten: `patrol-tasks` is keyed by unit, so a task's
#: revisions arrive in order and its end state last, and a forgotten one read again from the
#: log ends where it ended.
ENDED_TASKS_KEPT = 50_000


class Fleet:
    """The latest position of every unit, also in numpy columns (one row per unit, in the
    order units were first seen; earth-centred coordinates, see `geodesy.ecef`) so that
    `nearest` filters and measures them in one pass: it runs for every alert revision."""

    def __init__(self) -> None:
        self._units: dict[str, PatrolPosition] = {}
        self._row: dict[str, int] = {}
        self._ids: list[str] = []
        self._xyz: npt.NDArray[np.float64] = np.zeros((16, 3))
        self._ts_us: npt.NDArray[np.int64] = np.zeros(16, dtype=np.int64)
        self._available: npt.NDArray[np.bool_] = np.zeros(16, dtype=bool)
        # the last answer: an alert's respond task asks again what its revision just asked
        self._last: tuple[_Query, int, list[Recommendation]] | None = None
        # unit -> the ids of its tasks that make it busy (`_busy`) or that it has not answered
        # yet (`_asked`: not offered another one meanwhile); task -> the newest seq seen
        self._busy: dict[str, set[str]] = {}
        # the engine's clock at the record being applied (event time in replay, the wall clock
        # in the stream): a unit is asked then at the earliest, whatever the alert's event
        # time (a late incident); None while timers fire (asked at the timer's time)
        self.now: datetime | None = None
        self._asked: dict[str, set[str]] = {}
        self._task_seq: dict[str, int] = {}
        self._ended: dict[str, None] = {}  # ended task ids, oldest first (bounded)

    def __len__(self) -> int:
        return len(self._units)

    def update(self, pos: PatrolPosition) -> bool:
        """Apply a position; False (ignored) if it is older than the one held for the unit."""
        held = self._units.get(pos.unit_id)
        if held is not None and pos.ts <= held.ts:
            return False
        self._units[pos.unit_id] = pos
        self._last = None
        row = self._row.get(pos.unit_id)
        if row is None:
            row = len(self._ids)
            if row == self._ts_us.size:
                self._grow()
            self._row[pos.unit_id] = row
            self._ids.append(pos.unit_id)
        self._xyz[row] = ecef(pos.lat, pos.lon)
        self._ts_us[row] = _micros(pos.ts)
        self._available[row] = pos.status is PatrolStatus.available
        return True

    def _grow(self) -> None:
        n = 2 * self._ts_us.size
        self._xyz = np.resize(self._xyz, (n, 3))
        self._ts_us = np.resize(self._ts_us, n)
        self._available = np.resize(self._available, n)

    def get(self, unit_id: str) -> PatrolPosition | None:
        return self._units.get(unit_id)

    def note_task(self, value: Mapping[str, Any], adopted: bool = False) -> None:
        """Apply a task revision (as published on `patrol-tasks`, by any worker) to the busy
        units. Idempotent by (task_id, seq): an older or repeated revision changes nothing,
        unless it is `adopted` (the revision a restored state holds: the truth, even if a
        failed engine call had noted a newer one whose output was dropped). Role tasks (no
        unit) are ignored."""
        tid, seq, unit, state = (
            value.get("task_id"),
            value.get("seq"),
            value.get("unit_id"),
            value.get("state"),
        )
        if not isinstance(tid, str) or not isinstance(unit, str) or type(seq) is not int:
            return
        held = self._task_seq.get(tid)
        if held is not None and seq <= held and not adopted:
            return
        self._task_seq[tid] = seq
        if state in _ENDED:
            self._ended[tid] = None
            if len(self._ended) > ENDED_TASKS_KEPT:
                oldest = next(iter(self._ended))
                del self._ended[oldest]
                self._task_seq.pop(oldest, None)
        self._last = None
        for by_unit, on in ((self._busy, state in _ACTIVE), (self._asked, state == "assigned")):
            tasks = by_unit.get(unit)
            if on:
                by_unit.setdefault(unit, set()).add(tid)
            elif tasks is not None and tid in tasks:
                tasks.discard(tid)
                if not tasks:
                    del by_unit[unit]

    def busy(self, unit_id: str) -> bool:
        """Whether the unit holds an accepted, en-route or on-scene task."""
        return unit_id in self._busy

    def busy_units(self) -> frozenset[str]:
        return frozenset(self._busy)

    def asked(self, unit_id: str) -> bool:
        """Whether the unit holds a task it has not answered yet."""
        return unit_id in self._asked

    def nearest(
        self,
        lat: float,
        lon: float,
        at: datetime,
        policy: Policy,
        k: int,
        exclude: frozenset[str] = frozenset(),
        offer: bool = False,
    ) -> list[Recommendation]:
        """Up to `k` available units whose position is at most `max_patrol_age_s` from `at`,
        nearest first (ties by unit id), leaving out `exclude` and busy units (`note_task`);
        for an `offer` of a task also the units holding one they have not answered."""
        query = (lat, lon, at, policy.max_patrol_age_s, exclude, offer)
        if self._last is not None:
            held, held_k, answer = self._last
            if held == query and (k <= held_k or len(answer) < held_k):
                return answer[:k]  # the k nearest start with the j < k nearest
        answer = self._nearest(lat, lon, at, policy, k, exclude, offer)
        self._last = (query, k, answer)
        return answer[:]

    def _nearest(
        self,
        lat: float,
        lon: float,
        at: datetime,
        policy: Policy,
        k: int,
        exclude: frozenset[str],
        offer: bool,
    ) -> list[Recommendation]:
        n = len(self._ids)
        if n == 0:
            return []
        # |at - ts| in seconds as timedelta.total_seconds() computes it: microseconds / 10**6,
        # correctly rounded (exact below 2**53 µs, 285 years; beyond that far from any limit)
        age_s = np.abs(_micros(at) - self._ts_us[:n]) / 1e6
        ok = self._available[:n] & (age_s <= policy.max_patrol_age_s)
        for unit_id in exclude:
            row = self._row.get(unit_id)
            if row is not None:
                ok[row] = False
        for held in (self._busy, self._asked) if offer else (self._busy,):
            for unit_id in held:
                row = self._row.get(unit_id)
                if row is not None:
                    ok[row] = False
        rows = np.flatnonzero(ok)
        if rows.size == 0:
            return []
        # geodesy.chord_many_m, with the units' side computed once per position
        diff = self._xyz[rows] - ecef(lat, lon)
        d = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        if 0 < k < rows.size:
            # only units within a millimetre of the k-th distance can be among the k nearest
            # once distances are rounded; those are ranked exactly as below
            kth = float(np.partition(d, k - 1)[k - 1])
            near = np.flatnonzero(d <= kth + _RANK_SLACK_M)
        else:
            near = np.arange(rows.size)
        ids = self._ids
        dists = d[near].tolist()
        cand = [(round(dists[j], 3), ids[int(rows[i])]) for j, i in enumerate(near.tolist())]
        cand.sort()
        out = []
        for _, unit_id in cand[:k]:
            u = self._units[unit_id]
            out.append(Recommendation(unit_id, geodesic_m(lat, lon, u.lat, u.lon)))
        return out
