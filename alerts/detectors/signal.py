"""signal_lost: an ankle tag of an electronically monitored ban stopped reporting.

Three entry points: `seen` (a fix of the tag), `lost` (its timeout), `rises` (the person can
now have reached a zone or protected person: priority 1).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from alerts.banstate import BanState, Ctx, LastFix
from alerts.lifecycle import dispatch, new_alert, refresh_units
from alerts.model import ALERTS, Kind, place, rfc3339
from geofence.geodesy import chord_m
from geofence.records import FixSource, LocationFix
from geofence.zones import signed_distance


def seen(st: BanState, ctx: Ctx, fix: LocationFix, me: LastFix) -> None:
    """`me`: the fix as a `LastFix` (immutable, so shared with `last_fix`)."""
    if not ctx.ban.record.electronic_monitoring or fix.source is not FixSource.ankle_tag:
        return
    st.watch[fix.device_id] = me
    if st.signal_rise:
        st.signal_rise.pop(fix.device_id, None)
    aid = st.open.pop(f"signal_lost|{fix.device_id}", None) if st.open else None
    if aid is not None:
        a = st.alerts[aid]
        a.episode = "ended"
        a.reason = f"signal restored: fix at {rfc3339(fix.ts)}"
        a.position = place(fix.lat, fix.lon, fix.accuracy_m, fix.ts)
        ctx.out.append((ALERTS, aid, a.revision(fix.ts)))


def reach_gap(st: BanState, ctx: Ctx, last: LastFix) -> float:
    """Metres from the last position to the nearest zone + buffer or protected person's
    proximity circle (their latest known fix): the reachable disc meets one when its radius
    reaches this gap."""
    rec = ctx.ban.record
    gaps = [signed_distance(z, last.lat, last.lon) for z in ctx.ban.zones.values()]
    for p in rec.protected_persons:
        pf = st.last_fix.get(p)
        if pf is not None:
            gaps.append(chord_m(last.lat, last.lon, pf.lat, pf.lon) - (rec.proximity_m or 0.0))
    return max(0.0, min(gaps)) if gaps else math.inf


def lost(st: BanState, ctx: Ctx, device: str, at: datetime) -> None:
    last = st.watch[device]
    pol = ctx.policy
    gap = reach_gap(st, ctx, last)
    reach = pol.max_speed_mps * (at - last.ts).total_seconds()
    p1 = reach >= gap
    silent = (at - last.ts).total_seconds()
    a = new_alert(st, ctx, Kind.signal_lost, at, f"{device}|{rfc3339(last.ts)}")
    a.priority = 1 if p1 else 2
    a.set_priority(a.priority, at)
    a.confidence = None
    a.device_id = device
    a.position = place(last.lat, last.lon, last.accuracy_m, last.ts)
    a.reason = signal_reason(silent, reach, p1)
    st.open[f"signal_lost|{device}"] = a.alert_id
    if not p1 and math.isfinite(gap):
        st.signal_rise[device] = last.ts + timedelta(seconds=gap / pol.max_speed_mps)
    refresh_units(ctx, a, at)
    ctx.out.append((ALERTS, a.alert_id, a.revision(at)))
    dispatch(ctx.policy, ctx.fleet, a, at, ctx.out, ctx.book)


def signal_reason(silent: float, reach: float, p1: bool) -> str:
    where = (
        "can have reached a zone or protected person"
        if p1
        else "cannot yet have reached a zone or protected person"
    )
    return f"no fix for {silent:.0f} s; within {reach:.0f} m of the last fix the person {where}"


def rises(st: BanState, ctx: Ctx, device: str, at: datetime) -> None:
    st.signal_rise.pop(device, None)
    aid = st.open.get(f"signal_lost|{device}")
    if aid is None:
        return
    a = st.alerts[aid]
    last = st.watch[device]
    silent = (at - last.ts).total_seconds()
    a.set_priority(1, at)
    a.reason = signal_reason(silent, ctx.policy.max_speed_mps * silent, True)
    ctx.out.append((ALERTS, aid, a.revision(at)))
    dispatch(ctx.policy, ctx.fleet, a, at, ctx.out, ctx.book)
