"""Zones of a contact ban, compiled into metric geometry.

Input: a GeoJSON Polygon or MultiPolygon (holes allowed) or a Point with `radius_m`, in WGS84
degrees, positions `[lon, lat]` (GeoJSON order; every other function here takes `lat, lon`),
widened by `buffer_m` metres. All distances are metres on the ground.

Edges are straight lines in lon/lat (RFC 7946; contract v2 rule 1), not geodesics and not
straight in any plane. Each zone is measured in a local tangent plane anchored at its own centre
(`geodesy.Frame`, x east, y north, metres), where shapely works; the image of a lon/lat-straight
edge there is a curve, so every edge is first densified in lon/lat, adaptively, until the planar
chords stray less than ~1 cm from that curve (DENSIFY_TOL_M; the sag grows with the edge's
length squared: edges up to ~380 m at 60° N get no extra points, the four ~190 km edges of a
200 km zone at 59-61° N get 891). The plane shrinks distances far from the anchor (by a
relative 1 − cos(s/R): 1.2e-4 at 100 km, 2.5e-4 at a 200 km zone's corners), which matters only
away from an edge: measured against geodesics, 1 cm within 30 m of every edge of zones of 1,
40 and 200 km, 5 cm at 300 m off the 200 km zone's far edges. A polygon crossing the
antimeridian may be given split (RFC 7946) or with longitudes jumping across ±180 (each edge
then goes the short way round): both describe the same shape.

The *signed distance* of a point to a zone is the basis of every breach decision: positive
metres outside zone + buffer, zero on its boundary (a boundary point is inside), negative
inside, where it is minus the depth: the distance to the boundary of the buffered shape
(contract v2 rule 2), also in concave shapes (a courtyard that the buffer fills is deep inside).
For circles and convex polygons without holes the analytic depth is exact (depth to the rings
+ buffer inside the zone, buffer − distance in the buffer band). For other polygons with a
buffer it comes from the zone's buffered polygon (`Zone.buffered`, built on first need), whose
arcs are drawn with chords inscribed in the true arcs (at most BUFFER_TOL_M inside them), so the
depth is a lower bound short by at most ~1 cm, combined with those analytic lower bounds (the
larger depth wins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geofence.geodesy import Frame, mean_anchor
from geofence.records import ZoneFeature

MAX_VERTICES = 20_000  # as given: the points densification adds do not count
MAX_EXTENT_M = 200_000.0
MAX_DENSIFIED = 200_000  # points after densification, all rings of a zone together
DENSIFY_TOL_M = 0.01  # how far a planar chord may stray from a lon/lat-straight edge
BUFFER_TOL_M = 0.01  # how far the buffered shape's chords may fall inside its true arcs


class ZoneError(ValueError):
    """A zone's geometry cannot be used; the message names the zone and the defect."""


@dataclass(frozen=True)
class Buffered:
    """Zone + buffer as a polygon, for depths inside it (rule 2), built once per zone.

    `shape` is shapely's buffer of the zone, its arcs drawn with `quad_segs` chords whose
    vertices lie on the arcs, so chords fall inside the true arcs by at most `sag_m`
    (≤ BUFFER_TOL_M unless the buffer is over ~50 km). GEOS may simplify shallow concave
    stretches of the rings before buffering, pushing the shape outwards: `excess_m` is how
    far its boundary vertices measure beyond `buffer_m` from the zone (0 when it did not).
    For a point inside, `depth(shape) - excess_m` is then a lower bound of the true depth,
    and at most `sag_m + excess_m` below it.
    """

    shape: BaseGeometry
    boundary: BaseGeometry
    quad_segs: int
    sag_m: float
    excess_m: float


def quad_segs_for(buffer_m: float) -> int:
    """Chords per quarter circle so that an arc of radius `buffer_m` is followed within
    BUFFER_TOL_M (sag r·(1 − cos(π/4q))): 40 for 50 m, 125 for 500 m; 8 to 512."""
    if buffer_m <= BUFFER_TOL_M:
        return 8
    q = math.ceil(math.pi / (4.0 * math.acos(1.0 - BUFFER_TOL_M / buffer_m)))
    return max(8, min(512, q))


