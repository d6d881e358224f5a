"""A shared catalogue of awkward zones with known ground truth, and builders for input records.

Every `Case` is one GeoJSON feature (a plain dict, as it arrives inside a ContactBan) with
probe points whose answer is known independently of the code under test: test points are
placed with geographiclib's `Geodesic.WGS84.Direct` at exact geodesic distances from a centre,
a vertex or an edge, so "299.5 m from the centre of a 300 m circle" means exactly that on the
ellipsoid. Coordinates in GeoJSON are `[lon, lat]`; `Probe` and the helpers take `(lat, lon)`.

Expectations:
- `inside` / `outside`: the sign of the signed distance (zone + buffer, boundary inside).
- `boundary`: on an edge; the signed distance is 0 within `BOUNDARY_TOL_M` (a position
  between two vertices is on the edge only to within that: edges are straight in the zone's
  local plane, see `geofence.zones`).
- `vertex`: exactly a vertex of the zone's rings: signed distance 0 within `BOUNDARY_TOL_M`
  (boundary points are inside).
- `sd`: the expected signed distance in metres (within `tol`) where it is known.

`INVALID` lists geometries that must be refused, with a fragment of the expected `ZoneError`
message. The record builders at the end (`ban`, `fix`, ...) produce contract-shaped JSON
values for the decoding, engine and property tests.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from geographiclib.geodesic import Geodesic

from geofence.records import ZoneFeature

BOUNDARY_TOL_M = 1e-6

Json = dict[str, Any]
Expect = Literal["inside", "outside", "boundary", "vertex"]


# ----------------------------------------------------------------------------- geodesy
def direct(lat: float, lon: float, azimuth: float, s_m: float) -> tuple[float, float]:
    """The point `s_m` metres from (lat, lon) along the geodesic leaving at `azimuth` degrees
    (clockwise from north), on the WGS84 ellipsoid; longitude normalised to [-180, 180]."""
    g = Geodesic.WGS84.Direct(lat, lon, azimuth, s_m)
    return g["lat2"], g["lon2"]


def geodesic(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Exact geodesic distance in metres (Karney), the ground truth for every distance."""
    return float(Geodesic.WGS84.Inverse(lat1, lon1, lat2, lon2)["s12"])


# ----------------------------------------------------------------------------- GeoJSON
def feature(zone_id: str, gtype: str, coordinates: Any, **properties: Any) -> Json:
    return {
        "type": "Feature",
        "properties": {"zone_id": zone_id, **properties},
        "geometry": {"type": gtype, "coordinates": coordinates},
    }


def ring(lon0: float, lat0: float, lon1: float, lat1: float) -> list[list[float]]:
    """A closed counter-clockwise lon/lat rectangle ring (RFC 7946 exterior orientation)."""
    return [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]


def rect(zone_id: str, lon0: float, lat0: float, lon1: float, lat1: float, **props: Any) -> Json:
    return feature(zone_id, "Polygon", [ring(lon0, lat0, lon1, lat1)], **props)


def circle(zone_id: str, lat: float, lon: float, radius_m: float, **props: Any) -> Json:
    return feature(zone_id, "Point", [lon, lat], radius_m=radius_m, **props)


def zone_feature(f: Json) -> ZoneFeature:
    return ZoneFeature.model_validate(f)


# ----------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Probe:
    label: str
    lat: float
    lon: float
    expect: Expect
    sd: float | None = None
    tol: float = 0.01

    def __post_init__(self) -> None:
        if self.expect in ("boundary", "vertex") and self.sd is None:
            object.__setattr__(self, "sd", 0.0)
            object.__setattr__(self, "tol", BOUNDARY_TOL_M)


@dataclass(frozen=True)
class Case:
    name: str
    feature: Json
    probes: tuple[Probe, ...]
    # exact-distance checks: (lat, lon) of a point from which signed distance + `offset_m`
    # equals the geodesic distance, for test points `s` metres away along `azimuths`
    origin: tuple[float, float] | None = None
    offset_m: float = 0.0
    azimuths: tuple[float, ...] = field(default=())

    @property
    def zone_id(self) -> str:
        return str(self.feature["properties"]["zone_id"])


