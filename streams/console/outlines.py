"""Zone + buffer outlines for the map: what counts as inside, drawn where the decision is made.

A polygon zone with `buffer_m` is decided against the polygon widened by the buffer in the
zone's own metric plane (geofence/zones.py). The map draws that widened outline (dashed), so an
operator sees the same boundary the alert was raised against. Display only: the outline is
taken back to lon/lat with the plane's local scale at its anchor (under 0.1 m off at 1 km from
the anchor), never used for a decision.
"""

from __future__ import annotations

import math
from typing import Any

import shapely
from pydantic import ValidationError
from shapely.geometry import mapping

from geofence.records import ZoneFeature
from geofence.zones import Zone, ZoneError, compile_zone

_A = 6_378_137.0  # WGS84 semi-major axis, metres
_E2 = 6.694379990141317e-3  # WGS84 first eccentricity squared


def _to_lonlat(zone: Zone, x: float, y: float) -> tuple[float, float]:
    phi = math.radians(zone.frame.lat)
    w = math.sqrt(1 - _E2 * math.sin(phi) ** 2)
    meridian = _A * (1 - _E2) / w**3  # radius of curvature along the meridian
    normal = _A / w  # ... and along the prime vertical
    lat = zone.frame.lat + math.degrees(y / meridian)
    lon = zone.frame.lon + math.degrees(x / (normal * math.cos(phi)))
    return round(lon, 7), round(lat, 7)


def buffered_outline(feature: Any) -> dict[str, Any] | None:
    """GeoJSON geometry of a polygon zone widened by its `buffer_m`, or None when there is
    nothing to draw beyond the zone itself (no buffer, a circle zone, an invalid zone)."""
    try:
        zf = ZoneFeature.model_validate(feature)
        zone = compile_zone(zf)
    except (ValidationError, ZoneError, ValueError, TypeError):
        return None
    if zone.is_circle or zone.buffer_m <= 0:
        return None
    widened = zone.geom.buffer(zone.buffer_m, quad_segs=8)
    out = shapely.transform(
        widened,
        lambda xy: [_to_lonlat(zone, float(x), float(y)) for x, y in xy],
    )
    geometry: dict[str, Any] = dict(mapping(out))
    return geometry