def _buffered(geom: BaseGeometry, buffer_m: float) -> Buffered:
    q = quad_segs_for(buffer_m)
    shape = shapely.buffer(geom, buffer_m, quad_segs=q)
    shapely.prepare(shape)
    # how far the vertices of the buffer's boundary lie from the zone, via the zone's
    # boundary segments (the vertices are all outside the zone)
    segs = []
    for line in shapely.get_parts(geom.boundary):
        c = shapely.get_coordinates(line)
        segs.append(np.stack([c[:-1], c[1:]], axis=1))
    tree = shapely.STRtree(shapely.linestrings(np.concatenate(segs)))
    verts = shapely.points(shapely.get_coordinates(shape.boundary))
    _, dist = tree.query_nearest(verts, return_distance=True, all_matches=False)
    excess = max(0.0, float(dist.max()) - buffer_m) if dist.size else 0.0
    sag = buffer_m * (1.0 - math.cos(math.pi / (4.0 * q)))
    return Buffered(shape, shape.boundary, q, sag, excess)


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
    # a circle, or a convex polygon without holes: the depth from the rings + buffer is exact
    convex: bool
    _memo: dict[str, Buffered] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_circle(self) -> bool:
        return self.boundary is None

    def buffered(self) -> Buffered:
        """Zone + buffer as a polygon (polygon zones with a buffer only), built on first use:
        only fixes inside zone + buffer need it, so most zones never build one."""
        b = self._memo.get("b")
        if b is None:
            assert self.boundary is not None and self.buffer_m > 0.0
            b = self._memo["b"] = _buffered(self.geom, self.buffer_m)
        return b


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
    """Lon/lat boxes that surely contain everything within `margin_m` of the points' polygon.

    Edges are straight in lon/lat, so the box of the vertices holds the whole polygon (split
    in two when the shape straddles the antimeridian; the full longitude range near the
    poles). The margin is widened by 1 m for the planar chords between densified points
    (< 1 cm off the true edges) and converted to degrees generously (110 km a degree of
    latitude, 110 km × cos(lat) of longitude: over 0.5 % to spare, far more than the local
    plane's scale error of under 0.03 % within 150 km of the anchor). The exact test happens
    in metres afterwards.
    """
    margin_m = margin_m + 1.0
    dlat = margin_m / 110_000.0 + 1e-6
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


def _unwrap(lon: np.ndarray) -> np.ndarray:
    """Longitudes made continuous along a ring: each step taken the short way round, so an
    edge from 179.9 to -179.9 is 0.2° long (values may leave [-180, 180]; `Frame` does not
    mind)."""
    if float(lon.max()) - float(lon.min()) <= 180.0:
        return lon  # no step can wrap
    raw = np.diff(lon)
    turns = np.round((((raw + 180.0) % 360.0 - 180.0) - raw) / 360.0)
    # whole turns only, so that a closed ring stays exactly closed
    out: np.ndarray = lon + 360.0 * np.concatenate([[0.0], np.cumsum(turns)])
    return out