def _circle_probes(lat: float, lon: float, reach_m: float) -> tuple[Probe, ...]:
    """Points at reach ± 0.5 m in eight directions, the centre, and a point far away."""
    out = [Probe("centre", lat, lon, "inside", -reach_m)]
    for azi in (0.0, 45.0, 90.0, 135.0, 180.0, -135.0, -90.0, -45.0):
        near, far = direct(lat, lon, azi, reach_m - 0.5), direct(lat, lon, azi, reach_m + 0.5)
        out.append(Probe(f"{azi:g}° reach-0.5", *near, "inside", -0.5))
        out.append(Probe(f"{azi:g}° reach+0.5", *far, "outside", 0.5))
    out.append(Probe("3 km away", *direct(lat, lon, 10.0, 3000.0), "outside", 3000.0 - reach_m))
    return tuple(out)


EIGHT = (0.0, 45.0, 90.0, 135.0, 180.0, -135.0, -90.0, -45.0)

# A square of about 570 m x 1.1 km in Södertälje with a 110 m x 60 m hole in the middle.
_HOLE = ring(17.624, 59.194, 17.625, 59.195)
SQUARE_WITH_HOLE = Case(
    "square-with-hole",
    feature(
        "courtyard",
        "Polygon",
        [ring(17.620, 59.190, 17.630, 59.200), _HOLE[::-1]],  # hole clockwise per RFC 7946
    ),
    (
        Probe("in the solid part", 59.191, 17.621, "inside"),
        Probe("middle of the hole", 59.1945, 17.6245, "outside"),
        Probe("vertex of the hole ring", 59.194, 17.624, "vertex"),
        Probe("vertex of the outer ring", 59.200, 17.630, "vertex"),
        Probe("middle of the hole's west edge", 59.1945, 17.624, "boundary"),
        Probe(
            "1 m into the hole from its west edge",
            *direct(59.1945, 17.624, 90.0, 1.0),
            "outside",
            1.0,
            0.02,
        ),
        Probe(
            "1 m west of the hole's west edge",
            *direct(59.1945, 17.624, -90.0, 1.0),
            "inside",
            -1.0,
            0.02,
        ),
        Probe("west of the square", 59.195, 17.619, "outside"),
        Probe(
            "20 m north of the outer NE vertex", *direct(59.200, 17.630, 0.0, 20.0), "outside", 20.0
        ),
    ),
    origin=(59.200, 17.630),
    azimuths=(10.0, 45.0, 80.0),  # outward from the NE corner: the vertex is the nearest point
)

# Two squares 0.01° apart (about 570 m of gap): one zone, two separate parts.
TWO_PARTS = Case(
    "multipolygon-two-parts",
    feature(
        "parents",
        "MultiPolygon",
        [[ring(17.600, 59.180, 17.605, 59.183)], [ring(17.615, 59.180, 17.620, 59.183)]],
    ),
    (
        Probe("in the west part", 59.1815, 17.6025, "inside"),
        Probe("in the east part", 59.1815, 17.6175, "inside"),
        Probe("in the gap", 59.1815, 17.610, "outside"),
        Probe("vertex of the east part", 59.183, 17.620, "vertex"),
        Probe(
            "10 m east of the east part's NE vertex",
            *direct(59.183, 17.620, 90.0, 10.0),
            "outside",
            10.0,
        ),
        Probe("north of both", 59.190, 17.610, "outside"),
    ),
    origin=(59.183, 17.620),
    azimuths=(20.0, 45.0, 70.0),
)

# A 2 m x 2 m square, exactly 2 m along each side from its SW corner.
_T_LAT, _T_LON = 59.1961, 17.6268
_T_LAT1 = direct(_T_LAT, _T_LON, 0.0, 2.0)[0]
_T_LON1 = direct(_T_LAT, _T_LON, 90.0, 2.0)[1]
_T_MID_LAT = (_T_LAT + _T_LAT1) / 2
_T_MID_LON = (_T_LON + _T_LON1) / 2


def _tiny(zone_id: str, buffer_m: float) -> Json:
    props = {"buffer_m": buffer_m} if buffer_m else {}
    return rect(zone_id, _T_LON, _T_LAT, _T_LON1, _T_LAT1, **props)


