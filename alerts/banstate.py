"""Everything decided for one contact ban: the unit of state, and of partitioning in the stream.

A `BanState` holds the latest fixes of the ban's persons, the newest event time per device,
open episodes and their alerts, approach histories and signal watches. Each detector is a
method with one entry point `(ctx, input) -> outputs appended to ctx.out`; the engine feeds
them in event-time order per device. Times come from the records (event time) or from the
caller's clock for timers: nothing here reads the clock.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alerts.assignment import Fleet
from alerts.model import ALERTS, Alert, Kind, Output, State, place, rfc3339, stable_id
from alerts.tasks import FOLLOW_UP_KINDS, KnockTracker, follow_up_chain, task
from config.policy import Policy
from geofence.bans import HeldBan
from geofence.evaluation import Confidence, Episode, Transition, duration, level, observe
from geofence.geodesy import chord_m, geodesic_m
from geofence.records import AlertAction, FixSource, Incident, IncidentKind, LocationFix
from geofence.zones import signed_distance

log = logging.getLogger("banwatch.detectors")


@dataclass(frozen=True, slots=True)
class LastFix:
    lat: float
    lon: float
    accuracy_m: float
    ts: datetime
    device_id: str
    # implied speed (m/s) of an implausible jump (rule 3: counts at most as possible), else 0
    jump_mps: float = 0.0

    @classmethod
    def of(cls, fix: LocationFix, jump_mps: float = 0.0) -> LastFix:
        return cls(fix.lat, fix.lon, fix.accuracy_m, fix.ts, fix.device_id, jump_mps)


def implied_speed(a: LastFix, lat: float, lon: float, acc: float, ts: datetime) -> float:
    """Metres per second from fix `a` to (lat, lon) at `ts`, after subtracting both accuracy
    radii from the distance (contract v2 rule 3); 0 when the discs overlap."""
    gap = chord_m(a.lat, a.lon, lat, lon) - a.accuracy_m - acc
    if gap <= 0.0:
        return 0.0
    dt = (ts - a.ts).total_seconds()
    return gap / dt if dt > 0 else math.inf


#: metres per degree of latitude, at least (WGS84: 110,574 at the equator to 111,694 at the
#: poles), and per degree of longitude on the equator (111,320), rounded up
_M_PER_DEG = 111_700.0


def _surely_plausible(a: LastFix, fix: LocationFix, max_speed_mps: float) -> bool:
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


#: Rule 5: how many of each person's fixes are kept to find the one closest in time to a late
#: fix of the other person, and how far apart (in `max_fix_age_s`) kept fixes are at least.
RECENT_FIXES = 32
RECENT_SPACING = 1 / 8


@dataclass(slots=True)
class Ctx:
    """What a detector may use besides the ban's own state, and where outputs go."""

    policy: Policy
    fleet: Fleet
    ban: HeldBan
    now: datetime  # the caller's clock: event time in replay, wall clock in the stream
    knock: KnockTracker | None = None
    out: list[Output] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # detectors that raised on this input

    def guard(self, detector: str, fn: Callable[..., None], *args: Any) -> None:
        """Run one detector, `fn(*args)`; if it raises, log it (type only: no data), note it,
        go on."""
        try:
            fn(*args)
        except Exception as exc:  # a bug in one detector must not silence the others
            self.failed(detector, exc)

    def failed(self, detector: str, exc: Exception) -> None:
        """What `guard` does when a detector raised (the fix path writes the `try` inline)."""
        log.error(
            "detector %s failed on ban %s: %s", detector, self.ban.record.ban_id, type(exc).__name__
        )
        self.failures.append(detector)


def _priority(kind: Kind, conf: Confidence) -> int:
    return 1 if conf is not Confidence.possible else 2


def _speed(mps: float) -> str:
    return f"{mps:.0f} m/s" if math.isfinite(mps) else "no time between the fixes"


def _fresh(a: datetime, b: datetime, max_age_s: float) -> bool:
    return abs((a - b).total_seconds()) <= max_age_s


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


_INCIDENT_KIND = {
    IncidentKind.reported_contact: (Kind.reported_contact, 1, "confirmed"),
    IncidentKind.sos: (Kind.sos, 1, "confirmed"),
    IncidentKind.threat: (Kind.threat, 2, "confirmed"),
    IncidentKind.tip: (Kind.tip, 3, "possible"),
    IncidentKind.device_tamper: (Kind.tamper, 1, "confirmed"),
    IncidentKind.device_battery_low: (Kind.battery_low, 3, "confirmed"),
}


