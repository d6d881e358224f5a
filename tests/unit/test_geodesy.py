"""`geodesic_m` (PROJ's C geodesic through pyproj) against geographiclib's Python version of
the same algorithm (Karney 2013), which the rest of the tests use as ground truth."""

from __future__ import annotations

import pytest
from geographiclib.geodesic import Geodesic
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geofence.geodesy import geodesic_m

lats = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)
lons = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)


def reference(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return float(Geodesic.WGS84.Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)["s12"])


@settings(max_examples=2000, deadline=None)
@given(lats, lons, lats, lons)
@example(59.3, 18.0, 59.3, 18.0)  # the same point
@example(0.0, 0.0, 0.0, 180.0)  # antipodal on the equator
@example(0.0, 0.0, 0.5, 179.7)  # nearly antipodal: the hard case for iterative methods
@example(90.0, 0.0, -90.0, 0.0)  # pole to pole
@example(89.9999, 10.0, 89.9999, -170.0)  # across a pole
@example(65.8, 179.99, 65.8, -179.99)  # across the antimeridian
def test_geodesic_matches_geographiclib_everywhere(
    lat1: float, lon1: float, lat2: float, lon2: float
) -> None:
    want = reference(lat1, lon1, lat2, lon2)
    got = geodesic_m(lat1, lon1, lat2, lon2)
    assert isinstance(got, float)
    assert abs(got - want) <= 1e-6, (got, want)


@pytest.mark.slow  # > 2 s
@settings(max_examples=2000, deadline=None)
@given(
    st.floats(min_value=55.0, max_value=69.5),
    st.floats(min_value=10.5, max_value=24.5),
    st.floats(min_value=-0.5, max_value=0.5),
    st.floats(min_value=-0.5, max_value=0.5),
)
def test_distances_in_sweden_agree_to_1e_8_m(
    lat: float, lon: float, dlat: float, dlon: float
) -> None:
    # alerts report distance_m to 0.1 m; at this agreement a reported figure could only differ
    # where the true distance lies within 1e-8 m of a rounding boundary
    want = reference(lat, lon, lat + dlat, lon + dlon)
    got = geodesic_m(lat, lon, lat + dlat, lon + dlon)
    assert abs(got - want) < 1e-8