TINY = Case(
    "tiny-2m",
    _tiny("doorstep", 0.0),
    (
        Probe("centre", _T_MID_LAT, _T_MID_LON, "inside", -1.0, 0.01),
        Probe("SW vertex", _T_LAT, _T_LON, "vertex"),
        Probe("NE vertex", _T_LAT1, _T_LON1, "vertex"),
        Probe("middle of the south edge", _T_LAT, _T_MID_LON, "boundary"),
        Probe("middle of the west edge", _T_MID_LAT, _T_LON, "boundary"),
        Probe(
            "0.5 m south of the south edge", *direct(_T_LAT, _T_MID_LON, 180.0, 0.5), "outside", 0.5
        ),
        Probe(
            "0.5 m east of the east edge", *direct(_T_MID_LAT, _T_LON1, 90.0, 0.5), "outside", 0.5
        ),
        Probe("3 m south", *direct(_T_LAT, _T_MID_LON, 180.0, 3.0), "outside", 3.0),
    ),
    origin=(_T_LAT, _T_LON),
    azimuths=(-100.0, -135.0, -170.0),  # outward from the SW corner
)

TINY_BUFFERED = Case(
    "tiny-2m-buffer-5m",
    _tiny("doorstep", 5.0),
    (
        Probe("centre", _T_MID_LAT, _T_MID_LON, "inside", -6.0, 0.01),
        Probe("SW vertex", _T_LAT, _T_LON, "inside", -5.0, 0.01),
        Probe(
            "0.5 m south of the south edge", *direct(_T_LAT, _T_MID_LON, 180.0, 0.5), "inside", -4.5
        ),
        Probe("4.5 m south", *direct(_T_LAT, _T_MID_LON, 180.0, 4.5), "inside", -0.5),
        Probe("5.5 m south", *direct(_T_LAT, _T_MID_LON, 180.0, 5.5), "outside", 0.5),
        Probe(
            "4.5 m diagonally off the NE vertex",
            *direct(_T_LAT1, _T_LON1, 45.0, 4.5),
            "inside",
            -0.5,
        ),
        Probe(
            "5.5 m diagonally off the NE vertex",
            *direct(_T_LAT1, _T_LON1, 45.0, 5.5),
            "outside",
            0.5,
        ),
    ),
    origin=(_T_LAT, _T_LON),
    offset_m=5.0,
    azimuths=(-100.0, -135.0, -170.0),
)

CIRCLE = Case(
    "circle-300m",
    circle("work", 59.20, 17.64, 300.0),
    _circle_probes(59.20, 17.64, 300.0),
    origin=(59.20, 17.64),
    offset_m=300.0,
    azimuths=EIGHT,
)

CIRCLE_BUFFERED = Case(
    "circle-120m-buffer-30m",
    circle("school", 59.185, 17.61, 120.0, buffer_m=30.0),
    _circle_probes(59.185, 17.61, 150.0),
    origin=(59.185, 17.61),
    offset_m=150.0,
    azimuths=EIGHT,
)

# Fiji: a 300 m circle just west of the antimeridian reaches across it.
_AM_LAT, _AM_LON = -17.0, 179.9995
ANTIMERIDIAN_CIRCLE = Case(
    "antimeridian-circle",
    circle("suva", _AM_LAT, _AM_LON, 300.0),
    (
        *_circle_probes(_AM_LAT, _AM_LON, 300.0),
        Probe(
            "lon -179.9995 (106 m east, across ±180)",
            _AM_LAT,
            -179.9995,
            "inside",
            geodesic(_AM_LAT, _AM_LON, _AM_LAT, -179.9995) - 300.0,
        ),
        Probe(
            "lon -179.996 (across ±180, 480 m east)",
            _AM_LAT,
            -179.996,
            "outside",
            geodesic(_AM_LAT, _AM_LON, _AM_LAT, -179.996) - 300.0,
        ),
    ),
    origin=(_AM_LAT, _AM_LON),
    offset_m=300.0,
    azimuths=EIGHT,
)

