"""Tasks for patrol units and follow-up roles, how a revision is rendered, and the `knock` rule.

Patrol-facing tasks carry only what the unit needs: where to go, the ban id, the priority.
Never zone geometry, never the protected person's home, never incident free text.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from alerts.assignment import Fleet
from alerts.model import CONTRACT_VERSION, TASKS, Alert, Kind, Output, Value, rfc3339, stable_id
from alerts.taskmodel import Task, TaskState
from config.policy import Policy

FOLLOW_UP_KINDS = frozenset({Kind.zone_breach, Kind.proximity_breach, Kind.reported_contact})

_INSTRUCTIONS = {
    "respond": "Priority {p}: go to the restrained person's last known position "
    "(contact ban {ban}, {kind}). Report on arrival.",
    # an incident's respond goes to the incident's position, else to the restrained person
    "respond_incident": "Priority {p}: go to the position given ({kind} incident, "
    "contact ban {ban}). Report on arrival.",
    "protect": "Priority {p}: go to the protected person's position and secure their safety "
    "(contact ban {ban}, {kind}).",
    "interview": "Interview the restrained person about the violation of contact ban {ban}.",
    "motivational_talk": "Motivational talk with the restrained person (contact ban {ban}).",
    "knock": "Proactive doorstep visit to the restrained person: repeated approaches "
    "(contact ban {ban}).",
}


#: A referral's instructions: one fixed sentence, nothing about the case (contract v2).
REFERRAL_INSTRUCTIONS = (
    "Social services follow-up: the person accepted help in a motivational talk and consented "
    "to this referral. Contact them to offer support."
)


def role_instructions(kind: str, ban_id: str | None) -> str:
    """The instructions of an interview, motivational talk or knock task."""
    return _INSTRUCTIONS[kind].format(p="", ban=ban_id or "unknown", kind="")


def new_task(
    kind: str,
    alert: Alert,
    at: datetime,
    due_s: float,
    unit_id: str | None = None,
    role: str | None = None,
    target: tuple[float, float] | None = None,
    id_extra: str = "",
    attempt: int | None = None,
) -> Task:
    """A task in state `assigned`, not yet published (see `emit`). Its id is derived from the
    alert, the kind and `id_extra` only: the same log always gives the same ids."""
    return Task(
        task_id=stable_id("task", alert.alert_id, kind, id_extra),
        kind=kind,
        alert_id=alert.alert_id,
        priority=alert.priority,
        unit_id=unit_id,
        role=role,
        ban_id=alert.ban_id,
        target=None if target is None else {"lat": round(target[0], 6), "lon": round(target[1], 6)},
        created_at=at,
        due_by=at + timedelta(seconds=due_s),
        instructions=_INSTRUCTIONS[
            "respond_incident" if kind == "respond" and alert.incident_id is not None else kind
        ].format(p=alert.priority, ban=alert.ban_id or "unknown", kind=alert.kind.value),
        restrained_person=None if unit_id is not None else alert.restrained_person,
        attempt=attempt,
    )


def render(t: Task) -> Value:
    """The task's current revision as the contract publishes it. A referral carries only its
    ids, the ban, the person's pseudonym and the role: no alert, unit, position or text."""
    referral = t.kind == "referral"
    v: Value = {
        "task_id": t.task_id,
        "alert_id": None if referral else t.alert_id,
        "kind": t.kind,
        "seq": t.seq,
        "state": t.state.value,
        "priority": t.priority,
        "unit_id": None if referral else t.unit_id,
        "role": t.role,
        "ban_id": t.ban_id,
    }
    if t.unit_id is None:  # role tasks
        v["restrained_person"] = t.restrained_person
    v["target"] = None if referral else t.target
    v["created_at"] = rfc3339(t.created_at)
    v["due_by"] = rfc3339(t.due_by)
    v["updated_at"] = None if t.updated_at is None else rfc3339(t.updated_at)
    v["outcome"] = t.outcome
    if referral:
        v["chain"] = list(t.chain)
        v["instructions"] = REFERRAL_INSTRUCTIONS
    else:
        v["attempt"] = t.attempt
        if t.violations is not None:
            v["violations"] = t.violations
        v["instructions"] = t.instructions
    v["contract_version"] = CONTRACT_VERSION
    return v


def emit(
    fleet: Fleet, t: Task, at: datetime, out: list[Output], state: TaskState | None = None
) -> None:
    """Publish the task's next revision (`seq` + 1) at `at` (never before its last one), in
    `state` if given, and tell the fleet (a unit's tasks make it busy)."""
    t.seq += 1
    if state is not None:
        t.state = state
    if t.updated_at is None or at > t.updated_at:
        t.updated_at = at
    v = render(t)
    fleet.note_task(v)
    out.append((TASKS, t.unit_id or t.role, v))


class KnockTracker:
    """Counts approach *events* per restrained person (contract v2 rule 6):
    `knock_after_approaches` of them within `knock_window_s` raise one `knock` task, then the
    count starts again. An approach alert that opens within `knock_event_gap_s` of the last
    counted one (any ban, zone or protected person) is the same event and is not counted.

    `_seen`: per person, the counted events since the last knock (oldest first); `_last`: the
    last counted event, kept across a knock so that the gap still applies after it."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[datetime]] = {}
        self._last: dict[str, datetime] = {}

    def observe(self, alert: Alert, policy: Policy) -> list[Task]:
        """The knock task `alert` raises (not yet published), if any."""
        if alert.kind is not Kind.approach or alert.restrained_person is None:
            return []
        person, at = alert.restrained_person, alert.opened_at
        last = self._last.get(person)
        if last is not None and abs((at - last).total_seconds()) < policy.knock_event_gap_s:
            return []  # the same approach event
        self._last[person] = at
        window = timedelta(seconds=policy.knock_window_s)
        q = self._seen.setdefault(person, deque())
        q.append(at)
        while q and q[0] <= at - window:
            q.popleft()
        if len(q) < policy.knock_after_approaches:
            return []
        q.clear()
        return [
            new_task(
                "knock",
                alert,
                at,
                policy.interview_due_s,
                role="outreach",
                id_extra=rfc3339(at),
                attempt=1,
            )
        ]

    def persons(self) -> list[str]:
        """Everyone with a count or a last counted event."""
        return list(dict.fromkeys([*self._seen, *self._last]))
