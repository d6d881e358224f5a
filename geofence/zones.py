"""Zones of a contact ban, compiled into metric geometry.

A zone is a GeoJSON Polygon or MultiPolygon (holes allowed), or a Point with `radius_m`, widened
by `buffer_m`. Each zone is projected once into a local tangent plane anchored at its own
centre (see `geodesy.Frame`), where shapely measures in metres. Polygon edges are straight
lines in that plane; for zones of a few kilometres that is the same as straight in lon/lat,
and a polygon crossing the antimeridian may be given split (RFC 7946) or with longitudes
jumping across ±180: both describe the same shape here.

The *signed distance* of a point to a zone is the basis of every breach decision: positive
metres outside zone + buffer, zero on its boundary (a boundary point is inside), negative
inside (minus the depth). For circles it is exact; for polygons the depth inside is the
distance to the nearest ring plus the buffer, which is exact for convex corners and errs
towards a shallower depth (never towards "inside") elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geofence.geodesy import Frame, mean_anchor
from geofence.records import ZoneFeature

MAX_VERTICES = 20_000
MAX_EXTENT_M = 200_000.0


class ZoneError(ValueError):
    """A zone's geometry cannot be used; the message names the zone and the defect."""


@dataclass(frozen=True, slots=True)
class Zone:
    """A compiled zone. `geom` is in the metric plane of `frame` (x east, y north)."""

    zone_id: str
    label: str | None
    frame: Frame
    geom: BaseGeometry
    boundary: BaseGeometry | None  # rings of a polygon zone, None for circles
    reach_m: float  # radius (circles) + buffer: how far from `geom` still counts as inside
    buffer_m: float
    radius_m: float | None
    bounds_lonlat: tuple[tuple[float, float, float, float], ...]  # envelope(s) incl. reach

    @property
    def is_circle(self) -> bool:
        return self.boundary is None


def _ring(coords: object, where: str) -> np.ndarray:
    if not isinstance(coords, list) or len(coords) < 4:
        raise ZoneError(f"{where}: a linear ring needs at least 4 positions")
    try:
        arr = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError):
        raise ZoneError(f"{where}: positions must be [lon, lat] number pairs") from None
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ZoneError(f"{where}: positions must be [lon, lat] number pairs")
    if not np.isfinite(arr).all():
        raise ZoneError(f"{where}: coordinates must be finite numbers")
    lon, lat = arr[:, 0], arr[:, 1]
    if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
        raise ZoneError(f"{where}: coordinates out of range (lon in [-180, 180], lat in [-90, 90])")
    if not np.array_equal(arr[0, :2], arr[-1, :2]):
        raise ZoneError(f"{where}: ring is not closed (first and last positions differ)")
    return arr[:, :2]


def _polygons(geometry_type: str, coords: object, where: str) -> list[list[np.ndarray]]:
    if geometry_type == "Polygon":
        polys = [coords]
    else:
        if not isinstance(coords, list) or not coords:
            raise ZoneError(f"{where}: MultiPolygon needs at least one polygon")
        polys = coords
    out: list[list[np.ndarray]] = []
    for pi, poly in enumerate(polys):
        if not isinstance(poly, list) or not poly:
            raise ZoneError(f"{where}: polygon {pi} has no rings")
        out.append([_ring(r, f"{where}: polygon {pi} ring {ri}") for ri, r in enumerate(poly)])
    return out


def _envelopes(
    lats: np.ndarray, lons: np.ndarray, margin_m: float
) -> tuple[tuple[float, float, float, float], ...]:
    """Lon/lat boxes that surely contain everything within `margin_m` of the points.

    Split in two when the shape straddles the antimeridian; the full longitude range near
    the poles. Generous by design: the exact test happens in metres afterwards.
    """
    # A polygon edge is straight in the zone's local plane, which in lon/lat bows poleward of
    # the edge's end points by about L² tan(lat) / 8R for an east-west extent L: widen by
    # twice that (a wrapped longitude span only over-widens, which is harmless).
    abs_lat = min(float(np.abs(lats).max()), 89.0)
    span_deg = float(lons.max()) - float(lons.min())
    extent_m = span_deg * 111_320.0 * math.cos(math.radians(float(np.abs(lats).min())))
    bulge_m = extent_m**2 * math.tan(math.radians(abs_lat)) / (4 * 6_371_000.0)
    dlat = (margin_m + bulge_m) / 110_000.0 + 1e-6
    lat_lo = float(lats.min()) - dlat
    lat_hi = float(lats.max()) + dlat
    if lat_hi >= 89.0 or lat_lo <= -89.0:
        return ((-180.0, max(lat_lo, -90.0), 180.0, min(lat_hi, 90.0)),)
    coslat = math.cos(math.radians(max(abs(lat_lo), abs(lat_hi))))
    dlon = margin_m / (110_000.0 * coslat) + 1e-6
    east = lons[lons >= 0]
    west = lons[lons < 0]
    straddles = east.size and west.size and float(east.max()) - float(west.min()) > 180.0
    boxes: list[tuple[float, float, float, float]] = []
    if straddles:
        boxes.append((float(east.min()) - dlon, lat_lo, 180.0, lat_hi))
        boxes.append((-180.0, lat_lo, float(west.max()) + dlon, lat_hi))
    else:
        lo, hi = float(lons.min()) - dlon, float(lons.max()) + dlon
        boxes.append((max(lo, -180.0), lat_lo, min(hi, 180.0), lat_hi))
        if lo < -180.0:
            boxes.append((lo + 360.0, lat_lo, 180.0, lat_hi))
        if hi > 180.0:
            boxes.append((-180.0, lat_lo, hi - 360.0, lat_hi))
    return tuple(boxes)


