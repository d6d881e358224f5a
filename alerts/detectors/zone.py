"""zone_breach: the restrained person inside a zone (+ buffer) of the ban."""

from __future__ import annotations

from alerts.banstate import BanState, Ctx, speed
from alerts.lifecycle import EpisodeStep, new_alert, step
from alerts.model import Alert, Kind, place
from geofence.evaluation import Confidence, level, observe
from geofence.records import LocationFix


def detect(
    st: BanState, ctx: Ctx, zone_id: str, sd: float, fix: LocationFix, jump_mps: float = 0.0
) -> None:
    pol = ctx.policy
    coarse = fix.accuracy_m > pol.max_accuracy_m
    lvl = level(sd, fix.accuracy_m, coarse)
    if jump_mps and lvl is not None:  # rule 3: an implausible jump counts as possible
        lvl = Confidence.possible
    key = f"zone_breach|{zone_id}"
    held = st.episodes.get(key)
    # no episode, none starts: nothing to say (most fixes; alerts/fixpath.py does not even
    # call when the state has no episode at all)
    if held is None and lvl is None:
        return
    ep, tr = observe(held, lvl, sd, fix.accuracy_m, pol)
    zone = ctx.ban.zones[zone_id]
    buf = f" (+{zone.buffer_m:g} m buffer)" if zone.buffer_m else ""
    what = f"zone '{zone_id}'{buf}"
    if lvl is Confidence.confirmed:
        why = f"fix inside {what}, accuracy disc fully inside"
    elif lvl is Confidence.probable and coarse:
        why = (
            f"fix inside {what}; accuracy {fix.accuracy_m:g} m exceeds "
            f"{pol.max_accuracy_m:g} m, but even a disc twice as wide is inside: probable"
        )
    elif lvl is Confidence.probable:
        why = f"fix inside {what}, accuracy disc partly outside"
    elif lvl is Confidence.possible and jump_mps and sd <= 0:
        why = (
            f"fix inside {what}, but an implausible jump ({speed(jump_mps)} from "
            f"the previous fix, limit {pol.max_speed_mps:g} m/s): counts as possible"
        )
    elif lvl is Confidence.possible and coarse and sd <= 0:
        why = (
            f"fix inside {what} but accuracy {fix.accuracy_m:g} m exceeds "
            f"{pol.max_accuracy_m:g} m: counts as possible"
        )
    elif lvl is Confidence.possible:
        why = f"fix {sd:.0f} m outside {what}; accuracy disc (±{fix.accuracy_m:g} m) reaches in"
    else:
        why = f"fix {sd:.0f} m outside {what}"

    def make() -> Alert:
        return new_alert(st, ctx, Kind.zone_breach, fix.ts, zone_id, zone_id=zone_id)

    def refresh(a: Alert) -> None:
        a.position = place(fix.lat, fix.lon, fix.accuracy_m, fix.ts)
        a.distance_m = max(0.0, sd)
        a.reason = why
        a.device_id = fix.device_id

    step(
        st,
        ctx,
        EpisodeStep(
            key,
            ep,
            tr,
            fix.ts,
            make,
            refresh,
            f"left {what}: {pol.exit_fixes} fixes beyond the {pol.exit_margin_m:g} m margin",
        ),
    )