class BanState:
    def __init__(self, ban_id: str) -> None:
        self.ban_id = ban_id
        self.newest: dict[str, datetime] = {}  # device -> newest applied event time
        self.last_fix: dict[str, LastFix] = {}  # person -> latest applied fix
        self.episodes: dict[str, Episode] = {}  # episode key -> geometric state
        self.open: dict[str, str] = {}  # episode key -> alert id of its live alert
        self.alerts: dict[str, Alert] = {}
        self.approach: dict[str, deque[tuple[datetime, float, float]]] = {}
        self.watch: dict[str, LastFix] = {}  # monitored ankle tags -> last fix
        self.signal_rise: dict[str, datetime] = {}  # device -> when signal_lost reaches p1
        self.incidents_seen: set[str] = set()
        self.opened: dict[str, int] = {}  # "kind|target" -> alerts opened so far
        # past episodes per key: (first, last) event time, so that an out-of-order fix inside
        # a span that was already alerted on is not "late evidence"
        self.spans: dict[str, deque[tuple[datetime, datetime]]] = {}
        # rule 3: per device, the newest applied fix and the newest plausible one (the same
        # object unless the newest was an implausible jump)
        self.device_last: dict[str, LastFix] = {}
        self.device_anchor: dict[str, LastFix] = {}
        # rule 4: approach episode key -> event time it last closed in
        self.closing_at: dict[str, datetime] = {}
        # rule 5: per person, a thin recent history (bans with proximity_m only)
        self.recent: dict[str, deque[LastFix]] = {}
        # when the ban's end of life (lifted, revoked, validity over) was applied here: its
        # alerts were resolved then; None while the ban is (again) in force
        self.ended: datetime | None = None

    # ------------------------------------------------------------------ fixes
    def apply_fix(
        self, ctx: Ctx, fix: LocationFix, restrained: bool, zone_sd: dict[str, float]
    ) -> bool:
        """Apply one fix of the restrained person (`restrained`) or of a protected person.
        `zone_sd` holds the fix's signed distance to each zone of the ban. Returns False when
        the fix is out of order for its device (it then only may raise `late_evidence`)."""
        newest = self.newest.get(fix.device_id)
        if newest is not None and fix.ts <= newest:
            ctx.guard("late_evidence", lambda: self._late(ctx, fix, restrained, zone_sd))
            return False
        self.newest[fix.device_id] = fix.ts
        pol = ctx.policy
        me = self._plausibility(fix, pol.max_speed_mps)
        self.last_fix[fix.person_id] = me
        rec = ctx.ban.record
        if rec.proximity_m is not None:
            self._remember(fix.person_id, me, pol)
        # each detector isolated as by `ctx.guard`, with the `try` written out: this runs for
        # every fix, and a `try` costs nothing until something raises
        if restrained:
            try:
                self._signal_seen(ctx, fix, me)
            except Exception as exc:
                ctx.failed("signal_lost", exc)
            for zone_id in sorted(zone_sd):
                try:
                    self._zone(ctx, zone_id, zone_sd[zone_id], fix, me.jump_mps)
                except Exception as exc:
                    ctx.failed("zone_breach", exc)
            if rec.proximity_m is not None:
                for p in rec.protected_persons:
                    other = self._at_time(p, fix.ts, pol.max_fix_age_s)
                    if other is not None:
                        ctx.guard("proximity_breach", self._proximity, ctx, p, me, other, fix.ts)
            try:
                self._approach(ctx, fix, zone_sd, me)
            except Exception as exc:
                ctx.failed("approach", exc)
        elif rec.proximity_m is not None:
            r = self._at_time(rec.restrained_person, fix.ts, pol.max_fix_age_s)
            if r is not None:
                ctx.guard("proximity_breach", self._proximity, ctx, fix.person_id, r, me, fix.ts)
        return True

    def _plausibility(self, fix: LocationFix, max_speed_mps: float) -> LastFix:
        """Rule 3: the fix as a `LastFix`, with `jump_mps` set when its implied speed from the
        device's previous applied fix, and from the device's newest plausible fix before
        that, exceeds `max_speed_mps`. Either way it becomes the device's newest fix: a
        multipath outlier is followed by fixes plausible from the fix before it, a real fast
        move by fixes plausible from it."""
        dev = fix.device_id
        prev = self.device_last.get(dev)
        jump = 0.0
        if prev is not None and not _surely_plausible(prev, fix, max_speed_mps):
            jump = implied_speed(prev, fix.lat, fix.lon, fix.accuracy_m, fix.ts)
            if jump > max_speed_mps:
                anchor = self.device_anchor.get(dev)
                if anchor is not None and anchor is not prev:
                    jump = min(
                        jump, implied_speed(anchor, fix.lat, fix.lon, fix.accuracy_m, fix.ts)
                    )
            if jump <= max_speed_mps:
                jump = 0.0
        me = LastFix.of(fix, jump)
        self.device_last[dev] = me
        if not jump:
            self.device_anchor[dev] = me
        return me

    def _remember(self, person: str, me: LastFix, pol: Policy) -> None:
        """Rule 5: keep a thin recent history of `person`'s fixes (at least
        `RECENT_SPACING * max_fix_age_s` apart, at most `RECENT_FIXES`)."""
        q = self.recent.get(person)
        if q is None:
            self.recent[person] = deque([me], maxlen=RECENT_FIXES)
        elif (me.ts - q[-1].ts).total_seconds() >= pol.max_fix_age_s * RECENT_SPACING:
            q.append(me)

    def _at_time(self, person: str, ts: datetime, max_age_s: float) -> LastFix | None:
        """Rule 5: `person`'s latest fix if it is within `max_age_s` of `ts`, else the fix of
        the recent history closest in time to `ts` (at most `max_age_s` apart), else None."""
        last = self.last_fix.get(person)
        if last is None:
            return None
        if _fresh(last.ts, ts, max_age_s):
            return last
        q = self.recent.get(person)
        if not q or (q[0].ts - ts).total_seconds() > max_age_s:
            return None
        best: LastFix | None = None
        gap = max_age_s
        for f in q:
            d = abs((f.ts - ts).total_seconds())
            if d <= gap:
                best, gap = f, d
        return best

    def _zone(
        self, ctx: Ctx, zone_id: str, sd: float, fix: LocationFix, jump_mps: float = 0.0
    ) -> None:
        pol = ctx.policy
        coarse = fix.accuracy_m > pol.max_accuracy_m
        lvl = level(sd, fix.accuracy_m, coarse)
        if jump_mps and lvl is not None:  # rule 3: an implausible jump counts as possible
            lvl = Confidence.possible
        key = f"zone_breach|{zone_id}"
        held = self.episodes.get(key)
        if held is None and lvl is None:  # no episode, none starts: nothing to say (most fixes)
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
                f"fix inside {what}, but an implausible jump ({_speed(jump_mps)} from "
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
            return self._new_alert(ctx, Kind.zone_breach, fix.ts, zone_id, zone_id=zone_id)

        def refresh(a: Alert) -> None:
            a.position = place(fix.lat, fix.lon, fix.accuracy_m, fix.ts)
            a.distance_m = max(0.0, sd)
            a.reason = why
            a.device_id = fix.device_id

        self._step(
            ctx,
            key,
            ep,
            tr,
            fix.ts,
            make,
            refresh,
            f"left {what}: {pol.exit_fixes} fixes beyond the {pol.exit_margin_m:g} m margin",
        )

    def _proximity(self, ctx: Ctx, p: str, r: LastFix, pf: LastFix, at: datetime) -> None:
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
        ep, tr = observe(self.episodes.get(key), lvl, sd, spread, pol)
        if tr is Transition.none:
            return
        if jump and lvl is not None and sd <= 0:
            who = "the restrained person's" if r.jump_mps else f"protected person {p}'s"
            why = (
                f"within {prox:g} m of protected person {p}, but {who} fix is an implausible "
                f"jump ({_speed(jump)}, limit {pol.max_speed_mps:g} m/s): counts as possible"
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
            return self._new_alert(ctx, Kind.proximity_breach, at, p, protected_person=p)

        def refresh(a: Alert) -> None:
            a.position = place(r.lat, r.lon, r.accuracy_m, r.ts)
            a.protected_position = place(pf.lat, pf.lon, pf.accuracy_m, pf.ts)
            a.distance_m = geodesic_m(r.lat, r.lon, pf.lat, pf.lon)
            a.reason = why
            a.device_id = r.device_id

        self._step(
            ctx,
            key,
            ep,
            tr,
            at,
            make,
            refresh,
            f"apart from protected person {p} beyond {prox:g} m + margin",
        )

    def _approach(
        self, ctx: Ctx, fix: LocationFix, zone_sd: dict[str, float], me: LastFix
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
                pf = self.last_fix.get(p)
                if pf is not None and not pf.jump_mps and _fresh(pf.ts, fix.ts, pol.max_fix_age_s):
                    d = chord_m(fix.lat, fix.lon, pf.lat, pf.lon) - rec.proximity_m
                    # her accuracy is involved too (rule 4)
                    targets.append((f"person:{p}", d, fix.accuracy_m + pf.accuracy_m, None, p))
        window = duration(pol.approach_window_s)
        spacing = duration(pol.approach_window_s / 15)
        keep_within = pol.approach_m + pol.max_speed_mps * pol.approach_window_s
        for target, dist, acc, zone_id, person in targets:
            key = f"approach|{target}"
            held = self.episodes.get(key)
            exit_reason = ""
            hist = self.approach.get(target)
            closing = 0.0
            if hist is None:  # most fixes: far from every target, nothing to remember
                if dist <= keep_within:
                    self.approach[target] = deque([(fix.ts, dist, acc)])
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
                if dist <= keep_within and (
                    not hist or fix.ts - hist[-1][0] >= spacing
                ):
                    hist.append((fix.ts, dist, acc))
                elif not hist:
                    del self.approach[target]
            name = f"zone '{zone_id}'" if zone_id else f"protected person {person}"
            if held is None:
                # already inside: that is a breach, not an approach
                if not (closing > 0 and 0 < dist <= pol.approach_m):
                    continue
                ep: Episode | None = Episode(Confidence.probable)
                tr = Transition.enter
                self.closing_at[key] = fix.ts
            else:
                ep, tr = held, Transition.stay
                if closing > 0:
                    self.closing_at[key] = fix.ts
                since = self.closing_at.get(key, fix.ts)
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
                    aid = self.open.get(key)
                    published = None if aid is None else self.alerts[aid].distance_m
                    if (
                        published is not None
                        and abs(max(0.0, dist) - published) < pol.approach_revision_m
                    ):
                        continue  # nothing material changed: no revision
                if tr is Transition.exit:
                    self.closing_at.pop(key, None)
            why = f"{max(dist, 0.0):.0f} m from {name}" + (
                f", {closing:.0f} m closer within {pol.approach_window_s:g} s"
                if closing > 0
                else ""
            )

            def make(
                target: str = target, zone_id: str | None = zone_id, person: str | None = person
            ) -> Alert:
                return self._new_alert(
                    ctx, Kind.approach, fix.ts, target, zone_id=zone_id, protected_person=person
                )

            def refresh(a: Alert, dist: float = dist, why: str = why) -> None:
                a.position = place(fix.lat, fix.lon, fix.accuracy_m, fix.ts)
                a.distance_m = max(0.0, dist)
                a.reason = why
                a.device_id = fix.device_id

            self._step(ctx, key, ep, tr, fix.ts, make, refresh, exit_reason)

    def _late(
        self, ctx: Ctx, fix: LocationFix, restrained: bool, zone_sd: dict[str, float]
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
                    and not self._covered(f"zone_breach|{z}", fix.ts)
                ):
                    found.append((f"zone:{z}", f"zone '{z}'"))
        if rec.proximity_m is not None:
            pairs: list[tuple[str, LastFix | None, LastFix | None]]
            me = LastFix.of(fix)
            # rule 5: the other person's fix closest in time to this one, not the latest
            if restrained:
                pairs = [
                    (p, me, self._at_time(p, fix.ts, pol.max_fix_age_s))
                    for p in rec.protected_persons
                ]
            else:
                r_at = self._at_time(rec.restrained_person, fix.ts, pol.max_fix_age_s)
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
                    and not self._covered(f"proximity_breach|{p}", fix.ts)
                ):
                    found.append((f"person:{p}", f"proximity to protected person {p}"))
        for target, name in found:
            key = f"late_evidence|{target}"
            aid = self.open.get(key)
            if aid is None:
                a = Alert(
                    alert_id=stable_id(
                        self.ban_id, Kind.late_evidence, target, rfc3339(fix.ts), fix.device_id
                    ),
                    kind=Kind.late_evidence,
                    priority=3,
                    confidence=Confidence.probable.value,
                    ban_id=self.ban_id,
                    ban_version=rec.version,
                    restrained_person=rec.restrained_person,
                    opened_at=ctx.now,
                    reason=f"breach of {name} seen only in an out-of-order fix "
                    f"from {rfc3339(fix.ts)}",
                    zone_id=target[5:] if target.startswith("zone:") else None,
                    protected_person=target[7:] if target.startswith("person:") else None,
                    device_id=fix.device_id,
                    position=place(fix.lat, fix.lon, fix.accuracy_m, fix.ts),
                    evidence_count=1,
                )
                self.alerts[a.alert_id] = a
                self.open[key] = a.alert_id
                ctx.out.append((ALERTS, a.alert_id, a.revision(ctx.now)))
            else:
                a = self.alerts[aid]
                a.evidence_count += 1
                assert a.updated_at is not None
                if (ctx.now - a.updated_at).total_seconds() >= pol.update_interval_s:
                    ctx.out.append((ALERTS, a.alert_id, a.revision(ctx.now)))

    def _covered(self, key: str, ts: datetime) -> bool:
        """Whether an episode of `key` was live at event time `ts` (so it was alerted on)."""
        if key in self.episodes and self.spans.get(key) and self.spans[key][-1][0] <= ts:
            return True
        return any(a <= ts <= b for a, b in self.spans.get(key, ()))

    # ---------------------------------------------------------- signal loss
    def _signal_seen(self, ctx: Ctx, fix: LocationFix, me: LastFix) -> None:
        """`me`: the fix as a `LastFix` (immutable, so shared with `last_fix`)."""
        if not ctx.ban.record.electronic_monitoring or fix.source is not FixSource.ankle_tag:
            return
        self.watch[fix.device_id] = me
        if self.signal_rise:
            self.signal_rise.pop(fix.device_id, None)
        aid = self.open.pop(f"signal_lost|{fix.device_id}", None) if self.open else None
        if aid is not None:
            a = self.alerts[aid]
            a.episode = "ended"
            a.reason = f"signal restored: fix at {rfc3339(fix.ts)}"
            a.position = place(fix.lat, fix.lon, fix.accuracy_m, fix.ts)
            ctx.out.append((ALERTS, aid, a.revision(fix.ts)))

    def _reach_gap(self, ctx: Ctx, last: LastFix) -> float:
        """Metres from the last position to the nearest zone + buffer or protected person's
        proximity circle (their latest known fix): the reachable disc meets one when its radius
        reaches this gap."""
        rec = ctx.ban.record
        gaps = [signed_distance(z, last.lat, last.lon) for z in ctx.ban.zones.values()]
        for p in rec.protected_persons:
            pf = self.last_fix.get(p)
            if pf is not None:
                gaps.append(chord_m(last.lat, last.lon, pf.lat, pf.lon) - (rec.proximity_m or 0.0))
        return max(0.0, min(gaps)) if gaps else math.inf

    def _signal_lost(self, ctx: Ctx, device: str, at: datetime) -> None:
        last = self.watch[device]
        pol = ctx.policy
        gap = self._reach_gap(ctx, last)
        reach = pol.max_speed_mps * (at - last.ts).total_seconds()
        p1 = reach >= gap
        silent = (at - last.ts).total_seconds()
        a = self._new_alert(ctx, Kind.signal_lost, at, f"{device}|{rfc3339(last.ts)}")
        a.priority = 1 if p1 else 2
        a.set_priority(a.priority, at)
        a.confidence = None
        a.device_id = device
        a.position = place(last.lat, last.lon, last.accuracy_m, last.ts)
        a.reason = self._signal_reason(silent, reach, p1)
        self.open[f"signal_lost|{device}"] = a.alert_id
        if not p1 and math.isfinite(gap):
            self.signal_rise[device] = last.ts + timedelta(seconds=gap / pol.max_speed_mps)
        self._refresh_units(ctx, a, at)
        ctx.out.append((ALERTS, a.alert_id, a.revision(at)))
        self._dispatch(ctx, a, at)

    @staticmethod
    def _signal_reason(silent: float, reach: float, p1: bool) -> str:
        where = (
            "can have reached a zone or protected person"
            if p1
            else "cannot yet have reached a zone or protected person"
        )
        return f"no fix for {silent:.0f} s; within {reach:.0f} m of the last fix the person {where}"

    def _signal_rises(self, ctx: Ctx, device: str, at: datetime) -> None:
        self.signal_rise.pop(device, None)
        aid = self.open.get(f"signal_lost|{device}")
        if aid is None:
            return
        a = self.alerts[aid]
        last = self.watch[device]
        silent = (at - last.ts).total_seconds()
        a.set_priority(1, at)
        a.reason = self._signal_reason(silent, ctx.policy.max_speed_mps * silent, True)
        ctx.out.append((ALERTS, aid, a.revision(at)))
        self._dispatch(ctx, a, at)

    # -------------------------------------------------------------- incidents
    def apply_incident(
        self, ctx: Ctx, inc: Incident, matched_by: str, responsible: bool = True
    ) -> None:
        """One alert for this ban. `responsible`: this ban's alert sends the incident's one
        `respond` (and `protect`) task; the other bans the incident matched send none
        (rule 9). An SOS may match a ban no longer in force (the engine decides which)."""
        if inc.incident_id in self.incidents_seen:
            return
        self.incidents_seen.add(inc.incident_id)
        kind, prio, conf = _INCIDENT_KIND[inc.kind]
        rec = ctx.ban.record
        reason = f"{inc.kind.value} incident matched by {matched_by}"
        if kind is Kind.tamper and not rec.electronic_monitoring:
            prio = 3
            reason += "; the ban has no electronic monitoring"
        if not rec.in_force(inc.ts):
            reason += "; ban not in force"
        a = self._new_alert(ctx, kind, inc.ts, inc.incident_id)
        a.priority = prio
        a.set_priority(prio, inc.ts)
        a.confidence = conf
        a.incident_id = inc.incident_id
        a.reason = reason
        here = None if inc.lat is None or inc.lon is None else place(inc.lat, inc.lon, None, inc.ts)
        r = self.last_fix.get(rec.restrained_person)
        fresh = r is not None and _fresh(r.ts, inc.ts, ctx.policy.max_fix_age_s)
        r_place = None if r is None or not fresh else place(r.lat, r.lon, r.accuracy_m, r.ts)
        # `position` is where `respond` goes: the incident's position, else the restrained
        # person's latest fresh fix
        a.position = here or r_place
        if kind is Kind.sos:
            a.protected_position = here
            if here is None:
                for p in rec.protected_persons:
                    pf = self.last_fix.get(p)
                    if pf is not None:
                        a.protected_position = place(pf.lat, pf.lon, pf.accuracy_m, pf.ts)
                        break
            if a.position is None:  # nothing else known: help goes to her
                a.position = a.protected_position
        if not responsible:
            a.respond_sent = True  # owed by the responsible ban's alert, not by this one
        self._refresh_units(ctx, a, inc.ts)
        ctx.out.append((ALERTS, a.alert_id, a.revision(inc.ts)))
        self._dispatch(ctx, a, inc.ts)

    # ---------------------------------------------------------------- actions
    def apply_action(self, ctx: Ctx, act: AlertAction) -> None:
        a = self.alerts[act.alert_id]
        revision = a.act(act.action, act.by, act.ts)
        if revision is None:
            return
        if a.state is State.resolved:  # resolution ends the alert's episode
            for key, aid in list(self.open.items()):
                if aid == a.alert_id:
                    del self.open[key]
                    self.episodes.pop(key, None)
                    self.closing_at.pop(key, None)
        ctx.out.append((ALERTS, a.alert_id, revision))

    # ----------------------------------------------------------------- timers
    def next_deadline(self, policy: Policy) -> datetime | None:
        """The earliest due time of `_timers` (the first of equal ones), without building
        them: the engine asks after every input to the ban."""
        best: datetime | None = None
        if self.alerts:
            sla = duration(policy.ack_sla_s)
            for a in self.alerts.values():  # most are not priority 1, or already escalated
                if (
                    a.p1_since is not None
                    and (a.state is State.open or a.state is State.updated)
                    and a.priority == 1
                ):
                    t = a.p1_since + sla
                    if best is None or t < best:
                        best = t
        if self.watch:
            timeout = duration(policy.signal_timeout_s)
            for device, last in self.watch.items():
                if not self.open or f"signal_lost|{device}" not in self.open:
                    t = last.ts + timeout
                    if best is None or t < best:
                        best = t
        for t in self.signal_rise.values():
            if best is None or t < best:
                best = t
        if self.open:
            for _, t, _ in self._lost_timers(policy):
                if best is None or t < best:
                    best = t
        return best

    def _lost_timers(self, policy: Policy) -> list[tuple[int, datetime, str]]:
        """Proximity and approach episodes whose protected person's latest fix will be older
        than `signal_timeout_s`: (3, due time, episode key)."""
        out: list[tuple[int, datetime, str]] = []
        timeout = duration(policy.signal_timeout_s)
        for key in self.open:
            person = _followed_person(key)
            if person is None:
                continue
            pf = self.last_fix.get(person)
            if pf is not None:
                out.append((3, pf.ts + timeout, key))
        return out

    def _timers(self, policy: Policy) -> list[tuple[int, datetime, str]]:
        """(order, due time, reference): escalations, signal-loss openings and rises, and
        protected persons' positions lost."""
        out: list[tuple[int, datetime, str]] = []
        sla = duration(policy.ack_sla_s)
        for a in self.alerts.values():
            if (
                a.priority == 1
                and a.p1_since is not None
                and a.state in (State.open, State.updated)
            ):
                out.append((0, a.p1_since + sla, a.alert_id))
        timeout = duration(policy.signal_timeout_s)
        for device, last in self.watch.items():
            if f"signal_lost|{device}" not in self.open:
                out.append((1, last.ts + timeout, device))
        for device, t in self.signal_rise.items():
            out.append((2, t, device))
        out.extend(self._lost_timers(policy))
        return out

    def tick(self, ctx: Ctx, now: datetime) -> None:
        """Fire every timer due at or before `now`, each at its own due time, in time order."""
        while True:
            due = sorted((t, order, ref) for order, t, ref in self._timers(ctx.policy) if t <= now)
            if not due:
                return
            t, order, ref = due[0]
            if order == 0:
                a = self.alerts[ref]
                ctx.out.append((ALERTS, a.alert_id, a.revision(t, State.escalated)))
                self._dispatch(ctx, a, t)
            elif order == 1:
                if ctx.ban.record.in_force(t):
                    self._signal_lost(ctx, ref, t)
                else:
                    del self.watch[ref]
            elif order == 2:
                self._signal_rises(ctx, ref, t)
            else:
                self._position_lost(ctx, ref, t)

    def prune(self, now: datetime, policy: Policy) -> list[str]:
        """Drop alerts nobody can act on any more: resolved ones after `resolved_retention_s`,
        acknowledged ones whose episode ended after `closed_retention_s`. Keeps a long-lived
        ban's state (and its snapshot) small. Returns the dropped alert ids."""
        gone = []
        live = set(self.open.values())
        for aid, a in self.alerts.items():
            if a.updated_at is None or aid in live:
                continue
            age = (now - a.updated_at).total_seconds()
            if (a.state is State.resolved and age >= policy.resolved_retention_s) or (
                a.state is State.acknowledged
                and a.episode == "ended"
                and age >= policy.closed_retention_s
            ):
                gone.append(aid)
        for aid in gone:
            del self.alerts[aid]
        return gone

    def forget_monitoring(self) -> None:
        """The ban was lifted: stop every timer that belongs to monitoring it."""
        self.watch.clear()
        self.signal_rise.clear()

    # ------------------------------------------------------ alert lifecycle
    def _new_alert(
        self,
        ctx: Ctx,
        kind: Kind,
        at: datetime,
        target: str,
        zone_id: str | None = None,
        protected_person: str | None = None,
    ) -> Alert:
        rec = ctx.ban.record
        # the n-th alert for this (kind, target) in this ban: two episodes opened at the same
        # event time (a second device, an out-of-order but in-device-order fix) stay distinct
        n = self.opened.get(f"{kind.value}|{target}", 0) + 1
        self.opened[f"{kind.value}|{target}"] = n
        a = Alert(
            alert_id=stable_id(self.ban_id, kind.value, target, rfc3339(at), str(n)),
            kind=kind,
            priority=2,
            confidence=None,
            ban_id=self.ban_id,
            ban_version=rec.version,
            restrained_person=rec.restrained_person,
            opened_at=at,
            reason="",
            zone_id=zone_id,
            protected_person=protected_person,
        )
        self.alerts[a.alert_id] = a
        return a

    def _refresh_units(self, ctx: Ctx, a: Alert, at: datetime) -> None:
        if a.position is None:
            a.recommended_units = []
            return
        recs = ctx.fleet.nearest(
            a.position["lat"], a.position["lon"], at, ctx.policy, ctx.policy.recommended_units
        )
        a.recommended_units = [r.as_value() for r in recs]

    def _step(
        self,
        ctx: Ctx,
        key: str,
        ep: Episode | None,
        tr: Transition,
        at: datetime,
        make: object,
        refresh: object,
        exit_reason: str,
    ) -> None:
        """Turn an episode transition into alert revisions and tasks."""
        assert callable(make) and callable(refresh)
        if tr is Transition.none:
            return
        pol = ctx.policy
        spans = self.spans.setdefault(key, deque(maxlen=32))
        if tr is Transition.enter or not spans:
            spans.append((at, at))
        else:
            spans[-1] = (spans[-1][0], at)
        if tr is Transition.exit:
            self.episodes.pop(key, None)
            aid = self.open.pop(key, None)
            if aid is not None:
                a = self.alerts[aid]
                refresh(a)
                a.episode = "ended"
                a.reason = exit_reason
                ctx.out.append((ALERTS, aid, a.revision(at)))
            return
        assert ep is not None
        self.episodes[key] = ep
        aid = self.open.get(key)
        if aid is None:
            a = make()
            a.confidence = ep.level.value
            a.set_priority(_priority(a.kind, ep.level) if a.kind is not Kind.approach else 2, at)
            refresh(a)
            self.open[key] = a.alert_id
            self._refresh_units(ctx, a, at)
            ctx.out.append((ALERTS, a.alert_id, a.revision(at)))
            self._dispatch(ctx, a, at)
            if ctx.knock is not None:
                ctx.out.extend(ctx.knock.observe(a, pol))
            return
        a = self.alerts[aid]
        if tr is Transition.rise:
            a.confidence = ep.level.value
            if a.kind is not Kind.approach:
                a.set_priority(min(a.priority, _priority(a.kind, ep.level)), at)
            refresh(a)
            self._refresh_units(ctx, a, at)
            ctx.out.append((ALERTS, aid, a.revision(at)))
            self._dispatch(ctx, a, at)
        elif a.updated_at is None or (at - a.updated_at).total_seconds() >= pol.update_interval_s:
            refresh(a)
            self._refresh_units(ctx, a, at)
            ctx.out.append((ALERTS, aid, a.revision(at)))
            self._dispatch(ctx, a, at)  # a respond task still owed (no unit was free) goes now

    def _dispatch(self, ctx: Ctx, a: Alert, at: datetime) -> None:
        dispatch(ctx.policy, ctx.fleet, a, at, ctx.out)

    # ---------------------------------------------------------- end of life
    def end_of_life(self, at: datetime, why: str) -> list[Output]:
        """The ban was lifted, revoked or its validity ended (rule 7): every alert not yet
        resolved gets a final revision, resolved by "system" with `why`; every episode and
        monitoring timer of the ban ends with it, so nothing escalates or dispatches after."""
        self.ended = at
        out: list[Output] = []
        for aid, a in self.alerts.items():
            if a.state is State.resolved:
                continue
            a.resolved_by = "system"
            a.episode = "ended"
            a.reason = why
            out.append((ALERTS, aid, a.revision(at, State.resolved)))
        self.episodes.clear()
        self.open.clear()
        self.approach.clear()
        self.closing_at.clear()
        self.forget_monitoring()
        return out

    def _position_lost(self, ctx: Ctx, key: str, at: datetime) -> None:
        """The protected person of this proximity or approach episode has not reported for
        `signal_timeout_s`: the episode ends (rule 7); the alert stays for the operator."""
        self.episodes.pop(key, None)
        self.closing_at.pop(key, None)
        aid = self.open.pop(key, None)
        if aid is None:
            return
        a = self.alerts[aid]
        a.episode = "ended"
        a.reason = "protected person's position lost"
        ctx.out.append((ALERTS, aid, a.revision(at)))


#: Episode keys that follow a protected person, and where her id starts in the key.
_PERSON_EPISODES = (("proximity_breach|", 17), ("approach|person:", 16))


def _followed_person(key: str) -> str | None:
    """The protected person a proximity or approach episode key follows, else None."""
    for prefix, n in _PERSON_EPISODES:
        if key.startswith(prefix):
            return key[n:]
    return None


def dispatch(policy: Policy, fleet: Fleet, a: Alert, at: datetime, out: list[Output]) -> None:
    """Tasks an alert calls for, each sent once: `respond` (+ `protect`) for priority 1, the
    follow-up chain for confirmed violations. `respond_sent` is also set on an incident's
    alerts that leave the response to another ban's alert (rule 9)."""
    pol = policy
    if a.priority == 1 and not a.respond_sent and a.position is not None:
        # No fresh available unit now: the respond task is not given up, it is tried again
        # with the alert's next revision (an update, the escalation).
        recs = fleet.nearest(a.position["lat"], a.position["lon"], at, pol, 1)
        if recs:
            a.respond_sent = True
            out.append(
                task(
                    "respond",
                    a,
                    at,
                    pol.respond_due_s,
                    unit_id=recs[0].unit_id,
                    target=(a.position["lat"], a.position["lon"]),
                )
            )
        pp = a.protected_position
        if pp is not None and recs:
            used = frozenset(r.unit_id for r in recs)
            recs2 = fleet.nearest(pp["lat"], pp["lon"], at, pol, 1, exclude=used)
            if recs2:
                out.append(
                    task(
                        "protect",
                        a,
                        at,
                        pol.respond_due_s,
                        unit_id=recs2[0].unit_id,
                        target=(pp["lat"], pp["lon"]),
                    )
                )
    if (
        a.kind in FOLLOW_UP_KINDS
        and a.confidence == Confidence.confirmed.value
        and not a.followups_sent
    ):
        a.followups_sent = True
        out.extend(follow_up_chain(a, at, pol))
