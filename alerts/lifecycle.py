"""The life of a ban's alerts: opened, revised, escalated, acknowledged, ended, pruned.

An episode step (`EpisodeStep`: a detector's transition of one episode) becomes alert revisions
and tasks here (`step`); `dispatch` offers the unit tasks an alert calls for (their life is
alerts/tasklife.py's) and opens the outreach chain (alerts/outreach.py); `end_of_life`
resolves every alert when the ban's life ends (contract v2 rule 7); `prune` drops alerts
nobody can act on any more. Outputs are appended to `ctx.out`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from alerts import tasklife
from alerts.assignment import Fleet
from alerts.banstate import BanState, Ctx
from alerts.model import ALERTS, POSITION_LOST, Alert, Kind, Output, State, rfc3339, stable_id
from alerts.outreach import OutreachBook
from alerts.tasks import FOLLOW_UP_KINDS, emit
from config.policy import Policy
from geofence.evaluation import Confidence, Episode, Transition
from geofence.records import AlertAction


@dataclass(slots=True)
class EpisodeStep:
    """One detector's transition of one episode: `key` (e.g. "zone_breach|home"), the episode
    after it (`ep`, None once it exited), the transition `tr` at event time `at`; `make`
    opens the episode's alert, `refresh` writes what the detector measured onto it, and
    `exit_reason` is the alert's reason when the episode ends."""

    key: str
    ep: Episode | None
    tr: Transition
    at: datetime
    make: Callable[[], Alert]
    refresh: Callable[[Alert], None]
    exit_reason: str


def priority(kind: Kind, conf: Confidence) -> int:
    return 1 if conf is not Confidence.possible else 2


def apply_action(st: BanState, ctx: Ctx, act: AlertAction) -> None:
    a = st.alerts[act.alert_id]
    if act.action == "acknowledge" and a.state is not State.resolved:
        tasklife.recommend(ctx.policy, ctx.fleet, a, act.ts)  # busy units never listed
    revision = a.act(act.action, act.by, act.ts)
    if revision is None:
        return
    ctx.out.append((ALERTS, a.alert_id, revision))
    if a.state is State.resolved:  # resolution ends the alert's episode and its tasks
        for key, aid in list(st.open.items()):
            if aid == a.alert_id:
                del st.open[key]
                st.episodes.pop(key, None)
                st.closing_at.pop(key, None)
        tasklife.cancel(ctx.policy, ctx.fleet, a, a.updated_at or act.ts, ctx.out)


def prune(st: BanState, now: datetime, policy: Policy) -> list[str]:
    """Drop alerts nobody can act on any more: resolved ones after `resolved_retention_s`,
    acknowledged ones whose episode ended after `closed_retention_s`. Keeps a long-lived
    ban's state (and its snapshot) small. Returns the dropped alert ids."""
    gone = []
    live = set(st.open.values())
    for aid, a in st.alerts.items():
        if a.updated_at is None or aid in live:
            continue
        if a.tasks and any(not t.final for t in a.tasks):
            continue  # a unit still works on it: its task must stay answerable
        age = (now - a.updated_at).total_seconds()
        if (a.state is State.resolved and age >= policy.resolved_retention_s) or (
            a.state is State.acknowledged
            and a.episode == "ended"
            and age >= policy.closed_retention_s
        ):
            gone.append(aid)
    for aid in gone:
        del st.alerts[aid]
    return gone


def forget_monitoring(st: BanState) -> None:
    """The ban was lifted: stop every timer that belongs to monitoring it."""
    st.watch.clear()
    st.signal_rise.clear()


