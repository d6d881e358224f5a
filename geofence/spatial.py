"""Columnar storage of every compiled zone, batched signed distances, and the spatial index.

`ZoneTable` keeps the zones of all bans in numpy columns so that many (point, zone) pairs are
measured in one vectorised pass: project each point into its zone's plane (numpy), then one
shapely call for all polygon pairs; only the pairs inside zone + buffer of a buffered polygon
take a second, per-zone step (the exact depth in its buffered shape, see `zones`). Points are
(lat, lon) in WGS84 degrees, distances metres: the same signed distance as
`zones.signed_distance`.

`ZoneIndex` answers "which zones contain this point" (zone + buffer, boundary inside) for
position-matched incidents: an STRtree over lon/lat envelopes, rebuilt in bulk, plus a small
list of zones added since the last build that is scanned directly, so that bans arriving one by
one never trigger a rebuild per ban.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely

from geofence.geodesy import project_pairs
from geofence.zones import Zone

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class ZoneTable:
    """Zones in slots; a slot is reused after its zone is removed."""

    def __init__(self, capacity: int = 64) -> None:
        self._origins = np.zeros((capacity, 3))
        self._easts = np.zeros((capacity, 3))
        self._norths = np.zeros((capacity, 3))
        self._reach = np.zeros(capacity)
        self._circle = np.ones(capacity, dtype=bool)
        self._concave = np.zeros(capacity, dtype=bool)  # buffered, depth via `Zone.buffered`
        self._geoms = np.empty(capacity, dtype=object)
        self._bounds = np.empty(capacity, dtype=object)
        self.zones: list[Zone | None] = [None] * capacity
        self._free: list[int] = list(range(capacity - 1, -1, -1))

    def __len__(self) -> int:
        return len(self.zones) - len(self._free)

    def _grow(self) -> None:
        old = len(self.zones)
        new = old * 2
        for name in ("_origins", "_easts", "_norths"):
            arr = getattr(self, name)
            grown = np.zeros((new, 3))
            grown[:old] = arr
            setattr(self, name, grown)
        self._reach = np.concatenate([self._reach, np.zeros(old)])
        self._circle = np.concatenate([self._circle, np.ones(old, dtype=bool)])
        self._concave = np.concatenate([self._concave, np.zeros(old, dtype=bool)])
        self._geoms = np.concatenate([self._geoms, np.empty(old, dtype=object)])
        self._bounds = np.concatenate([self._bounds, np.empty(old, dtype=object)])
        self.zones.extend([None] * old)
        self._free.extend(range(new - 1, old - 1, -1))

    def add(self, zone: Zone) -> int:
        if not self._free:
            self._grow()
        slot = self._free.pop()
        f = zone.frame
        self._origins[slot] = f.origin
        self._easts[slot] = f.east
        self._norths[slot] = f.north
        self._reach[slot] = zone.reach_m
        self._circle[slot] = zone.is_circle
        self._concave[slot] = zone.buffer_m > 0.0 and not zone.convex
        self._geoms[slot] = zone.geom
        self._bounds[slot] = zone.boundary
        self.zones[slot] = zone
        return slot

    def remove(self, slot: int) -> None:
        self.zones[slot] = None
        self._geoms[slot] = None
        self._bounds[slot] = None
        self._circle[slot] = True
        self._concave[slot] = False
        self._free.append(slot)

    def signed_distances(self, slots: IntArray, lats: FloatArray, lons: FloatArray) -> FloatArray:
        """Signed distance (metres, see `zones`) of point i to the zone in slot i, for all i."""
        if slots.size == 0:
            return np.zeros(0)
        xy = project_pairs(
            lats, lons, self._origins[slots], self._easts[slots], self._norths[slots]
        )
        out = np.hypot(xy[:, 0], xy[:, 1]) - self._reach[slots]
        poly = ~self._circle[slots]
        if poly.any():
            pslots = slots[poly]
            pts = shapely.points(xy[poly])
            d = shapely.distance(self._geoms[pslots], pts)
            inside = d == 0.0
            if inside.any():
                d[inside] = -shapely.distance(self._bounds[pslots[inside]], pts[inside])
            sd = d - self._reach[pslots]
            deep = (sd <= 0.0) & self._concave[pslots]
            if deep.any():
                self._buffered_depths(pslots, pts, sd, deep)
            out[poly] = sd
        return out

    def _buffered_depths(
        self, slots: IntArray, pts: npt.NDArray[np.object_], sd: FloatArray, deep: BoolArray
    ) -> None:
        """Exact depths (rule 2) in place, for the points inside zone + buffer of a buffered
        polygon zone: as `zones.signed_distance`, zone by zone."""
        idx = np.flatnonzero(deep)
        for slot in np.unique(slots[idx]):
            zone = self.zones[slot]
            assert zone is not None
            b = zone.buffered()
            mine = idx[slots[idx] == slot]
            p = pts[mine]
            covered = shapely.covers(b.shape, p)
            if covered.any():
                at = mine[covered]
                depth = b.excess_m - shapely.distance(b.boundary, p[covered])
                sd[at] = np.minimum(sd[at], depth)


class ZoneIndex:
    """Which zones (slots of a `ZoneTable`) contain a point, zone + buffer, boundary inside."""

    REBUILD_AFTER = 256

    def __init__(self, table: ZoneTable) -> None:
        self._table = table
        self._tree: shapely.STRtree | None = None
        self._tree_slots: IntArray = np.zeros(0, dtype=np.int64)
        self._pending: set[int] = set()
        self._removed: set[int] = set()
        self._indexed: set[int] = set()

    def _due(self, waiting: int) -> bool:
        """Rebuild when the delta outgrows a quarter of the tree (and at least REBUILD_AFTER):
        a fixed threshold made loading n zones cost O(n²) (100,000 bans: 9 minutes)."""
        return waiting > max(self.REBUILD_AFTER, len(self._indexed) // 4)

    def add(self, slot: int) -> None:
        self._removed.discard(slot)
        self._pending.add(slot)
        if self._due(len(self._pending)):
            self._rebuild()

    def remove(self, slot: int) -> None:
        self._pending.discard(slot)
        if slot in self._indexed:
            self._removed.add(slot)
            if self._due(len(self._removed)):
                self._rebuild()

    def _rebuild(self) -> None:
        live = (self._indexed - self._removed) | self._pending
        bounds: list[tuple[float, float, float, float]] = []
        owners: list[int] = []
        for slot in sorted(live):
            zone = self._table.zones[slot]
            assert zone is not None
            for b in zone.bounds_lonlat:
                bounds.append(b)
                owners.append(slot)
        if bounds:
            cols = np.asarray(bounds, dtype=np.float64)
            boxes = shapely.box(cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3])
            self._tree = shapely.STRtree(boxes)
        else:
            self._tree = None
        self._tree_slots = np.asarray(owners, dtype=np.int64)
        self._indexed = live
        self._pending.clear()
        self._removed.clear()

    def candidates(self, lat: float, lon: float) -> IntArray:
        """Slots whose envelope holds the point (a superset of the containing zones)."""
        found: set[int] = set()
        if self._tree is not None:
            hits = self._tree.query(shapely.Point(lon, lat))
            found.update(int(s) for s in self._tree_slots[hits])
            found -= self._removed
        for slot in self._pending:
            zone = self._table.zones[slot]
            if zone is not None and any(
                b[0] <= lon <= b[2] and b[1] <= lat <= b[3] for b in zone.bounds_lonlat
            ):
                found.add(slot)
        return np.asarray(sorted(found), dtype=np.int64)

    def containing(self, lat: float, lon: float) -> IntArray:
        """Slots of the zones whose zone + buffer covers the point."""
        cand = self.candidates(lat, lon)
        if cand.size == 0:
            return cand
        sd = self._table.signed_distances(cand, np.full(cand.size, lat), np.full(cand.size, lon))
        return cand[sd <= 0.0]