def _deviation(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Distance of each point p from the line through a and b (all (n, 2), metres)."""
    ab = b - a
    length = np.hypot(ab[:, 0], ab[:, 1])
    cross = np.abs(ab[:, 0] * (p[:, 1] - a[:, 1]) - ab[:, 1] * (p[:, 0] - a[:, 0]))
    out: np.ndarray = np.divide(cross, length, out=np.zeros_like(cross), where=length > 0)
    return out


def _sag_bound(xy: np.ndarray, lat: np.ndarray) -> float:
    """An upper bound of how far the image of any lon/lat-straight edge of the ring bows away
    from its chord, from the longest edge L: L² κ / 8, where κ <= (2 tan|lat| + 0.1) / R
    bounds the curvature of the image (a parallel's is tan(lat) / R; the slope's change
    along a slanted edge at most doubles it; the plane adds ~D / R² at D from the anchor)."""
    seg = np.diff(xy, axis=0)
    longest2 = float((seg * seg).sum(axis=1).max())
    tan = math.tan(math.radians(min(float(np.abs(lat).max()), 89.9)))
    return longest2 * (2.0 * tan + 0.1) / (8.0 * 6_356_000.0)


def _edge_pieces(frame: Frame, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many planar chords each lon/lat-straight edge of a ring needs so that none strays
    more than about DENSIFY_TOL_M from the edge's image in the plane, and the ring's planar
    vertices.

    The image of a lon/lat-straight edge bows away from its chord by a sag that grows with
    the edge's length squared. Rings whose `_sag_bound` is within the tolerance (edges up to
    ~380 m at 60° N) need nothing more; otherwise the sag is measured at each edge's
    quarter, middle and three-quarter points (an S-bend shows at the quarters), and k equal
    pieces in lon/lat leave sag / k².
    """
    xy = frame.project(lat, lon)
    m = len(lat) - 1
    if _sag_bound(xy, lat) <= DENSIFY_TOL_M:
        return np.ones(m, dtype=np.int64), xy
    dlat, dlon = np.diff(lat), np.diff(lon)
    ts = (0.5, 0.25, 0.75)
    mid = frame.project(
        np.concatenate([lat[:-1] + t * dlat for t in ts]),
        np.concatenate([lon[:-1] + t * dlon for t in ts]),
    )
    a, b = xy[:m], xy[1:]
    sag = np.zeros(m)
    for i, scale in enumerate((1.0, 0.75, 0.75)):
        sag = np.maximum(sag, _deviation(a, b, mid[i * m : (i + 1) * m]) / scale)
    pieces = np.ceil(np.sqrt(sag / DENSIFY_TOL_M)).astype(np.int64)
    out: np.ndarray = np.maximum(pieces, 1)
    return out, xy


def _densified(
    frame: Frame, lat: np.ndarray, lon: np.ndarray, pieces: np.ndarray, xy: np.ndarray
) -> np.ndarray:
    """The ring's planar vertices (`xy`), with `pieces[i] - 1` points added evenly (in
    lon/lat) on edge i: an (n, 2) array in metres."""
    if (pieces == 1).all():
        return xy
    edge = np.repeat(np.arange(len(pieces)), pieces)
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    t = (np.arange(int(pieces.sum())) - first) / np.repeat(pieces, pieces)
    dlat, dlon = np.diff(lat), np.diff(lon)
    lats = np.append(lat[edge] + t * dlat[edge], lat[-1])
    lons = np.append(lon[edge] + t * dlon[edge], lon[-1])
    return frame.project(lats, lons)


def _convex(polys: list[list[np.ndarray]]) -> bool:
    """A single planar ring without holes whose every turn goes the same way (collinear
    points allowed): then the buffer's depth is the analytic one, no buffered shape needed."""
    if len(polys) != 1 or len(polys[0]) != 1:
        return False
    c = polys[0][0]
    e = np.diff(np.vstack([c, c[1:2]]), axis=0)
    cross = e[:-1, 0] * e[1:, 1] - e[:-1, 1] * e[1:, 0]
    return bool((cross >= 0.0).all() or (cross <= 0.0).all())


def _no_area(poly: BaseGeometry) -> bool:
    """Under 1 m² or thinner than half a metre on average: a line, not an area."""
    return bool(poly.is_empty or poly.area < 1.0 or 2 * poly.area / poly.length < 0.5)


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
            True,
        )
    if props.radius_m is not None:
        raise ZoneError(f"{where}: radius_m applies to Point zones only; use buffer_m")
    polys = _polygons(gtype, coords, where)
    allpts = np.concatenate([r for p in polys for r in p])
    if len(allpts) > MAX_VERTICES:
        raise ZoneError(f"{where}: more than {MAX_VERTICES} vertices")
    alat, alon = mean_anchor(allpts[:, 1], allpts[:, 0])
    frame = Frame.at(alat, alon)
    # edges are straight in lon/lat (RFC 7946): densify each edge in lon/lat before
    # projecting, so that the planar chords follow its curved image in the plane
    unwrapped = [[(r[:, 1], _unwrap(r[:, 0])) for r in rings] for rings in polys]
    pieces = [[_edge_pieces(frame, la, lo) for la, lo in rings] for rings in unwrapped]
    total = sum(int(k.sum()) for ks in pieces for k, _ in ks)
    if total > MAX_DENSIFIED:
        raise ZoneError(
            f"{where}: edges too long to follow in lon/lat within {MAX_DENSIFIED} points; "
            "split long edges or the zone"
        )
    shapes = []
    planar = []
    for pi, (rings, ks) in enumerate(zip(unwrapped, pieces, strict=True)):
        metric = [
            _densified(frame, la, lo, k, xy) for (la, lo), (k, xy) in zip(rings, ks, strict=True)
        ]
        planar.append(metric)
        poly = shapely.Polygon(metric[0], metric[1:])
        if not poly.is_valid and _no_area(shapely.make_valid(poly)):
            # e.g. positions on one parallel: densified, the ring retraces its own path
            raise ZoneError(f"{where}: polygon {pi} is empty or has no area")
        if not poly.is_valid:
            # drop the location shapely appends: errors must not carry coordinates
            reason = shapely.is_valid_reason(poly).split("[")[0]
            raise ZoneError(f"{where}: polygon {pi} is invalid: {reason}")
        if _no_area(poly):
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
        _convex(planar),
    )


def signed_distance(zone: Zone, lat: float, lon: float) -> float:
    """Signed distance in metres from (lat, lon) to zone + buffer (see module doc).

    The scalar reference implementation; `ZoneTable.signed_distances` is the batched one and
    must agree with it.
    """
    x, y = zone.frame.project(np.array([lat]), np.array([lon]))[0]
    if zone.boundary is None:
        return math.hypot(x, y) - zone.reach_m
    p = shapely.Point(x, y)
    d = float(zone.geom.distance(p))
    # lower bounds of the depth: inside the zone, depth to its rings + buffer; in the buffer
    # band, buffer - distance. Exact for convex shapes, short in concave ones:
    sd = d - zone.buffer_m if d > 0.0 else -(float(zone.boundary.distance(p)) + zone.buffer_m)
    if sd <= 0.0 and zone.buffer_m > 0.0 and not zone.convex:
        # the depth in the buffered shape is exact in concave shapes too (to within cm)
        b = zone.buffered()
        if b.shape.covers(p):
            sd = min(sd, b.excess_m - float(b.boundary.distance(p)))
    return sd
