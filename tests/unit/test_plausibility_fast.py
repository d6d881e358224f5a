"""Rule 3's fast path (alerts/detectors/plausibility.py) gives exactly what the plain judgement
gave: the earth-centred position kept on a `LastFix` yields the same float as `chord_m`, and the
fix path's judgement (bound first, then the exact test with the kept positions) the same
implied speed as the reference below (the judgement as it was written before the fast path:
one `chord_m` per comparison). A kept position is in no snapshot and no comparison."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.banstate import BanState, LastFix
from alerts.detectors.plausibility import _surely_plausible, judge, plausibility
from alerts.snapshot import dump_ban_state
from geofence.geodesy import chord_m
from geofence.records import FixSource, LocationFix

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
MAX_SPEED = 40.0


def reference_speed(a: LastFix, lat: float, lon: float, acc: float, ts: datetime) -> float:
    gap = chord_m(a.lat, a.lon, lat, lon) - a.accuracy_m - acc
    if gap <= 0.0:
        return 0.0
    dt = (ts - a.ts).total_seconds()
    return gap / dt if dt > 0 else math.inf


def reference_judge(
    prev: LastFix | None, anchor: LastFix | None, fix: LastFix, max_speed: float
) -> float:
    if prev is None:
        return 0.0
    jump = reference_speed(prev, fix.lat, fix.lon, fix.accuracy_m, fix.ts)
    if jump > max_speed and anchor is not None and anchor is not prev:
        jump = min(jump, reference_speed(anchor, fix.lat, fix.lon, fix.accuracy_m, fix.ts))
    return jump if jump > max_speed else 0.0


# mostly near one another (the cases that need the exact test), sometimes anywhere
near = st.tuples(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05))
place = st.tuples(st.floats(-89.9, 89.9), st.floats(-180, 180))


def fix_at(lat: float, lon: float, acc: float, s: float) -> LocationFix:
    return LocationFix(
        person_id="P-1",
        device_id="EM-1",
        ts=T0 + timedelta(seconds=s),
        lat=lat,
        lon=lon,
        accuracy_m=acc,
        source=FixSource.ankle_tag,
    )


@settings(max_examples=300, deadline=None)
@given(
    place,
    st.lists(st.tuples(near, st.floats(1, 80), st.floats(0.1, 120)), min_size=1, max_size=8),
)
def test_the_fix_path_judges_a_device_track_exactly_as_the_plain_judgement(
    start: tuple[float, float],
    steps: list[tuple[tuple[float, float], float, float]],
) -> None:
    state = BanState("KF-1")
    prev: LastFix | None = None
    anchor: LastFix | None = None
    lat, lon = start
    t = 0.0
    for (dlat, dlon), acc, dt in steps:
        lat = max(-90.0, min(90.0, lat + dlat))
        lon = ((lon + dlon + 180.0) % 360.0) - 180.0
        t += dt
        f = fix_at(lat, lon, acc, t)
        plain = LastFix(lat, lon, acc, f.ts, "EM-1")
        expected = reference_judge(prev, anchor, plain, MAX_SPEED)
        me = plausibility(state, f, MAX_SPEED)
        assert me.jump_mps == expected  # the same float, not merely close
        assert me == LastFix(lat, lon, acc, f.ts, "EM-1", expected)
        # the report's call (a LastFix, no position passed) agrees too
        assert judge(prev, anchor, plain, MAX_SPEED) == expected
        prev = me
        if not expected:
            anchor = me


@settings(max_examples=300, deadline=None)
@given(place, near, st.floats(0.5, 200), st.floats(0.5, 200), st.floats(0.01, 600))
def test_a_kept_position_gives_the_same_chord_as_chord_m(
    a: tuple[float, float], d: tuple[float, float], acc1: float, acc2: float, dt: float
) -> None:
    prev = LastFix(a[0], a[1], acc1, T0, "EM-1")
    lat, lon = max(-90.0, min(90.0, a[0] + d[0])), a[1] + d[1]
    plain = LastFix(lat, lon, acc2, T0 + timedelta(seconds=dt), "EM-1")
    if _surely_plausible(prev, plain, MAX_SPEED):
        return
    before = judge(prev, None, plain, MAX_SPEED)  # computes and keeps both positions
    assert judge(prev, None, plain, MAX_SPEED) == before  # from the kept ones
    assert before == reference_judge(prev, None, plain, MAX_SPEED)


def test_a_kept_position_is_in_no_snapshot_and_no_comparison() -> None:
    state = BanState("KF-1")
    plausibility(state, fix_at(59.3, 18.0, 10, 0), MAX_SPEED)
    before = dump_ban_state(state)
    plausibility(state, fix_at(59.34, 18.05, 10, 25), MAX_SPEED)  # a jump: positions kept
    kept = state.device_last["EM-1"]
    assert kept.jump_mps > MAX_SPEED
    fresh = LastFix(kept.lat, kept.lon, kept.accuracy_m, kept.ts, kept.device_id, kept.jump_mps)
    assert kept == fresh and hash(kept) == hash(fresh) and repr(kept) == repr(fresh)
    assert set(dump_ban_state(state)) == set(before)
    assert "xyz" not in str(dump_ban_state(state))