# The same 2.1 km x 2.2 km box across the antimeridian, twice: split in two at ±180
# (RFC 7946 style) and as one ring whose longitudes jump from 179.99 to -179.99.
_AM_BOX_PROBES = (
    Probe("west half", -17.0, 179.995, "inside"),
    Probe("east half", -17.0, -179.995, "inside"),
    Probe("on the antimeridian (lon 180)", -17.0, 180.0, "inside"),
    Probe("on the antimeridian (lon -180)", -17.0, -180.0, "inside"),
    Probe("SW vertex", -17.01, 179.99, "vertex"),
    Probe("NE vertex", -16.99, -179.99, "vertex"),
    Probe("west of the box", -17.0, 179.985, "outside"),
    Probe("east of the box", -17.0, -179.985, "outside"),
    Probe("25 m east of the NE vertex", *direct(-16.99, -179.99, 90.0, 25.0), "outside", 25.0),
    Probe("25 m west of the SW vertex", *direct(-17.01, 179.99, -90.0, 25.0), "outside", 25.0),
)
ANTIMERIDIAN_SPLIT = Case(
    "antimeridian-split-multipolygon",
    feature(
        "dateline",
        "MultiPolygon",
        [[ring(179.99, -17.01, 180.0, -16.99)], [ring(-180.0, -17.01, -179.99, -16.99)]],
    ),
    _AM_BOX_PROBES,
    origin=(-16.99, -179.99),
    azimuths=(20.0, 45.0, 70.0),
)
ANTIMERIDIAN_JUMP = Case(
    "antimeridian-jumping-polygon",
    feature(
        "dateline",
        "Polygon",
        [
            [
                [179.99, -17.01],
                [-179.99, -17.01],
                [-179.99, -16.99],
                [179.99, -16.99],
                [179.99, -17.01],
            ]
        ],
    ),
    _AM_BOX_PROBES,
    origin=(-16.99, -179.99),
    azimuths=(20.0, 45.0, 70.0),
)

# Svalbard-ish latitudes: a degree of longitude is under 10 km here.
POLAR_BOX = Case(
    "polar-box-lat85",
    rect("station", 30.0, 85.0, 30.1, 85.01),
    (
        Probe("centre", 85.005, 30.05, "inside"),
        Probe("SW vertex", 85.0, 30.0, "vertex"),
        Probe("west of it", 85.005, 29.95, "outside"),
        Probe("10 m south of the SW vertex", *direct(85.0, 30.0, 180.0, 10.0), "outside", 10.0),
        Probe(
            "10 m west-southwest of the SW vertex",
            *direct(85.0, 30.0, -135.0, 10.0),
            "outside",
            10.0,
        ),
    ),
    origin=(85.0, 30.0),
    azimuths=(-110.0, -135.0, -160.0),
)
POLAR_CIRCLE = Case(
    "polar-circle-lat85",
    circle("hut", 85.0, -150.0, 400.0),
    _circle_probes(85.0, -150.0, 400.0),
    origin=(85.0, -150.0),
    offset_m=400.0,
    azimuths=EIGHT,
)
# A circle 111 m from the North Pole: it covers the pole and reaches past it.
POLE_CIRCLE = Case(
    "circle-around-the-pole",
    circle("pole", 89.999, 45.0, 300.0),
    (
        *_circle_probes(89.999, 45.0, 300.0),
        Probe("the pole", 90.0, 0.0, "inside", geodesic(89.999, 45.0, 90.0, 0.0) - 300.0),
        Probe(
            "across the pole",
            89.999,
            -135.0,
            "inside",
            geodesic(89.999, 45.0, 89.999, -135.0) - 300.0,
        ),
        Probe(
            "far across the pole",
            89.997,
            -135.0,
            "outside",
            geodesic(89.999, 45.0, 89.997, -135.0) - 300.0,
        ),
    ),
    origin=(89.999, 45.0),
    offset_m=300.0,
    azimuths=EIGHT,
)

