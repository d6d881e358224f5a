"""What a console user may do to a task (CONTRACT.md v2, "Tasks have a lifecycle"): who may
answer which task, which action is valid from which state, which outcomes each kind has.

The stream worker is the judge: an update it finds invalid goes to `dead-letters`
(`invalid_transition`). The console checks the same rules first so that it never offers, and
never publishes, an update the worker would reject; a refused request says why (400).

Rules as the console applies them:
- a patrol token answers the tasks of its own unit (`unit_id`), a follow-up role the tasks of
  its role (`role`); nobody else answers tasks (dispatchers and viewers watch);
- states only move forward; a step may skip states; nothing moves a task that has ended
  (`done`, `declined`, `expired`, `cancelled`);
- `decline` answers an offer: only a unit's `respond` or `protect` task, only while `assigned`;
- a follow-up role's task goes `assigned` -> `done`, or via `accepted` (no `en_route`,
  `on_scene` or `decline`: the contract moves role tasks on by outcome, not to another unit);
- `done` needs an outcome from the kind's closed set; other actions carry none;
- `consent_to_share` (true or false, asked explicitly) goes with `done` + `held_accepts_help`
  on a `motivational_talk` and nowhere else.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.taskmodel import ACTION_STATE, FINAL, OUTCOMES, UNIT_KINDS
from alerts.taskmodel import RANK as _RANK
from config.settings import FOLLOW_UP_ROLES, Principal

#: The transition table is the core's (alerts/taskmodel.py): the console applies the same one.
ACTIONS = tuple(ACTION_STATE)
#: The state an action moves a task to.
TARGET = {action: state.value for action, state in ACTION_STATE.items()}
#: Forward order of the live states; the end states come after all of them.
RANK = {state.value: rank for state, rank in _RANK.items() if state not in FINAL}
ENDED = frozenset(state.value for state in FINAL)
#: The actions a follow-up role has (its tasks are not driven to).
ROLE_ACTIONS = ("accept", "done")
CONSENT_OUTCOME = ("motivational_talk", "held_accepts_help")

Task = Mapping[str, Any]


class Refused(Exception):
    """An update the console will not send; `status` 403 (not this user's task) or 400."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def state_of(task: Task) -> str:
    """The task's state; a task without one (contract v1) is as first assigned."""
    state = task.get("state")
    return state if isinstance(state, str) else "assigned"


def may_answer(who: Principal, task: Task) -> bool:
    """Whether `who` answers this task: a unit its own unit's, a follow-up role its role's."""
    if who.role == "patrol":
        return who.unit is not None and task.get("unit_id") == who.unit and not task.get("role")
    if who.role in FOLLOW_UP_ROLES:
        return task.get("role") == who.role
    return False


def valid_actions(task: Task, state: str | None = None) -> list[str]:
    """The actions valid from `state` (default: the task's own), in the contract's order."""
    state = state_of(task) if state is None else state
    if state in ENDED or state not in RANK:
        return []
    unit_task = task.get("kind") in UNIT_KINDS and not task.get("role")
    out = []
    for action in ACTIONS if unit_task else ROLE_ACTIONS:
        if action == "decline":
            if state == "assigned":
                out.append(action)
        elif RANK[state] < RANK.get(TARGET[action], 99):
            out.append(action)
    return out


def check(task: Task, state: str, action: str, outcome: object, consent: object) -> None:
    """Raise `Refused` (400) unless `action` with `outcome` and `consent` is valid from `state`
    for this task (the caller has checked who may answer it)."""
    kind = str(task.get("kind"))
    if action not in ACTIONS:
        raise Refused(400, f"action: one of {', '.join(ACTIONS)}")
    if state in ENDED:
        raise Refused(400, f"the task has ended ({state}): nothing more can be reported on it")
    valid = valid_actions(task, state)
    if action not in valid:
        allowed = ", ".join(valid) or "none"
        raise Refused(400, f"{action} is not valid for a {kind} task that is {state} ({allowed})")
    if action == "done":
        outcomes = OUTCOMES.get(kind, ())
        if outcome not in outcomes:
            raise Refused(400, f"outcome: one of {', '.join(outcomes)} for a {kind} task")
    elif outcome is not None:
        raise Refused(400, "outcome: only with done")
    if consent is not None and not isinstance(consent, bool):
        raise Refused(400, "consent_to_share: true, false or null")
    asks_consent = action == "done" and (kind, outcome) == CONSENT_OUTCOME
    if asks_consent and consent is None:
        raise Refused(
            400,
            "consent_to_share: say explicitly whether the person agrees that social services "
            "may be told (true or false)",
        )
    if not asks_consent and consent is not None:
        raise Refused(
            400, "consent_to_share: only with done, held_accepts_help on a motivational talk"
        )
