"""Patrol units and who is sent: the nearest available units with a fresh position.

Distances are measured through the ellipsoid to rank (exact to a metre within 100 km) and
reported as exact geodesic metres. Positions are applied per unit in event-time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from config.policy import Policy
from geofence.geodesy import chord_many_m, geodesic_m
from geofence.records import PatrolPosition, PatrolStatus


@dataclass(frozen=True, slots=True)
class Recommendation:
    unit_id: str
    distance_m: float

    def as_value(self) -> dict[str, object]:
        return {"unit_id": self.unit_id, "distance_m": round(self.distance_m, 1)}


class Fleet:
    def __init__(self) -> None:
        self._units: dict[str, PatrolPosition] = {}

    def __len__(self) -> int:
        return len(self._units)

    def update(self, pos: PatrolPosition) -> bool:
        """Apply a position; False (ignored) if it is older than the one held for the unit."""
        held = self._units.get(pos.unit_id)
        if held is not None and pos.ts <= held.ts:
            return False
        self._units[pos.unit_id] = pos
        return True

    def get(self, unit_id: str) -> PatrolPosition | None:
        return self._units.get(unit_id)

    def nearest(
        self,
        lat: float,
        lon: float,
        at: datetime,
        policy: Policy,
        k: int,
        exclude: frozenset[str] = frozenset(),
    ) -> list[Recommendation]:
        """Up to `k` available units whose position is at most `max_patrol_age_s` from `at`,
        nearest first (ties by unit id)."""
        cand = [
            u
            for u in self._units.values()
            if u.status is PatrolStatus.available
            and u.unit_id not in exclude
            and abs((at - u.ts).total_seconds()) <= policy.max_patrol_age_s
        ]
        if not cand:
            return []
        d = chord_many_m(lat, lon, np.array([u.lat for u in cand]), np.array([u.lon for u in cand]))
        order = sorted(range(len(cand)), key=lambda i: (round(float(d[i]), 3), cand[i].unit_id))
        return [
            Recommendation(cand[i].unit_id, geodesic_m(lat, lon, cand[i].lat, cand[i].lon))
            for i in order[:k]
        ]