# buffer_m 50: points 49 m and 51 m beyond an edge, placed perpendicular to it.
_B = (17.600, 59.180, 17.610, 59.185)
_B_MID_LAT = (_B[1] + _B[3]) / 2
_B_MID_LON = (_B[0] + _B[2]) / 2
BUFFERED = Case(
    "buffered-polygon-50m",
    rect("home", *_B, buffer_m=50.0),
    (
        Probe(
            "49 m east of the east edge",
            *direct(_B_MID_LAT, _B[2], 90.0, 49.0),
            "inside",
            -1.0,
            0.05,
        ),
        Probe(
            "51 m east of the east edge",
            *direct(_B_MID_LAT, _B[2], 90.0, 51.0),
            "outside",
            1.0,
            0.05,
        ),
        Probe(
            "49 m west of the west edge",
            *direct(_B_MID_LAT, _B[0], -90.0, 49.0),
            "inside",
            -1.0,
            0.05,
        ),
        Probe(
            "51 m west of the west edge",
            *direct(_B_MID_LAT, _B[0], -90.0, 51.0),
            "outside",
            1.0,
            0.05,
        ),
        Probe(
            "49 m south of the south edge",
            *direct(_B[1], _B_MID_LON, 180.0, 49.0),
            "inside",
            -1.0,
            0.05,
        ),
        Probe(
            "51 m south of the south edge",
            *direct(_B[1], _B_MID_LON, 180.0, 51.0),
            "outside",
            1.0,
            0.05,
        ),
        Probe(
            "49 m north of the north edge",
            *direct(_B[3], _B_MID_LON, 0.0, 49.0),
            "inside",
            -1.0,
            0.05,
        ),
        Probe(
            "51 m north of the north edge",
            *direct(_B[3], _B_MID_LON, 0.0, 51.0),
            "outside",
            1.0,
            0.05,
        ),
        Probe("49 m off the NE vertex", *direct(_B[3], _B[2], 45.0, 49.0), "inside", -1.0),
        Probe("51 m off the NE vertex", *direct(_B[3], _B[2], 45.0, 51.0), "outside", 1.0),
        Probe("on the east edge", _B_MID_LAT, _B[2], "inside", -50.0, 0.05),
        Probe("centre", _B_MID_LAT, _B_MID_LON, "inside"),
    ),
    origin=(_B[3], _B[2]),
    offset_m=50.0,
    azimuths=(20.0, 45.0, 70.0),
)

# The contract's example ban, Södertälje: a home block with a 50 m buffer and a workplace.
CONTRACT_HOME = Case(
    "contract-home",
    rect("home", 17.62, 59.19, 17.63, 59.20, label="Bostad", buffer_m=50.0),
    (
        Probe("the contract's example fix", 59.19612, 17.62678, "inside"),
        Probe("40 m west of the block", *direct(59.195, 17.62, -90.0, 40.0), "inside", -10.0, 0.05),
        Probe("60 m west of the block", *direct(59.195, 17.62, -90.0, 60.0), "outside", 10.0, 0.05),
        Probe("Södertälje station", 59.1880, 17.6470, "outside"),
    ),
    origin=(59.19, 17.62),
    offset_m=50.0,
    azimuths=(-100.0, -135.0, -170.0),
)

# An L-shaped residential block (concave, reflex corner at 17.6275 E 59.1960 N), buffer 20 m.
_L = [
    [17.6260, 59.1950],
    [17.6290, 59.1950],
    [17.6290, 59.1960],
    [17.6275, 59.1960],
    [17.6275, 59.1975],
    [17.6260, 59.1975],
    [17.6260, 59.1950],
]
SODERTALJE_BLOCK = Case(
    "sodertalje-l-block",
    feature("block", "Polygon", [_L], buffer_m=20.0),
    (
        Probe("in the long arm", 59.1970, 17.6267, "inside"),
        Probe("in the short arm", 59.1955, 17.6285, "inside"),
        Probe("deep in the notch", 59.1970, 17.6286, "outside"),
        # contract v2 rule 2: the depth is to the buffered shape's boundary, here the corner
        # where the two 20 m offsets of the notch's walls meet, 20·√2 m away
        Probe("reflex vertex", 59.1960, 17.6275, "inside", -20.0 * math.sqrt(2.0), 0.02),
        Probe(
            "10 m into the notch from the arm",
            *direct(59.19675, 17.6275, 90.0, 10.0),
            "inside",
            -10.0,
            0.02,
        ),
        Probe(
            "30 m into the notch from the arm",
            *direct(59.19675, 17.6275, 90.0, 30.0),
            "outside",
            10.0,
            0.02,
        ),
        Probe("Torekällberget", 59.1990, 17.6180, "outside"),
    ),
    origin=(59.1975, 17.6260),
    offset_m=20.0,
    azimuths=(-10.0, -45.0, -80.0),  # outward from the NW corner
)

