"""Records folded into one summary per alert, per task and per dead letter.

Order-independent: revisions and updates may come in any order (a replay's output concatenated
with its input log, a store query), and a record stored twice counts once. Every "first time"
is the minimum over the revisions that show it, never "the first one read".

What is kept is only what the figures need: kinds, states, times, outcomes, and the pseudonym
of the person a record concerns (to count persons, never published). Positions, reasons and
notes are read (a reason to spot implausible fixes, a position's time for signal loss) and
dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

#: Alert kinds that are a violation of the ban and open the outreach chain when confirmed.
VIOLATION_KINDS = frozenset({"zone_breach", "proximity_breach", "reported_contact"})
#: Task kinds that send a patrol unit.
UNIT_TASKS = frozenset({"respond", "protect"})
#: Task states in the order a task moves through them (v2); the last four end a task.
TASK_ORDER = {
    "assigned": 0,
    "accepted": 1,
    "en_route": 2,
    "on_scene": 3,
    "done": 4,
    "declined": 4,
    "expired": 4,
    "cancelled": 4,
}
#: Task outcomes of contract v2 (any other word from a record is published as `other`).
OUTCOMES = frozenset(
    {
        "contact_made",
        "not_found",
        "arrested",
        "protected_safe",
        "false_alarm",
        "held",
        "not_reached",
        "refused",
        "held_accepts_help",
        "held_declines_help",
        "declined",
        "not_home",
    }
)
#: The word in an alert's `reason` by which rule 3 of contract v2 says a fix was implausible.
IMPLAUSIBLE = "implausible"


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 timestamp with an offset, or None (missing, not a string, naive, invalid)."""
    if not isinstance(text, str):
        return None
    try:
        t = datetime.fromisoformat(text)  # Python 3.11 reads "Z" and fractions of any length
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def word(x: Any, known: frozenset[str] | None = None) -> str:
    """A closed-set word from a record, safe to publish: a known word, or `other`/`unknown`
    (a record's text never reaches the report)."""
    if not isinstance(x, str):
        return "unknown"
    if known is not None:
        return x if x in known else "other"
    return _word(x)


@lru_cache(maxsize=256)
def _word(x: str) -> str:
    return x if _WORD.fullmatch(x) else "other"


_WORD = re.compile(r"[a-z_]{1,32}")


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@dataclass(slots=True)
class AlertLog:
    alert_id: str
    kind: str = ""
    subject: str = ""
    opened_at: datetime | None = None
    top_priority: int = 9  # the most urgent priority any revision had
    p1_at: datetime | None = None  # the first revision at priority 1
    confirmed_at: datetime | None = None  # the first revision with confidence `confirmed`
    answered_at: datetime | None = None  # first acknowledgement, or resolution by an operator
    escalated: bool = False
    resolved_at: datetime | None = None
    resolved_by_system: bool = False
    accepted_at: datetime | None = None  # from the alert's `response` (v2)
    on_scene_at: datetime | None = None
    response_outcome: str | None = None
    episode_end: datetime | None = None  # the first revision with `episode: ended`
    lost_since: datetime | None = None  # signal_lost: the last fix before the silence
    implausible: set[str] = field(default_factory=set)  # fix times a reason called implausible

    def add(self, v: dict[str, Any]) -> None:
        at = parse_time(v.get("updated_at")) or parse_time(v.get("opened_at"))
        opened = parse_time(v.get("opened_at"))
        if opened is not None:
            self.opened_at = _earliest(self.opened_at, opened)
        if isinstance(v.get("kind"), str):
            self.kind = word(v["kind"])
        subject = v.get("restrained_person") or v.get("protected_person")
        if isinstance(subject, str) and subject:
            self.subject = subject
        priority = v.get("priority")
        if isinstance(priority, int):
            self.top_priority = min(self.top_priority, priority)
            if priority == 1:
                self.p1_at = _earliest(self.p1_at, at)
        if v.get("confidence") == "confirmed":
            self.confirmed_at = _earliest(self.confirmed_at, at)
        state = v.get("state")
        system = v.get("resolved_by") == "system"
        if state == "escalated":
            self.escalated = True
        elif state == "acknowledged" or (state == "resolved" and not system):
            self.answered_at = _earliest(self.answered_at, at)
        if state == "resolved":
            self.resolved_at = _earliest(self.resolved_at, at)
            self.resolved_by_system = system
        if v.get("episode") == "ended":
            self.episode_end = _earliest(self.episode_end, at)
        response = v.get("response")
        if isinstance(response, dict):
            self.accepted_at = _earliest(self.accepted_at, parse_time(response.get("accepted_at")))
            self.on_scene_at = _earliest(self.on_scene_at, parse_time(response.get("on_scene_at")))
            if isinstance(response.get("outcome"), str):
                self.response_outcome = word(response["outcome"], OUTCOMES)
        position = v.get("position")
        fix_ts = position.get("ts") if isinstance(position, dict) else None
        if self.kind == "signal_lost" and isinstance(fix_ts, str) and v.get("seq") == 1:
            self.lost_since = parse_time(fix_ts)
        reason = v.get("reason")
        if isinstance(reason, str) and IMPLAUSIBLE in reason.lower() and isinstance(fix_ts, str):
            self.implausible.add(fix_ts)

    @property
    def who(self) -> str:
        """The person this alert counts for (an alert about nobody counts as its own)."""
        return self.subject or f"alert:{self.alert_id}"


