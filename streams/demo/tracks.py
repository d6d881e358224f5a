"""Positions over the demo's time: straight legs between waypoints (the script's persons and
patrol cars, and the actors' drives)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

LatLon = tuple[float, float]


@dataclass(frozen=True)
class Track:
    """A position as a function of seconds since the start: straight legs between waypoints
    `(t, lat, lon)`, standing still before the first and after the last."""

    points: tuple[tuple[float, float, float], ...]

    def at(self, t: float) -> LatLon:
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1], pts[0][2]
        for (t0, a0, o0), (t1, a1, o1) in itertools.pairwise(pts):
            if t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return a0 + (a1 - a0) * f, o0 + (o1 - o0) * f
        return pts[-1][1], pts[-1][2]


def track(*points: tuple[float, LatLon]) -> Track:
    return Track(tuple((t, p[0], p[1]) for t, p in points))
