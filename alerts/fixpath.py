"""One fix applied to one ban: device order, plausibility, then each detector, isolated."""

from __future__ import annotations

from alerts.banstate import BanState, Ctx
from alerts.detectors import approach, late, proximity, signal, zone
from alerts.detectors.plausibility import plausibility, remember
from geofence.records import LocationFix


def apply_fix(
    st: BanState, ctx: Ctx, fix: LocationFix, restrained: bool, zone_sd: dict[str, float]
) -> bool:
    """Apply one fix of the restrained person (`restrained`) or of a protected person.
    `zone_sd` holds the fix's signed distance to each zone of the ban. Returns False when
    the fix is out of order for its device (it then only may raise `late_evidence`)."""
    newest = st.newest.get(fix.device_id)
    if newest is not None and fix.ts <= newest:
        ctx.guard("late_evidence", lambda: late.detect(st, ctx, fix, restrained, zone_sd))
        return False
    st.newest[fix.device_id] = fix.ts
    pol = ctx.policy
    me = plausibility(st, fix, pol.max_speed_mps)
    st.last_fix[fix.person_id] = me
    rec = ctx.ban.record
    if rec.proximity_m is not None:
        remember(st, fix.person_id, me, pol)
    # each detector isolated as by `ctx.guard`, with the `try` written out: this runs for
    # every fix, and a `try` costs nothing until something raises
    if restrained:
        try:
            signal.seen(st, ctx, fix, me)
        except Exception as exc:
            ctx.failed("signal_lost", exc)
        quiet = fix.accuracy_m  # beyond it, with no episode anywhere, a zone has nothing to say
        for zone_id in sorted(zone_sd):
            sd = zone_sd[zone_id]
            if sd - quiet > 0.0 and not st.episodes:
                continue  # `zone.detect`'s own first answer (most fixes), without the call
            try:
                zone.detect(st, ctx, zone_id, sd, fix, me.jump_mps)
            except Exception as exc:
                ctx.failed("zone_breach", exc)
        if rec.proximity_m is not None:
            for p in rec.protected_persons:
                other = st.at_time(p, fix.ts, pol.max_fix_age_s)
                if other is not None:
                    ctx.guard("proximity_breach", proximity.detect, st, ctx, p, me, other, fix.ts)
        try:
            approach.detect(st, ctx, fix, zone_sd, me)
        except Exception as exc:
            ctx.failed("approach", exc)
    elif rec.proximity_m is not None:
        r = st.at_time(rec.restrained_person, fix.ts, pol.max_fix_age_s)
        if r is not None:
            ctx.guard("proximity_breach", proximity.detect, st, ctx, fix.person_id, r, me, fix.ts)
    return True
