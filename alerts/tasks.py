"""Tasks for patrol units and follow-up roles, and the `knock` rule.

Patrol-facing tasks carry only what the unit needs: where to go, the ban id, the priority.
Never zone geometry, never the protected person's home, never incident free text.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from alerts.model import CONTRACT_VERSION, TASKS, Alert, Kind, Output, Value, rfc3339, stable_id
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
    "referral": "Refer the case for municipal social services follow-up (contact ban {ban}).",
    "knock": "Proactive doorstep visit to the restrained person: repeated approaches "
    "(contact ban {ban}).",
}


def task(
    kind: str,
    alert: Alert,
    at: datetime,
    due_s: float,
    unit_id: str | None = None,
    role: str | None = None,
    target: tuple[float, float] | None = None,
    id_extra: str = "",
) -> Output:
    value: Value = {
        "task_id": stable_id("task", alert.alert_id, kind, id_extra),
        "alert_id": alert.alert_id,
        "kind": kind,
        "priority": alert.priority,
        "unit_id": unit_id,
        "role": role,
        "ban_id": alert.ban_id,
        "target": None
        if target is None
        else {"lat": round(target[0], 6), "lon": round(target[1], 6)},
        "created_at": rfc3339(at),
        "due_by": rfc3339(at + timedelta(seconds=due_s)),
        "instructions": _INSTRUCTIONS[
            "respond_incident" if kind == "respond" and alert.incident_id is not None else kind
        ].format(
            p=alert.priority, ban=alert.ban_id or "unknown", kind=alert.kind.value
        ),
        "contract_version": CONTRACT_VERSION,
    }
    return (TASKS, unit_id or role, value)


def follow_up_chain(alert: Alert, at: datetime, policy: Policy) -> list[Output]:
    """interview (investigator), motivational talk (negotiator), referral (social services)."""
    return [
        task("interview", alert, at, policy.interview_due_s, role="investigator"),
        task("motivational_talk", alert, at, policy.motivational_talk_due_s, role="negotiator"),
        task("referral", alert, at, policy.referral_due_s, role="social_services"),
    ]


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

    def observe(self, alert: Alert, policy: Policy) -> list[Output]:
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
            task(
                "knock",
                alert,
                at,
                policy.interview_due_s,
                role="outreach",
                id_extra=rfc3339(at),
            )
        ]

    def persons(self) -> list[str]:
        """Everyone with a count or a last counted event."""
        return list(dict.fromkeys([*self._seen, *self._last]))
