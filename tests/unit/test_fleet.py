"""`Fleet.nearest` (numpy columns, a partial sort) ranks exactly as the straightforward
definition: every available unit with a fresh position, by distance rounded to a millimetre,
then unit id; reported distances are geodesic. Properties over crowded fleets with ties,
identical positions, stale and busy units, exclusions, and ages on the freshness limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.assignment import Fleet, Recommendation
from config.policy import Policy
from geofence.geodesy import chord_many_m, geodesic_m
from geofence.records import PatrolPosition, PatrolStatus

POLICY = Policy()
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CENTRE = (59.1961, 17.6268)


def reference(  # the implementation before the numpy columns, as it was
    units: dict[str, PatrolPosition],
    lat: float,
    lon: float,
    at: datetime,
    policy: Policy,
    k: int,
    exclude: frozenset[str] = frozenset(),
) -> list[Recommendation]:
    cand = [
        u
        for u in units.values()
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


# a few spots (so that units share positions and distances tie), or anywhere nearby
spots = st.sampled_from([(0.0, 0.0), (0.01, 0.0), (0.0, 0.01), (-0.01, 0.0), (0.01, 0.01)])
offsets = st.one_of(
    spots, st.tuples(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05)), st.just((1e-9, 0.0))
)
# ages around the 120 s limit, to the microsecond, both sides of `at`
ages_us = st.one_of(
    st.sampled_from([0, 120_000_000, 119_999_999, 120_000_001, -120_000_000, -120_000_001]),
    st.integers(-200_000_000, 200_000_000),
)


@st.composite
def fleets(draw: st.DrawFn) -> tuple[Fleet, dict[str, PatrolPosition]]:
    fleet = Fleet()
    units: dict[str, PatrolPosition] = {}
    n = draw(st.integers(0, 60))
    for _ in range(n):
        i = draw(st.integers(0, 40))  # repeated ids: later positions replace (or are late)
        dlat, dlon = draw(offsets)
        pos = PatrolPosition(
            unit_id=f"SE-{i:04d}",
            ts=T0 + timedelta(microseconds=draw(ages_us)),
            lat=CENTRE[0] + dlat,
            lon=CENTRE[1] + dlon,
            status=draw(st.sampled_from(list(PatrolStatus))),
        )
        held = units.get(pos.unit_id)
        applied = fleet.update(pos)
        assert applied == (held is None or pos.ts > held.ts)
        if applied:
            units[pos.unit_id] = pos
    return fleet, units


@pytest.mark.slow  # > 2 s
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fleets(),
    offsets,
    st.integers(1, 8),
    st.frozensets(st.integers(0, 40).map(lambda i: f"SE-{i:04d}"), max_size=5),
)
def test_nearest_is_the_straightforward_ranking(
    fl: tuple[Fleet, dict[str, PatrolPosition]],
    where: tuple[float, float],
    k: int,
    exclude: frozenset[str],
) -> None:
    fleet, units = fl
    lat, lon = CENTRE[0] + where[0], CENTRE[1] + where[1]
    assert len(fleet) == len(units)
    for unit_id, pos in units.items():
        assert fleet.get(unit_id) == pos
    got = fleet.nearest(lat, lon, T0, POLICY, k, exclude)
    assert got == reference(units, lat, lon, T0, POLICY, k, exclude)
    # asked again (the respond task after a revision): fewer, as many, or more units
    for k2 in (1, k, k + 2):
        got = fleet.nearest(lat, lon, T0, POLICY, k2, exclude)
        assert got == reference(units, lat, lon, T0, POLICY, k2, exclude)


def test_nearest_on_a_large_fleet_with_equal_distances() -> None:
    """Hundreds of units, many at the same distance: the partial sort keeps every unit that
    rounds like the k-th (ties broken by unit id)."""
    fleet = Fleet()
    units = {}
    for i in range(500):
        dlat, dlon = [(0.01, 0.0), (0.0, 0.02), (0.013, 0.001), (0.02, 0.02)][i % 4]
        pos = PatrolPosition(
            unit_id=f"SE-{(i * 7919) % 1000:04d}",
            ts=T0 - timedelta(seconds=i % 150),
            lat=CENTRE[0] + dlat,
            lon=CENTRE[1] + dlon,
            status=PatrolStatus.available if i % 5 else PatrolStatus.busy,
        )
        assert fleet.update(pos)
        units[pos.unit_id] = pos
    for k in (1, 3, 20, 2):
        got = fleet.nearest(CENTRE[0], CENTRE[1], T0, POLICY, k)
        assert got == reference(units, CENTRE[0], CENTRE[1], T0, POLICY, k)
        assert len(got) == k
    # a unit moving next to the point changes the next answer
    moved = PatrolPosition(
        unit_id="SE-9999", ts=T0, lat=CENTRE[0], lon=CENTRE[1], status=PatrolStatus.available
    )
    assert fleet.update(moved)
    units[moved.unit_id] = moved
    got = fleet.nearest(CENTRE[0], CENTRE[1], T0, POLICY, 2)
    assert got == reference(units, CENTRE[0], CENTRE[1], T0, POLICY, 2)
    assert got[0].unit_id == "SE-9999"