# A town-centre polygon of about 2.3 km x 2.1 km (six vertices, irregular).
_C = [
    [17.610, 59.188],
    [17.640, 59.188],
    [17.645, 59.200],
    [17.625, 59.207],
    [17.605, 59.200],
    [17.610, 59.188],
]
SODERTALJE_CENTRE = Case(
    "sodertalje-centre",
    feature("centrum", "Polygon", [_C]),
    (
        Probe("Stora torget", 59.1955, 17.6253, "inside"),
        Probe("north vertex", 59.207, 17.625, "vertex"),
        Probe(
            "300 m north of the north vertex",
            *direct(59.207, 17.625, 0.0, 300.0),
            "outside",
            300.0,
            0.05,
        ),
        Probe(
            "100 m south of the south edge",
            *direct(59.188, 17.625, 180.0, 100.0),
            "outside",
            100.0,
            0.2,
        ),
        Probe("Mälarhamnen, east of it", 59.197, 17.660, "outside"),
        Probe("near the west vertex, inside", 59.200, 17.607, "inside"),
    ),
    origin=(59.207, 17.625),
    azimuths=(-20.0, 0.0, 20.0),
)

CASES: tuple[Case, ...] = (
    SQUARE_WITH_HOLE,
    TWO_PARTS,
    TINY,
    TINY_BUFFERED,
    CIRCLE,
    CIRCLE_BUFFERED,
    ANTIMERIDIAN_CIRCLE,
    ANTIMERIDIAN_SPLIT,
    ANTIMERIDIAN_JUMP,
    POLAR_BOX,
    POLAR_CIRCLE,
    POLE_CIRCLE,
    BUFFERED,
    CONTRACT_HOME,
    SODERTALJE_BLOCK,
    SODERTALJE_CENTRE,
)


def probe_table() -> list[tuple[Case, Probe]]:
    return [(c, p) for c in CASES for p in c.probes]


def vertices(case: Case) -> list[tuple[float, float]]:
    """(lat, lon) of every distinct vertex of every ring of a polygon case."""
    geometry = case.feature["geometry"]
    if geometry["type"] == "Point":
        return []
    polys = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return [(lat, lon) for poly in polys for r in poly for lon, lat in r[:-1]]


# ----------------------------------------------------------------------------- invalid
@dataclass(frozen=True)
class Invalid:
    name: str
    feature: Json
    message: str  # a fragment of the expected ZoneError message (after the zone's name)


_S = (17.62, 59.19)  # a Södertälje corner to build broken shapes on
INVALID: tuple[Invalid, ...] = (
    Invalid(
        "self-intersecting bowtie",
        feature(
            "bowtie",
            "Polygon",
            [[[17.62, 59.19], [17.63, 59.20], [17.63, 59.19], [17.62, 59.20], [17.62, 59.19]]],
        ),
        "invalid: Self-intersection",
    ),
    Invalid(
        "unclosed ring",
        feature(
            "open", "Polygon", [[[17.62, 59.19], [17.63, 59.19], [17.63, 59.20], [17.62, 59.20]]]
        ),
        "not closed",
    ),
    Invalid(
        "fewer than 4 positions",
        feature("triangle", "Polygon", [[[17.62, 59.19], [17.63, 59.19], [17.62, 59.19]]]),
        "at least 4 positions",
    ),
    Invalid("empty Polygon coordinates", feature("void", "Polygon", []), "no rings"),
    Invalid("empty ring", feature("void", "Polygon", [[]]), "at least 4 positions"),
    Invalid(
        "empty MultiPolygon coordinates",
        feature("void", "MultiPolygon", []),
        "at least one polygon",
    ),
    Invalid(
        "empty Point coordinates",
        feature("void", "Point", [], radius_m=100.0),
        "Point coordinates must be [lon, lat]",
    ),
    Invalid(
        "lat out of range",
        rect("north", 17.62, 89.99, 17.63, 91.0),
        "out of range",
    ),
    Invalid(
        "lon out of range",
        rect("east", 179.99, 59.19, 180.5, 59.20),
        "out of range",
    ),
    Invalid(
        "Point lat out of range",
        circle("north", 95.0, 17.62, 100.0),
        "out of range",
    ),
    Invalid(
        "Point without radius_m",
        feature("work", "Point", [17.64, 59.20]),
        "needs radius_m",
    ),
    Invalid(
        "radius_m on a polygon",
        rect("home", 17.62, 59.19, 17.63, 59.20, radius_m=50.0),
        "radius_m applies to Point zones only",
    ),
    Invalid(
        "zero area (positions on one meridian)",
        feature(
            "line", "Polygon", [[[17.62, 59.19], [17.62, 59.20], [17.62, 59.21], [17.62, 59.19]]]
        ),
        "no area",
    ),
    Invalid(
        "zero area (positions on one parallel)",
        feature(
            "line", "Polygon", [[[17.62, 59.19], [17.63, 59.19], [17.64, 59.19], [17.62, 59.19]]]
        ),
        "no area",
    ),
    Invalid(
        "a sliver 100 m long and 0.2 m wide",
        rect(
            "sliver",
            17.62,
            59.19,
            direct(59.19, 17.62, 90.0, 100.0)[1],
            direct(59.19, 17.62, 0.0, 0.2)[0],
        ),
        "no area",
    ),
    Invalid(
        "hole outside its shell",
        feature(
            "holey", "Polygon", [ring(17.62, 59.19, 17.63, 59.20), ring(17.64, 59.19, 17.65, 59.20)]
        ),
        "is invalid",
    ),
    Invalid(
        "positions are not number pairs",
        feature("text", "Polygon", [[["a", "b"], [1, 2], [3, 4], ["a", "b"]]]),
        "[lon, lat] number pairs",
    ),
    Invalid(
        "non-finite coordinate",
        feature(
            "nan", "Polygon", [[[17.62, 59.19], [math.nan, 59.19], [17.63, 59.20], [17.62, 59.19]]]
        ),
        "finite",
    ),
    Invalid(
        "larger than 200 km across",
        rect("county", 16.0, 58.0, 20.0, 60.0),
        "larger than 200 km across",
    ),
)


