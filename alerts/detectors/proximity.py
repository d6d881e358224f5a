"""proximity_breach: the restrained person within `proximity_m` of a protected person."""

from __future__ import annotations

from datetime import datetime

from alerts.banstate import BanState, Ctx, LastFix, speed
from alerts.lifecycle import EpisodeStep, new_alert, step
from alerts.model import Alert, Kind, place
from geofence.evaluation import Confidence, Transition, level, observe
from geofence.geodesy import chord_m, geodesic_m


def detect(st: BanState, ctx: Ctx, p: str, r: LastFix, pf: LastFix, at: datetime) -> None:
    pol = ctx.policy
    prox = ctx.ban.record.proximity_m
    assert prox is not None
    d = chord_m(r.lat, r.lon, pf.lat, pf.lon)
    spread = r.accuracy_m + pf.accuracy_m
    coarse = max(r.accuracy_m, pf.accuracy_m) > pol.max_accuracy_m
    sd = d - prox
    lvl = level(sd, spread, coarse)
    jump = max(r.jump_mps, pf.jump_mps)
    if jump and lvl is not None:  # rule 3: an implausible jump counts as possible
        lvl = Confidence.possible
    key = f"proximity_breach|{p}"
    ep, tr = observe(st.episodes.get(key), lvl, sd, spread, pol)
    if tr is Transition.none:
        return
    if jump and lvl is not None and sd <= 0:
        who = "the restrained person's" if r.jump_mps else f"protected person {p}'s"
        why = (
            f"within {prox:g} m of protected person {p}, but {who} fix is an implausible "
            f"jump ({speed(jump)}, limit {pol.max_speed_mps:g} m/s): counts as possible"
        )
    elif lvl is Confidence.confirmed:
        why = f"within {prox:g} m of protected person {p}, even at the farthest separation"
    elif lvl is Confidence.probable:
        why = f"within {prox:g} m of protected person {p}; accuracy discs reach beyond"
    elif lvl is Confidence.possible:
        why = f"possibly within {prox:g} m of protected person {p} (accuracy discs overlap it)"
    else:
        why = f"{d:.0f} m from protected person {p} (limit {prox:g} m)"

    def make() -> Alert:
        return new_alert(st, ctx, Kind.proximity_breach, at, p, protected_person=p)

    def refresh(a: Alert) -> None:
        a.position = place(r.lat, r.lon, r.accuracy_m, r.ts)
        a.protected_position = place(pf.lat, pf.lon, pf.accuracy_m, pf.ts)
        a.distance_m = geodesic_m(r.lat, r.lon, pf.lat, pf.lon)
        a.reason = why
        a.device_id = r.device_id

    step(
        st,
        ctx,
        EpisodeStep(
            key,
            ep,
            tr,
            at,
            make,
            refresh,
            f"apart from protected person {p} beyond {prox:g} m + margin",
        ),
    )