def new_alert(
    st: BanState,
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
    n = st.opened.get(f"{kind.value}|{target}", 0) + 1
    st.opened[f"{kind.value}|{target}"] = n
    a = Alert(
        alert_id=stable_id(st.ban_id, kind.value, target, rfc3339(at), str(n)),
        kind=kind,
        priority=2,
        confidence=None,
        ban_id=st.ban_id,
        ban_version=rec.version,
        restrained_person=rec.restrained_person,
        opened_at=at,
        reason="",
        zone_id=zone_id,
        protected_person=protected_person,
    )
    st.alerts[a.alert_id] = a
    return a


def refresh_units(ctx: Ctx, a: Alert, at: datetime) -> None:
    tasklife.recommend(ctx.policy, ctx.fleet, a, at)


def step(st: BanState, ctx: Ctx, s: EpisodeStep) -> None:
    """Turn an episode transition into alert revisions and tasks."""
    key, ep, tr, at, refresh = s.key, s.ep, s.tr, s.at, s.refresh
    if tr is Transition.none:
        return
    pol = ctx.policy
    spans = st.spans.setdefault(key, deque(maxlen=32))
    if tr is Transition.enter or not spans:
        spans.append((at, at))
    else:
        spans[-1] = (spans[-1][0], at)
    if tr is Transition.exit:
        st.episodes.pop(key, None)
        aid = st.open.pop(key, None)
        if aid is not None:
            a = st.alerts[aid]
            refresh(a)
            a.episode = "ended"
            a.reason = s.exit_reason
            ctx.out.append((ALERTS, aid, a.revision(at)))
        return
    assert ep is not None
    st.episodes[key] = ep
    aid = st.open.get(key)
    if aid is None:
        a = s.make()
        a.confidence = ep.level.value
        a.set_priority(priority(a.kind, ep.level) if a.kind is not Kind.approach else 2, at)
        refresh(a)
        st.open[key] = a.alert_id
        refresh_units(ctx, a, at)
        ctx.out.append((ALERTS, a.alert_id, a.revision(at)))
        dispatch(ctx.policy, ctx.fleet, a, at, ctx.out, ctx.book)
        if ctx.knock is not None:
            for t in ctx.knock.observe(a, pol):
                if ctx.book is not None:
                    ctx.book.knock(ctx.fleet, t, at, ctx.out)
                else:
                    emit(ctx.fleet, t, at, ctx.out)
        return
    a = st.alerts[aid]
    if tr is Transition.rise:
        a.confidence = ep.level.value
        if a.kind is not Kind.approach:
            a.set_priority(min(a.priority, priority(a.kind, ep.level)), at)
        refresh(a)
        refresh_units(ctx, a, at)
        ctx.out.append((ALERTS, aid, a.revision(at)))
        dispatch(ctx.policy, ctx.fleet, a, at, ctx.out, ctx.book)
    elif a.updated_at is None or (at - a.updated_at).total_seconds() >= pol.update_interval_s:
        refresh(a)
        refresh_units(ctx, a, at)
        ctx.out.append((ALERTS, aid, a.revision(at)))
        # a respond task still owed (no unit was free) goes now
        dispatch(ctx.policy, ctx.fleet, a, at, ctx.out, ctx.book)


def end_of_life(
    st: BanState, at: datetime, why: str, policy: Policy, fleet: Fleet
) -> list[Output]:
    """The ban was lifted, revoked or its validity ended (rule 7): every alert not yet
    resolved gets a final revision, resolved by "system" with `why`, and its unit tasks are
    cancelled; every episode and monitoring timer of the ban ends with it, so nothing
    escalates or dispatches after."""
    st.ended = at
    out: list[Output] = []
    for aid, a in st.alerts.items():
        if a.state is State.resolved:
            continue
        a.resolved_by = "system"
        a.episode = "ended"
        a.reason = why
        out.append((ALERTS, aid, a.revision(at, State.resolved)))
        tasklife.cancel(policy, fleet, a, at, out)
    st.episodes.clear()
    st.open.clear()
    st.approach.clear()
    st.closing_at.clear()
    forget_monitoring(st)
    return out


def position_lost(st: BanState, ctx: Ctx, key: str, at: datetime) -> None:
    """The protected person of this proximity or approach episode has not reported for
    `signal_timeout_s`: the episode ends (rule 7); the alert stays for the operator."""
    st.episodes.pop(key, None)
    st.closing_at.pop(key, None)
    aid = st.open.pop(key, None)
    if aid is None:
        return
    a = st.alerts[aid]
    a.episode = "ended"
    a.reason = POSITION_LOST
    ctx.out.append((ALERTS, aid, a.revision(at)))


#: Episode keys that follow a protected person, and where her id starts in the key.
PERSON_EPISODES = (("proximity_breach|", 17), ("approach|person:", 16))


def followed_person(key: str) -> str | None:
    """The protected person a proximity or approach episode key follows, else None."""
    for prefix, n in PERSON_EPISODES:
        if key.startswith(prefix):
            return key[n:]
    return None


def dispatch(
    policy: Policy,
    fleet: Fleet,
    a: Alert,
    at: datetime,
    out: list[Output],
    book: OutreachBook | None = None,
) -> None:
    """Tasks an alert calls for: `respond` (+ `protect`) for priority 1, each first offered
    once (alerts/tasklife.py then asks the next unit as needed), and for a confirmed
    violation the restrained person's outreach chain (alerts/outreach.py), once per alert.
    `respond_sent` is also set on an incident's alerts that leave the response to another
    ban's alert (rule 9)."""
    if a.priority == 1 and not a.respond_sent and a.position is not None:
        # No fresh available unit now: the respond task is not given up, it is tried again
        # with the alert's next revision (an update, the escalation).
        t = tasklife.offer(policy, fleet, a, "respond", at, out)
        if t is not None:
            a.respond_sent = True
            if a.protected_position is not None:
                tasklife.offer(policy, fleet, a, "protect", at, out)
    elif a.tasks:
        tasklife.reoffer(policy, fleet, a, at, out)
    if (
        a.kind in FOLLOW_UP_KINDS
        and a.confidence == Confidence.confirmed.value
        and not a.followups_sent
        and book is not None
    ):
        a.followups_sent = True
        book.violation(policy, fleet, a, at, out)
