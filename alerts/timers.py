"""A ban's timers: escalation of priority-1 alerts, signal loss and its rise, protected
persons' positions lost, the acceptance deadline of unit tasks. The engine keeps one heap of
every ban's next deadline.
"""

from __future__ import annotations

from datetime import datetime

from alerts import tasklife
from alerts.banstate import BanState, Ctx
from alerts.detectors import signal
from alerts.lifecycle import dispatch, followed_person, position_lost
from alerts.model import ALERTS, State
from config.policy import Policy
from geofence.evaluation import duration


def next_deadline(st: BanState, policy: Policy) -> datetime | None:
    """The earliest due time of `_timers` (the first of equal ones), without building
    them: the engine asks after every input to the ban."""
    best: datetime | None = None
    if st.alerts:
        sla = duration(policy.ack_sla_s)
        for a in st.alerts.values():  # most are not priority 1, or already escalated
            if (
                a.p1_since is not None
                and (a.state is State.open or a.state is State.updated)
                and a.priority == 1
            ):
                t = a.p1_since + sla
                if best is None or t < best:
                    best = t
            due = a.offer_due  # a unit task awaiting acceptance
            if due is not None and (best is None or due < best):
                best = due
    if st.watch:
        timeout = duration(policy.signal_timeout_s)
        for device, last in st.watch.items():
            if not st.open or f"signal_lost|{device}" not in st.open:
                t = last.ts + timeout
                if best is None or t < best:
                    best = t
    for t in st.signal_rise.values():
        if best is None or t < best:
            best = t
    if st.open:
        for _, t, _ in lost_timers(st, policy):
            if best is None or t < best:
                best = t
    return best


def lost_timers(st: BanState, policy: Policy) -> list[tuple[int, datetime, str]]:
    """Proximity and approach episodes whose protected person's latest fix will be older
    than `signal_timeout_s`: (3, due time, episode key)."""
    out: list[tuple[int, datetime, str]] = []
    timeout = duration(policy.signal_timeout_s)
    for key in st.open:
        person = followed_person(key)
        if person is None:
            continue
        pf = st.last_fix.get(person)
        if pf is not None:
            out.append((3, pf.ts + timeout, key))
    return out


def timers(st: BanState, policy: Policy) -> list[tuple[int, datetime, str]]:
    """(order, due time, reference): escalations, signal-loss openings and rises,
    protected persons' positions lost, unit tasks' acceptance deadlines."""
    out: list[tuple[int, datetime, str]] = []
    sla = duration(policy.ack_sla_s)
    for a in st.alerts.values():
        if a.priority == 1 and a.p1_since is not None and a.state in (State.open, State.updated):
            out.append((0, a.p1_since + sla, a.alert_id))
        if a.offer_due is not None:
            out.append((4, a.offer_due, a.alert_id))
    timeout = duration(policy.signal_timeout_s)
    for device, last in st.watch.items():
        if f"signal_lost|{device}" not in st.open:
            out.append((1, last.ts + timeout, device))
    for device, t in st.signal_rise.items():
        out.append((2, t, device))
    out.extend(lost_timers(st, policy))
    return out


def tick(st: BanState, ctx: Ctx, now: datetime) -> None:
    """Fire every timer due at or before `now`, each at its own due time, in time order."""
    while True:
        due = sorted((t, order, ref) for order, t, ref in timers(st, ctx.policy) if t <= now)
        if not due:
            return
        t, order, ref = due[0]
        if order == 0:
            a = st.alerts[ref]
            tasklife.recommend(ctx.policy, ctx.fleet, a, t)  # busy units never listed
            ctx.out.append((ALERTS, a.alert_id, a.revision(t, State.escalated)))
            dispatch(ctx.policy, ctx.fleet, a, t, ctx.out, ctx.book)
        elif order == 1:
            if ctx.ban.record.in_force(t):
                signal.lost(st, ctx, ref, t)
            else:
                del st.watch[ref]
        elif order == 2:
            signal.rises(st, ctx, ref, t)
        elif order == 3:
            position_lost(st, ctx, ref, t)
        else:
            tasklife.expire(ctx.policy, ctx.fleet, st.alerts[ref], t, ctx.out)
