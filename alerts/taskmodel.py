"""A task as the engine holds it (contract v2 "Tasks have a lifecycle"): data and the rules of
its states, nothing else.

The table of transitions lives here so that the engine, the tests and the documentation read
one copy: states only move forward along `assigned` → `accepted` → `en_route` → `on_scene` →
`done` (a step may skip states); `declined`, `expired`, `cancelled` and `done` are final.
Rendering a revision and what follows from it live in alerts/tasklife.py (units) and
alerts/outreach.py (roles). Pure data: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    assigned = "assigned"
    accepted = "accepted"
    en_route = "en_route"
    on_scene = "on_scene"
    done = "done"
    declined = "declined"
    expired = "expired"
    cancelled = "cancelled"


#: Where each state stands on the one forward path (the end states other than `done` leave it).
RANK = {
    TaskState.assigned: 0,
    TaskState.accepted: 1,
    TaskState.en_route: 2,
    TaskState.on_scene: 3,
    TaskState.done: 4,
}
FINAL = frozenset({TaskState.done, TaskState.declined, TaskState.expired, TaskState.cancelled})
#: A unit holding a task in one of these is busy (never recommended nor tasked).
ACTIVE = frozenset({TaskState.accepted, TaskState.en_route, TaskState.on_scene})
#: ... and is not offered a new respond/protect task while it holds an unanswered one either.
HOLDING = ACTIVE | {TaskState.assigned}

#: The state each action of a TaskUpdate moves a task to.
ACTION_STATE = {
    "accept": TaskState.accepted,
    "decline": TaskState.declined,
    "en_route": TaskState.en_route,
    "on_scene": TaskState.on_scene,
    "done": TaskState.done,
}

#: The closed set of outcomes per task kind (contract v2), in the contract's order (the console
#: offers them in this order).
_RESPONSE = ("contact_made", "not_found", "arrested", "protected_safe", "false_alarm")
OUTCOMES: dict[str, tuple[str, ...]] = {
    "respond": _RESPONSE,
    "protect": _RESPONSE,
    "interview": ("held", "not_reached", "refused"),
    "motivational_talk": ("held_accepts_help", "held_declines_help", "not_reached", "refused"),
    "referral": ("contact_made", "declined", "not_reached"),
    "knock": ("contact_made", "not_home"),
}

UNIT_KINDS = frozenset({"respond", "protect"})
ROLE_KINDS = frozenset({"interview", "motivational_talk", "referral", "knock"})


def check(
    kind: str, state: TaskState, action: str, outcome: str | None, declinable: bool
) -> str | None:
    """Why the transition `action` (with `outcome`) from `state` is not allowed for a task of
    `kind`, or None when it is. `declinable`: whether the task may be declined (unit tasks,
    before they are accepted)."""
    if state in FINAL:
        return f"task is {state.value}: no update after an end state"
    target = ACTION_STATE[action]
    if target is TaskState.declined:
        if not declinable or state is not TaskState.assigned:
            return f"a {kind} task that is {state.value} cannot be declined"
        return None if outcome is None else "outcome: only with done"
    if RANK[target] <= RANK[state]:
        return f"{action}: task is already {state.value} (states only move forward)"
    if target is TaskState.done:
        if outcome is None:
            return f"outcome: done needs one of {', '.join(sorted(OUTCOMES[kind]))}"
        if outcome not in OUTCOMES[kind]:
            return f"outcome: not one of {', '.join(sorted(OUTCOMES[kind]))} for a {kind} task"
        return None
    return None if outcome is None else "outcome: only with done"


def answer_time(t: Task, ts: datetime, skew_s: float) -> tuple[datetime, str | None]:
    """When an update dated `ts` is taken to have happened, or why it is out of order: dated
    more than `skew_s` (clocks of consoles and car terminals differ) before the task was
    created or before the update applied before it. Within the skew it is stamped at that
    earlier time, so a task's and its alert's times never run backwards."""
    floor = t.created_at if t.answered_at is None else t.answered_at
    if (floor - ts).total_seconds() > skew_s:
        before = "its creation" if t.answered_at is None else "the update applied before it"
        return floor, (
            f"ts: {ts.isoformat()} is before {before} ({floor.isoformat()}): out of order"
        )
    return max(ts, floor), None


def answer(
    t: Task, action: str, outcome: str | None, ts: datetime, skew_s: float, declinable: bool
) -> tuple[datetime, str | None]:
    """Check an update (`check`, then `answer_time`) and, when it is allowed, note when it
    was answered: (the time to stamp it with, None), or (_, why it is `invalid_transition`)."""
    why = check(t.kind, t.state, action, outcome, declinable)
    if why is not None:
        return ts, why
    at, why = answer_time(t, ts, skew_s)
    if why is None:
        t.answered_at = at
    return at, why


@dataclass(slots=True)
class Task:
    """Mutable state of one task; `seq` counts its published revisions (the first is 1).

    `attempt`: for respond/protect the n-th unit asked for the alert (1..3), for an outreach
    step the n-th try of that step (1 + its retries after `not_reached`). `violations`: the
    chain's count, on interview and motivational-talk tasks. `chain`: on a referral, the task
    ids of the interview and talk that led to it."""

    task_id: str
    kind: str
    alert_id: str | None
    priority: int
    unit_id: str | None
    role: str | None
    ban_id: str | None
    target: dict[str, Any] | None
    created_at: datetime
    due_by: datetime
    instructions: str
    restrained_person: str | None = None
    attempt: int | None = None
    violations: int | None = None
    chain: list[str] = field(default_factory=list)
    state: TaskState = TaskState.assigned
    seq: int = 0
    updated_at: datetime | None = None
    outcome: str | None = None
    consent_to_share: bool | None = None  # as recorded with a motivational talk's outcome
    # respond/protect: when the unit was asked (the caller's clock when that is later than the
    # alert's event time: a late incident, a worker catching up); the acceptance SLA counts
    # from here. None: from `created_at`.
    offered_at: datetime | None = None
    # the time of the last TaskUpdate applied (as `answer_time` stamped it)
    answered_at: datetime | None = None

    @property
    def offer_start(self) -> datetime:
        return self.created_at if self.offered_at is None else self.offered_at

    @property
    def final(self) -> bool:
        return self.state in FINAL
