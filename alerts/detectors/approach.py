"""approach (rule 4): the restrained person closing in on a zone or a protected person."""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime

from alerts.banstate import BanState, Ctx, LastFix, fresh
from alerts.lifecycle import EpisodeStep, new_alert, step
from alerts.model import Alert, Kind, place, rfc3339
from config.policy import Policy
from geofence.evaluation import Confidence, Episode, Transition, duration
from geofence.geodesy import chord_m
from geofence.records import LocationFix


def _closing(
    hist: deque[tuple[datetime, float, float]],
    dist: float,
    acc: float,
    pol: Policy,
    horizon: datetime,
) -> float:
    """Rule 4: by how much the person closed in, in metres (0 when not).

    `hist` holds earlier (time, distance, accuracy) samples, oldest first: those at or after
    `horizon` (the window), and before them at most one older sample, kept only as part of
    the oldest run. (`dist`, `acc`) is the newest fix. "Accuracy" is the sum of every accuracy
    radius in that distance (his fix, and her fix for a protected person). Closing in from an
    old sample to a new one must exceed `approach_min_closing_m` and twice both accuracies.

    One fix proves nothing against multipath (a jump of 150 m claiming 10 m looks like a run),
    and multipath often lasts a few fixes. So each side is a run of `approach_confirm_fixes`
    consecutive samples: the newest run (ending with this fix) at its farthest, an earlier
    run at its nearest, with the largest accuracy of each: outliers in fewer consecutive fixes
    than a run cannot make an approach. While the window holds too few samples for such runs
    (a device just in range, one fix every few minutes) shorter runs stand in, down to single
    fixes, and the closing must also exceed `approach_unpaired_closing_m` (more than a
    multipath jump): a fast car with one fix a minute is still warned on its second fix."""
    n = len(hist) + 1  # samples, this fix last
    first = 1 if hist[0][0] < horizon else 0  # hist[0] only extends the oldest run
    k_full = pol.approach_confirm_fixes
    k = k_full
    # an old run must end in the window and before the new run: n - k - 1 >= max(first, k - 1)
    while k > 1 and n - k - 1 < max(first, k - 1):
        k -= 1
    if n - k - 1 < first:
        return 0.0
    need = pol.approach_min_closing_m
    if k < k_full:
        need = max(need, pol.approach_unpaired_closing_m)
    new_d, new_acc = dist, acc
    for i in range(n - k, n - 1):
        _, d, a = hist[i]
        if d > new_d:
            new_d = d
        if a > new_acc:
            new_acc = a
    best = 0.0
    for end in range(max(first, k - 1), n - k):
        old_d, old_acc = math.inf, 0.0
        for i in range(end - k + 1, end + 1):
            _, d, a = hist[i]
            if d < old_d:
                old_d = d
            if a > old_acc:
                old_acc = a
        gain = old_d - new_d
        if gain > best and gain > need and gain > 2 * (old_acc + new_acc):
            best = gain
    return best


