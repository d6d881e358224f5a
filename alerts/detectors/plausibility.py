"""Rule 3 (a fix implausibly far from the device's previous one counts at most as possible)
and rule 5 (a thin recent history of each person's fixes, to pair a late fix in time).
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime

from alerts.banstate import RECENT_FIXES, RECENT_SPACING, BanState, LastFix
from config.policy import Policy
from geofence.geodesy import ecef1
from geofence.records import LocationFix


def implied_speed(a: LastFix, lat: float, lon: float, acc: float, ts: datetime) -> float:
    """Metres per second from fix `a` to (lat, lon) at `ts`, after subtracting both accuracy
    radii from the distance (contract v2 rule 3); 0 when the discs overlap."""
    return _speed(a, ecef1(lat, lon), acc, ts)


def _speed(a: LastFix, xyz: tuple[float, float, float], acc: float, ts: datetime) -> float:
    """`implied_speed` to the point whose `ecef1` is `xyz` (`a`'s is kept on `a`). The chord
    is `chord_m`'s arithmetic, written out (this runs per fix): the same float to the bit."""
    x1, y1, z1 = a.xyz()
    x2, y2, z2 = xyz
    gap = math.sqrt((x1 - x2) ** 2 + (y1 - y2) ** 2 + (z1 - z2) ** 2) - a.accuracy_m - acc
    if gap <= 0.0:
        return 0.0
    dt = (ts - a.ts).total_seconds()
    return gap / dt if dt > 0 else math.inf


#: metres per degree of latitude, at least (WGS84: 110,574 at the equator to 111,694 at the
#: poles), and per degree of longitude on the equator (111,320), rounded up
_M_PER_DEG = 111_700.0


def _surely_plausible(a: LastFix, fix: LastFix | LocationFix, max_speed_mps: float) -> bool:
    """A cheap early answer for `implied_speed(a, fix) <= max_speed_mps` (most fixes): an
    upper bound on the distance, along a meridian and then the parallel nearer the equator
    (no shorter than the chord `implied_speed` measures), already allows it."""
    dt = (fix.ts - a.ts).total_seconds()
    if dt <= 0:
        return False
    dlon = abs(fix.lon - a.lon)
    if dlon > 180.0:
        dlon = 360.0 - dlon
    lat = min(abs(fix.lat), abs(a.lat))
    bound = _M_PER_DEG * (abs(fix.lat - a.lat) + dlon * math.cos(math.radians(lat)))
    return bound - a.accuracy_m - fix.accuracy_m <= max_speed_mps * dt


def judge(
    prev: LastFix | None,
    anchor: LastFix | None,
    fix: LastFix | LocationFix,
    max_speed_mps: float,
    xyz: tuple[float, float, float] | None = None,
) -> float:
    """Rule 3 for `fix` after the device's previous applied fix `prev` and its newest plausible
    fix `anchor`: the implied speed (m/s) when it exceeds `max_speed_mps` from both, else 0.
    The one implementation: the fix path and the report (alerts/report) both call it.

    `xyz`: `fix`'s `ecef1`, from a caller that has asked `_surely_plausible(prev, fix)`
    already (the fix path, which keeps `xyz` for the next fix): the exact test follows at
    once. The earth-centred positions of `prev` and `anchor` are computed once and kept on
    them."""
    if prev is None:
        return 0.0
    if xyz is None:
        if _surely_plausible(prev, fix, max_speed_mps):
            return 0.0
        xyz = fix.xyz() if isinstance(fix, LastFix) else ecef1(fix.lat, fix.lon)
    acc, ts = fix.accuracy_m, fix.ts
    jump = _speed(prev, xyz, acc, ts)
    if jump > max_speed_mps and anchor is not None and anchor is not prev:
        jump = min(jump, _speed(anchor, xyz, acc, ts))
    return jump if jump > max_speed_mps else 0.0


def plausibility(st: BanState, fix: LocationFix, max_speed_mps: float) -> LastFix:
    """Rule 3: the fix as a `LastFix`, with `jump_mps` set when its implied speed from the
    device's previous applied fix, and from the device's newest plausible fix before
    that, exceeds `max_speed_mps`. Either way it becomes the device's newest fix: a
    multipath outlier is followed by fixes plausible from the fix before it, a real fast
    move by fixes plausible from it."""
    dev = fix.device_id
    prev = st.device_last.get(dev)
    if prev is None or _surely_plausible(prev, fix, max_speed_mps):  # most fixes
        me = LastFix(fix.lat, fix.lon, fix.accuracy_m, fix.ts, dev)
        st.device_last[dev] = st.device_anchor[dev] = me
        return me
    # the exact test: the fix's earth-centred position is kept for the next fix's test
    xyz = ecef1(fix.lat, fix.lon)
    jump = judge(prev, st.device_anchor.get(dev), fix, max_speed_mps, xyz)
    me = LastFix(fix.lat, fix.lon, fix.accuracy_m, fix.ts, dev, jump)
    me.keep_xyz(xyz)
    st.device_last[dev] = me
    if not jump:
        st.device_anchor[dev] = me
    return me


def remember(st: BanState, person: str, me: LastFix, pol: Policy) -> None:
    """Rule 5: keep a thin recent history of `person`'s fixes (at least
    `RECENT_SPACING * max_fix_age_s` apart, at most `RECENT_FIXES`)."""
    q = st.recent.get(person)
    if q is None:
        st.recent[person] = deque([me], maxlen=RECENT_FIXES)
    elif (me.ts - q[-1].ts).total_seconds() >= pol.max_fix_age_s * RECENT_SPACING:
        q.append(me)
