"""late_evidence: a breach seen only in an out-of-order fix."""

from __future__ import annotations

from alerts.banstate import BanState, Ctx, LastFix
from alerts.model import ALERTS, Alert, Kind, place, rfc3339, stable_id
from geofence.evaluation import Confidence, level
from geofence.geodesy import chord_m
from geofence.records import LocationFix


def detect(
    st: BanState, ctx: Ctx, fix: LocationFix, restrained: bool, zone_sd: dict[str, float]
) -> None:
    """An out-of-order fix: live state is untouched; a breach it shows that no live episode
    covers becomes (or adds to) a `late_evidence` alert."""
    pol = ctx.policy
    rec = ctx.ban.record
    coarse = fix.accuracy_m > pol.max_accuracy_m
    found: list[tuple[str, str]] = []
    if restrained:
        for z in sorted(zone_sd):
            lvl = level(zone_sd[z], fix.accuracy_m, coarse)
            if (
                lvl is not None
                and lvl is not Confidence.possible
                and not st.covered(f"zone_breach|{z}", fix.ts)
            ):
                found.append((f"zone:{z}", f"zone '{z}'"))
    if rec.proximity_m is not None:
        pairs: list[tuple[str, LastFix | None, LastFix | None]]
        me = LastFix.of(fix)
        # rule 5: the other person's fix closest in time to this one, not the latest
        if restrained:
            pairs = [
                (p, me, st.at_time(p, fix.ts, pol.max_fix_age_s)) for p in rec.protected_persons
            ]
        else:
            r_at = st.at_time(rec.restrained_person, fix.ts, pol.max_fix_age_s)
            pairs = [(fix.person_id, r_at, me)]
        for p, r, pf in pairs:
            if r is None or pf is None:
                continue
            sd = chord_m(r.lat, r.lon, pf.lat, pf.lon) - rec.proximity_m
            lvl = level(
                sd,
                r.accuracy_m + pf.accuracy_m,
                max(r.accuracy_m, pf.accuracy_m) > pol.max_accuracy_m,
            )
            if (
                lvl is not None
                and lvl is not Confidence.possible
                and not st.covered(f"proximity_breach|{p}", fix.ts)
            ):
                found.append((f"person:{p}", f"proximity to protected person {p}"))
    for target, name in found:
        key = f"late_evidence|{target}"
        aid = st.open.get(key)
        if aid is None:
            a = Alert(
                alert_id=stable_id(
                    st.ban_id, Kind.late_evidence, target, rfc3339(fix.ts), fix.device_id
                ),
                kind=Kind.late_evidence,
                priority=3,
                confidence=Confidence.probable.value,
                ban_id=st.ban_id,
                ban_version=rec.version,
                restrained_person=rec.restrained_person,
                opened_at=ctx.now,
                reason=f"breach of {name} seen only in an out-of-order fix from {rfc3339(fix.ts)}",
                zone_id=target[5:] if target.startswith("zone:") else None,
                protected_person=target[7:] if target.startswith("person:") else None,
                device_id=fix.device_id,
                position=place(fix.lat, fix.lon, fix.accuracy_m, fix.ts),
                evidence_count=1,
            )
            st.alerts[a.alert_id] = a
            st.open[key] = a.alert_id
            ctx.out.append((ALERTS, a.alert_id, a.revision(ctx.now)))
        else:
            a = st.alerts[aid]
            a.evidence_count += 1
            assert a.updated_at is not None
            if (ctx.now - a.updated_at).total_seconds() >= pol.update_interval_s:
                ctx.out.append((ALERTS, a.alert_id, a.revision(ctx.now)))