# ----------------------------------------------------------------------------- records
NOW = datetime(2026, 11, 22, 10, 20, 0, tzinfo=UTC)


def ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ban(
    ban_id: str = "KF-2026-0042",
    features: list[Json] | None = None,
    **overrides: Any,
) -> Json:
    """The contract's example ContactBan, with `features` as its zones."""
    value: Json = {
        "ban_id": ban_id,
        "version": 3,
        "kind": "extended",
        "status": "active",
        "restrained_person": "P-7731",
        "protected_persons": ["P-1102"],
        "valid_from": "2026-11-01T00:00:00Z",
        "valid_until": "2027-05-01T00:00:00Z",
        "electronic_monitoring": True,
        "proximity_m": 500,
        "zones": {
            "type": "FeatureCollection",
            "features": features
            if features is not None
            else [CONTRACT_HOME.feature, CIRCLE.feature],
        },
    }
    value.update(overrides)
    return value


def fix(
    lat: float = 59.19612,
    lon: float = 17.62678,
    at: datetime | str = "2026-11-22T10:15:03Z",
    accuracy_m: float = 8.5,
    person_id: str = "P-7731",
    device_id: str = "EM-0091",
    **overrides: Any,
) -> Json:
    value: Json = {
        "person_id": person_id,
        "device_id": device_id,
        "ts": at if isinstance(at, str) else ts(at),
        "lat": lat,
        "lon": lon,
        "accuracy_m": accuracy_m,
        "source": "ankle_tag",
        "speed_mps": 1.2,
        "battery_pct": 71,
    }
    value.update(overrides)
    return value


def patrol(**overrides: Any) -> Json:
    value: Json = {
        "unit_id": "SÖ-2140",
        "ts": "2026-11-22T10:15:00Z",
        "lat": 59.195,
        "lon": 17.61,
        "status": "available",
        "capabilities": ["patrol"],
    }
    value.update(overrides)
    return value


def incident(**overrides: Any) -> Json:
    value: Json = {
        "incident_id": "I-88123",
        "ts": "2026-11-22T10:16:00Z",
        "kind": "reported_contact",
        "ban_id": "KF-2026-0042",
        "person_id": None,
        "lat": 59.196,
        "lon": 17.626,
        "source": "112",
        "note": "free text, never copied into alerts for patrols",
    }
    value.update(overrides)
    return value


def action(**overrides: Any) -> Json:
    value: Json = {
        "alert_id": "6f1c0000000000000000000000000000",
        "action": "acknowledge",
        "by": "op-17",
        "ts": "2026-11-22T10:17:00Z",
        "note": "on it",
    }
    value.update(overrides)
    return value


def task_update(**overrides: Any) -> Json:
    value: Json = {
        "task_id": "9a3e0000000000000000000000000000",
        "by": "SÖ-2140",
        "role": "patrol",
        "ts": "2026-11-22T10:17:00Z",
        "action": "done",
        "outcome": "contact_made",
        "consent_to_share": None,
        "note": "free text, stored, never forwarded",
    }
    value.update(overrides)
    return value


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