def detect(
    st: BanState, ctx: Ctx, fix: LocationFix, zone_sd: dict[str, float], me: LastFix
) -> None:
    """Rule 4: warn when the restrained person is within `approach_m` of a zone (+ buffer)
    or of a protected person's proximity circle and really closing in (see `_closing`).

    Fixes up to `approach_m + max_speed_mps * approach_window_s` away are remembered (a
    thin sample, at most 16 over the window, so the cost per fix stays flat), so that a
    fast approach with one fix a minute is still warned. An implausible jump (rule 3)
    neither closes in nor is remembered. An episode ends when the person has not closed
    in for `approach_window_s`, or a fix is farther than `approach_m + exit_margin_m`.
    Revisions are published only when the distance moved by `approach_revision_m`."""
    pol = ctx.policy
    if fix.accuracy_m > pol.max_accuracy_m or me.jump_mps:
        return
    rec = ctx.ban.record
    targets: list[tuple[str, float, float, str | None, str | None]] = [
        (f"zone:{z}", sd, fix.accuracy_m, z, None) for z, sd in sorted(zone_sd.items())
    ]
    if rec.proximity_m is not None:
        for p in rec.protected_persons:
            pf = st.last_fix.get(p)
            if pf is not None and not pf.jump_mps and fresh(pf.ts, fix.ts, pol.max_fix_age_s):
                d = chord_m(fix.lat, fix.lon, pf.lat, pf.lon) - rec.proximity_m
                # her accuracy is involved too (rule 4)
                targets.append((f"person:{p}", d, fix.accuracy_m + pf.accuracy_m, None, p))
    window = duration(pol.approach_window_s)
    spacing = duration(pol.approach_window_s / 15)
    keep_within = pol.approach_m + pol.max_speed_mps * pol.approach_window_s
    episodes = st.episodes
    for target, dist, acc, zone_id, person in targets:
        key = f"approach|{target}"
        held = episodes.get(key) if episodes else None
        exit_reason = ""
        hist = st.approach.get(target)
        closing = 0.0
        if hist is None:  # most fixes: far from every target, nothing to remember
            if dist <= keep_within:
                st.approach[target] = deque([(fix.ts, dist, acc)])
        else:
            horizon = fix.ts - window
            # the newest sample before the window stays (up to one more window), as the
            # partner of the oldest one in it
            while len(hist) > 1 and hist[1][0] < horizon:
                hist.popleft()
            if hist and hist[0][0] < horizon - window:
                hist.popleft()
            if hist and (held is not None or dist <= pol.approach_m):
                closing = _closing(hist, dist, acc, pol, horizon)
            if dist <= keep_within and (not hist or fix.ts - hist[-1][0] >= spacing):
                hist.append((fix.ts, dist, acc))
            elif not hist:
                del st.approach[target]
        if held is None:
            # already inside: that is a breach, not an approach
            if not (closing > 0 and 0 < dist <= pol.approach_m):
                continue  # most fixes
            ep: Episode | None = Episode(Confidence.probable)
            tr = Transition.enter
            st.closing_at[key] = fix.ts
        name = f"zone '{zone_id}'" if zone_id else f"protected person {person}"
        if held is not None:
            ep, tr = held, Transition.stay
            if closing > 0:
                st.closing_at[key] = fix.ts
            since = st.closing_at.get(key, fix.ts)
            if dist > pol.approach_m + pol.exit_margin_m:
                ep, tr = None, Transition.exit
                exit_reason = (
                    f"moved away from {name} beyond {pol.approach_m:g} m + "
                    f"{pol.exit_margin_m:g} m margin"
                )
            elif fix.ts - since >= window:
                ep, tr = None, Transition.exit
                exit_reason = (
                    f"not closing in on {name} for {pol.approach_window_s:g} s "
                    f"(last at {rfc3339(since)})"
                )
            else:
                aid = st.open.get(key)
                published = None if aid is None else st.alerts[aid].distance_m
                if (
                    published is not None
                    and abs(max(0.0, dist) - published) < pol.approach_revision_m
                ):
                    continue  # nothing material changed: no revision
            if tr is Transition.exit:
                st.closing_at.pop(key, None)
        why = f"{max(dist, 0.0):.0f} m from {name}" + (
            f", {closing:.0f} m closer within {pol.approach_window_s:g} s" if closing > 0 else ""
        )

        def make(
            target: str = target, zone_id: str | None = zone_id, person: str | None = person
        ) -> Alert:
            return new_alert(
                st, ctx, Kind.approach, fix.ts, target, zone_id=zone_id, protected_person=person
            )

        def refresh(a: Alert, dist: float = dist, why: str = why) -> None:
            a.position = place(fix.lat, fix.lon, fix.accuracy_m, fix.ts)
            a.distance_m = max(0.0, dist)
            a.reason = why
            a.device_id = fix.device_id

        step(st, ctx, EpisodeStep(key, ep, tr, fix.ts, make, refresh, exit_reason))
