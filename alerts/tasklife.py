"""The life of an alert's `respond` and `protect` tasks (contract v2 "Tasks have a lifecycle").

A task goes to the nearest available unit that is not busy and was not asked for this alert
yet; it must be accepted within `task_accept_sla_s` (a timer on the engine's heap: the alert's
`offer_due`). Declined or expired, the next unit is asked at once (`attempt` + 1); when no unit
is free the offer is owed and made with the alert's next revision, like the first respond.
After `MAX_UNITS` units without acceptance the alert gets a revision saying so and escalates,
unless it is acknowledged (it stays so, and the reason says it); no further offer is made
automatically. A respond task accepted, on scene or done writes the alert's `response`, with a
revision. The tasks of an alert resolved before they are done are cancelled.

Outputs are appended to `out`; every task revision is told to the fleet (busy units) by
`tasks.emit`. Nothing here reads the clock.
"""

from __future__ import annotations

from datetime import datetime

from alerts.assignment import Fleet
from alerts.model import ALERTS, Alert, Output, State, rfc3339
from alerts.taskmodel import ACTION_STATE, RANK, Task, TaskState, answer
from alerts.tasks import emit, new_task
from config.policy import Policy
from geofence.evaluation import duration
from geofence.records import TaskUpdate

#: Units asked per alert and task kind before the alert says no unit accepted (contract v2).
MAX_UNITS = 3
_UNIT_KINDS = ("respond", "protect")


def recommend(policy: Policy, fleet: Fleet, a: Alert, at: datetime) -> None:
    """The alert's `recommended_units` as of `at`: the nearest free units to its position
    (busy ones never: alerts/assignment.py)."""
    if a.position is None:
        a.recommended_units = []
        return
    recs = fleet.nearest(
        a.position["lat"], a.position["lon"], at, policy, policy.recommended_units
    )
    a.recommended_units = [r.as_value() for r in recs]


def asked(a: Alert) -> frozenset[str]:
    """Every unit asked for this alert (either kind): none is asked twice."""
    return frozenset(t.unit_id for t in a.tasks if t.unit_id is not None)


def _of(a: Alert, kind: str) -> list[Task]:
    return [t for t in a.tasks if t.kind == kind]


def _target(a: Alert, kind: str) -> tuple[float, float] | None:
    p = a.position if kind == "respond" else a.protected_position
    return None if p is None else (p["lat"], p["lon"])


def offer(
    policy: Policy,
    fleet: Fleet,
    a: Alert,
    kind: str,
    at: datetime,
    out: list[Output],
    exclude: frozenset[str] = frozenset(),
) -> Task | None:
    """Offer the alert's next `kind` task to the nearest free unit not yet asked (and not in
    `exclude`); None when there is no such unit or `MAX_UNITS` were asked already."""
    n = len(_of(a, kind)) + 1
    target = _target(a, kind)
    if n > MAX_UNITS or target is None:
        return None
    recs = fleet.nearest(
        target[0], target[1], at, policy, 1, exclude=asked(a) | exclude, offer=True
    )
    if not recs:
        return None
    t = new_task(
        kind,
        a,
        at,
        policy.respond_due_s,
        unit_id=recs[0].unit_id,
        target=target,
        id_extra="" if n == 1 else f"attempt:{n}",
        attempt=n,
    )
    if fleet.now is not None and fleet.now > at:
        t.offered_at = fleet.now  # a unit cannot accept before it is asked
    a.tasks.append(t)
    emit(fleet, t, at, out)
    sync_due(a, policy)
    return t


def reoffer(policy: Policy, fleet: Fleet, a: Alert, at: datetime, out: list[Output]) -> None:
    """Offers still owed: a kind whose last task was declined or expired while no unit was
    free, and fewer than `MAX_UNITS` were asked; and the `protect` task of an alert whose
    respond went out when no second unit was free (the protected person's position known)."""
    if not a.tasks or not a.is_live:
        return
    for kind in _UNIT_KINDS:
        mine = _of(a, kind)
        if mine and len(mine) < MAX_UNITS and mine[-1].state in _UNANSWERED:
            offer(policy, fleet, a, kind, at, out)
        elif not mine and kind == "protect" and _of(a, "respond"):
            offer(policy, fleet, a, kind, at, out)  # None while no unit is free