@dataclass(slots=True)
class TaskLog:
    task_id: str
    alert_id: str | None = None
    kind: str = ""
    subject: str = ""
    created_at: datetime | None = None
    state: str = "assigned"
    state_seq: int = -1
    accepted_at: datetime | None = None
    on_scene_at: datetime | None = None
    done_at: datetime | None = None
    outcome: str | None = None
    consent: bool | None = None
    declined: bool = False
    expired: bool = False

    def add_revision(self, v: dict[str, Any]) -> None:
        if isinstance(v.get("alert_id"), str):
            self.alert_id = v["alert_id"]
        if isinstance(v.get("kind"), str):
            self.kind = word(v["kind"])
        if isinstance(v.get("restrained_person"), str):
            self.subject = v["restrained_person"]
        created = parse_time(v.get("created_at"))
        if created is not None:
            self.created_at = _earliest(self.created_at, created)
        state = v.get("state")
        seq = v.get("seq")
        if not isinstance(state, str):
            return
        if isinstance(seq, int) and seq > self.state_seq:
            self.state, self.state_seq = state, seq
        at = parse_time(v.get("updated_at"))
        self._reach(state, at, v.get("outcome"), v.get("consent_to_share"))

    def add_update(self, u: dict[str, Any]) -> None:
        action = u.get("action")
        state = {"accept": "accepted", "decline": "declined"}.get(str(action), str(action))
        if state not in TASK_ORDER:
            return
        self._reach(state, parse_time(u.get("ts")), u.get("outcome"), u.get("consent_to_share"))

    def _reach(self, state: str, at: datetime | None, outcome: Any, consent: Any) -> None:
        if state == "declined":
            self.declined = True
        elif state == "expired":
            self.expired = True
        rank = TASK_ORDER.get(state, 0)
        # a later state implies the earlier ones (a step may skip states), a decline does not
        if state not in ("declined", "expired", "cancelled") and rank >= 1:
            self.accepted_at = _earliest(self.accepted_at, at)
            if rank >= 3:
                self.on_scene_at = _earliest(self.on_scene_at, at)
            if state == "done":
                self.done_at = _earliest(self.done_at, at)
                if isinstance(outcome, str):
                    self.outcome = word(outcome, OUTCOMES)
                if isinstance(consent, bool):
                    self.consent = consent


@dataclass(slots=True)
class DeadLetterLog:
    reason: str
    ts: datetime | None
    subject: str


@dataclass(slots=True)
class Ledger:
    """Everything the figures are computed from, and the span of time the records cover."""

    alerts: dict[str, AlertLog] = field(default_factory=dict)
    tasks: dict[str, TaskLog] = field(default_factory=dict)
    # keyed by what makes a record itself, so that one stored twice counts once
    dead_letters: dict[tuple[Any, ...], DeadLetterLog] = field(default_factory=dict)
    positions: dict[tuple[str, datetime], tuple[str, float, float, float]] = field(
        default_factory=dict
    )
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    records: int = 0

    def _saw(self, t: datetime | None) -> None:
        if t is None:
            return
        self.first_seen = _earliest(self.first_seen, t)
        self.last_seen = t if self.last_seen is None else max(self.last_seen, t)

    def task(self, task_id: str) -> TaskLog:
        t = self.tasks.get(task_id)
        if t is None:
            t = self.tasks[task_id] = TaskLog(task_id)
        return t

    def add(self, topic: str, key: str | None, value: Any) -> None:
        """One record; values that are not JSON objects (tombstones) are skipped."""
        self.records += 1
        if not isinstance(value, dict):
            return
        if topic == "alerts":
            aid = value.get("alert_id") or key
            if isinstance(aid, str):
                a = self.alerts.get(aid)
                if a is None:
                    a = self.alerts[aid] = AlertLog(aid)
                a.add(value)
                self._saw(parse_time(value.get("updated_at")))
        elif topic == "patrol-tasks":
            tid = value.get("task_id")
            if isinstance(tid, str):
                self.task(tid).add_revision(value)
                self._saw(parse_time(value.get("updated_at") or value.get("created_at")))
        elif topic == "task-updates":
            tid = value.get("task_id") or key
            if isinstance(tid, str):
                self.task(tid).add_update(value)
                self._saw(parse_time(value.get("ts")))
        elif topic == "dead-letters":
            ts = parse_time(value.get("ts"))
            who = key if isinstance(key, str) and key else f"record:{self.records}"
            reason = word(value.get("reason"))
            ident = tuple(
                str(value.get(k)) for k in ("source_topic", "partition", "offset", "raw", "ts")
            )
            self.dead_letters[(key, reason, *ident)] = DeadLetterLog(reason, ts, who)
            self._saw(ts)
        elif topic == "positions":
            self._position(value)

    def _position(self, v: dict[str, Any]) -> None:
        ts = parse_time(v.get("ts"))
        lat, lon, acc = v.get("lat"), v.get("lon"), v.get("accuracy_m")
        person, device = v.get("person_id"), v.get("device_id")
        if (
            ts is None
            or not isinstance(person, str)
            or not isinstance(device, str)
            or not isinstance(lat, int | float)
            or not isinstance(lon, int | float)
            or not isinstance(acc, int | float)
        ):
            return
        self.positions[(device, ts)] = (person, float(lat), float(lon), float(acc))
        self._saw(ts)
