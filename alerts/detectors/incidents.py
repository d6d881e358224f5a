"""One alert per incident matched to the ban (contract v2 rules 8 and 9)."""

from __future__ import annotations

from alerts.banstate import BanState, Ctx, fresh
from alerts.lifecycle import dispatch, new_alert, refresh_units
from alerts.model import ALERTS, Kind, place
from geofence.records import Incident, IncidentKind

_INCIDENT_KIND = {
    IncidentKind.reported_contact: (Kind.reported_contact, 1, "confirmed"),
    IncidentKind.sos: (Kind.sos, 1, "confirmed"),
    IncidentKind.threat: (Kind.threat, 2, "confirmed"),
    IncidentKind.tip: (Kind.tip, 3, "possible"),
    IncidentKind.device_tamper: (Kind.tamper, 1, "confirmed"),
    IncidentKind.device_battery_low: (Kind.battery_low, 3, "confirmed"),
}


def apply(st: BanState, ctx: Ctx, inc: Incident, matched_by: str, responsible: bool = True) -> None:
    """One alert for this ban. `responsible`: this ban's alert sends the incident's one
    `respond` (and `protect`) task; the other bans the incident matched send none
    (rule 9). An SOS may match a ban no longer in force (the engine decides which)."""
    if inc.incident_id in st.incidents_seen:
        return
    st.incidents_seen.add(inc.incident_id)
    kind, prio, conf = _INCIDENT_KIND[inc.kind]
    rec = ctx.ban.record
    reason = f"{inc.kind.value} incident matched by {matched_by}"
    if kind is Kind.tamper and not rec.electronic_monitoring:
        prio = 3
        reason += "; the ban has no electronic monitoring"
    if not rec.in_force(inc.ts):
        reason += "; ban not in force"
    a = new_alert(st, ctx, kind, inc.ts, inc.incident_id)
    a.priority = prio
    a.set_priority(prio, inc.ts)
    a.confidence = conf
    a.incident_id = inc.incident_id
    a.reason = reason
    here = None if inc.lat is None or inc.lon is None else place(inc.lat, inc.lon, None, inc.ts)
    r = st.last_fix.get(rec.restrained_person)
    is_fresh = r is not None and fresh(r.ts, inc.ts, ctx.policy.max_fix_age_s)
    r_place = None if r is None or not is_fresh else place(r.lat, r.lon, r.accuracy_m, r.ts)
    # `position` is where `respond` goes: the incident's position, else the restrained
    # person's latest fresh fix
    a.position = here or r_place
    if kind is Kind.sos:
        a.protected_position = here
        if here is None:
            for p in rec.protected_persons:
                pf = st.last_fix.get(p)
                if pf is not None:
                    a.protected_position = place(pf.lat, pf.lon, pf.accuracy_m, pf.ts)
                    break
        if a.position is None:  # nothing else known: help goes to her
            a.position = a.protected_position
    if not responsible:
        a.respond_sent = True  # owed by the responsible ban's alert, not by this one
    refresh_units(ctx, a, inc.ts)
    ctx.out.append((ALERTS, a.alert_id, a.revision(inc.ts)))
    dispatch(ctx.policy, ctx.fleet, a, inc.ts, ctx.out, ctx.book)