_UNANSWERED = frozenset({TaskState.declined, TaskState.expired})


def sync_due(a: Alert, policy: Policy) -> None:
    """`offer_due`: the earliest acceptance deadline among the alert's unanswered tasks."""
    sla = duration(policy.task_accept_sla_s)
    due = None
    for t in a.tasks:
        if t.state is TaskState.assigned:
            d = t.offer_start + sla
            if due is None or d < due:
                due = d
    a.offer_due = due


def expire(policy: Policy, fleet: Fleet, a: Alert, now: datetime, out: list[Output]) -> None:
    """Every unanswered task whose acceptance deadline is at or before `now` expires at its
    deadline, and the next unit is asked."""
    sla = duration(policy.task_accept_sla_s)
    for t in list(a.tasks):
        if t.state is TaskState.assigned and t.offer_start + sla <= now:
            at = t.offer_start + sla
            emit(fleet, t, at, out, TaskState.expired)
            _next(policy, fleet, a, t, at, out)
    sync_due(a, policy)


def _next(policy: Policy, fleet: Fleet, a: Alert, t: Task, at: datetime, out: list[Output]) -> None:
    """`t` was declined or expired at `at`: ask the next unit, or say that none accepted."""
    if not a.is_live:
        return
    if len(_of(a, t.kind)) < MAX_UNITS:
        offer(policy, fleet, a, t.kind, at, out)
        return
    if any(x.state in _ANSWERED for x in _of(a, t.kind)):
        return
    # said after what the alert is about (its reason so far), until a detector rewrites it
    why = f"no unit accepted the {t.kind} task: {MAX_UNITS} units asked"
    recommend(policy, fleet, a, at)
    if a.state is State.acknowledged:
        why += ", the alert stays acknowledged"
    elif a.state is State.escalated:
        why += ", the alert is escalated"
    else:
        why += ", escalated"
    a.reason = f"{a.reason}; {why}" if a.reason else why
    state = State.escalated if a.state in (State.open, State.updated) else None
    out.append((ALERTS, a.alert_id, a.revision(at, state)))


_ANSWERED = frozenset({TaskState.accepted, TaskState.en_route, TaskState.on_scene, TaskState.done})


def update(
    policy: Policy, fleet: Fleet, a: Alert, t: Task, upd: TaskUpdate, out: list[Output]
) -> str | None:
    """Apply a unit's answer to its task; why it is not allowed (an `invalid_transition`), or
    None once applied. Any move forward from `assigned` other than a decline is acceptance."""
    if upd.role != "patrol" or upd.by != t.unit_id:
        return f"by/role: the task is for patrol unit {t.unit_id}"
    at, why = answer(t, upd.action.value, upd.outcome, upd.ts, policy.max_future_skew_s, True)
    if why is not None:
        return why
    target = ACTION_STATE[upd.action.value]
    was = t.state
    if target is TaskState.done:
        t.outcome = upd.outcome
    emit(fleet, t, at, out, target)
    sync_due(a, policy)
    if target is TaskState.declined:
        _next(policy, fleet, a, t, at, out)
        return None
    if t.kind != "respond":
        return None
    r = a.response
    changed = False
    if was is TaskState.assigned or r is None or r.get("unit_id") != t.unit_id:
        r = a.response = {
            "unit_id": t.unit_id,
            "accepted_at": rfc3339(at),
            "on_scene_at": None,
            "outcome": None,
        }
        changed = True
    if target is TaskState.on_scene and RANK[was] < RANK[TaskState.on_scene]:
        r["on_scene_at"] = rfc3339(at)
        changed = True
    if target is TaskState.done:
        r["outcome"] = t.outcome
        changed = True
    if changed:
        recommend(policy, fleet, a, at)
        out.append((ALERTS, a.alert_id, a.revision(at)))
    return None


def cancel(policy: Policy, fleet: Fleet, a: Alert, at: datetime, out: list[Output]) -> None:
    """The alert was resolved: every task of it not yet at an end is cancelled (its unit is
    free again)."""
    for t in a.tasks:
        if not t.final:
            emit(fleet, t, at, out, TaskState.cancelled)
    a.offer_due = None


def find(a: Alert, task_id: str) -> Task | None:
    for t in a.tasks:
        if t.task_id == task_id:
            return t
    return None