def compile_zone(feature: ZoneFeature, margin_m: float = 0.0) -> Zone:
    """Compile one GeoJSON feature. `margin_m` widens the lon/lat envelope used by the
    spatial index (e.g. by the approach distance); it never changes the zone itself."""
    props = feature.properties
    where = f"zone {props.zone_id!r}"
    gtype = feature.geometry.type
    coords = feature.geometry.coordinates
    buffer_m = float(props.buffer_m)
    if gtype == "Point":
        if props.radius_m is None:
            raise ZoneError(f"{where}: a Point zone needs radius_m")
        try:
            pt = np.asarray(coords, dtype=np.float64)
        except (TypeError, ValueError):
            raise ZoneError(f"{where}: Point coordinates must be [lon, lat]") from None
        if pt.shape not in ((2,), (3,)) or not np.isfinite(pt).all():
            raise ZoneError(f"{where}: Point coordinates must be [lon, lat]")
        lon, lat = float(pt[0]), float(pt[1])
        if abs(lon) > 180 or abs(lat) > 90:
            raise ZoneError(f"{where}: coordinates out of range")
        frame = Frame.at(lat, lon)
        reach = float(props.radius_m) + buffer_m
        return Zone(
            props.zone_id,
            props.label,
            frame,
            shapely.Point(0.0, 0.0),
            None,
            reach,
            buffer_m,
            float(props.radius_m),
            _envelopes(np.array([lat]), np.array([lon]), reach + margin_m),
        )
    if props.radius_m is not None:
        raise ZoneError(f"{where}: radius_m applies to Point zones only; use buffer_m")
    polys = _polygons(gtype, coords, where)
    allpts = np.concatenate([r for p in polys for r in p])
    if len(allpts) > MAX_VERTICES:
        raise ZoneError(f"{where}: more than {MAX_VERTICES} vertices")
    alat, alon = mean_anchor(allpts[:, 1], allpts[:, 0])
    frame = Frame.at(alat, alon)
    shapes = []
    for pi, rings in enumerate(polys):
        metric = [frame.project(r[:, 1], r[:, 0]) for r in rings]
        poly = shapely.Polygon(metric[0], metric[1:])
        if not poly.is_valid:
            # drop the location shapely appends: errors must not carry coordinates
            reason = shapely.is_valid_reason(poly).split("[")[0]
            raise ZoneError(f"{where}: polygon {pi} is invalid: {reason}")
        # under 1 m² or thinner than half a metre on average: a line, not an area
        if poly.is_empty or poly.area < 1.0 or 2 * poly.area / poly.length < 0.5:
            raise ZoneError(f"{where}: polygon {pi} is empty or has no area")
        shapes.append(poly)
    # parts split at the antimeridian meet within nanometres: a micrometre grid merges them
    # (and moves vertices by under a micrometre)
    geom = shapes[0] if len(shapes) == 1 else shapely.union_all(shapes, grid_size=1e-6)
    if not geom.is_valid or geom.is_empty:
        raise ZoneError(f"{where}: polygons do not form a valid area")
    minx, miny, maxx, maxy = geom.bounds
    if max(maxx - minx, maxy - miny) > MAX_EXTENT_M:
        raise ZoneError(f"{where}: larger than {MAX_EXTENT_M / 1000:.0f} km across")
    shapely.prepare(geom)
    return Zone(
        props.zone_id,
        props.label,
        frame,
        geom,
        geom.boundary,
        buffer_m,
        buffer_m,
        None,
        _envelopes(allpts[:, 1], allpts[:, 0], buffer_m + margin_m),
    )


def signed_distance(zone: Zone, lat: float, lon: float) -> float:
    """Signed distance in metres from (lat, lon) to zone + buffer (see module doc).

    The scalar reference implementation; `evaluation.signed_distances` is the batched one and
    must agree with it.
    """
    x, y = zone.frame.project(np.array([lat]), np.array([lon]))[0]
    if zone.boundary is None:
        return math.hypot(x, y) - zone.reach_m
    p = shapely.Point(x, y)
    d = zone.geom.distance(p)
    if d == 0.0:
        d = -zone.boundary.distance(p)
    return float(d - zone.reach_m)
