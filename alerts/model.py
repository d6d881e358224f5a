"""Alerts and tasks as the contract publishes them, with deterministic identities.

An alert is one episode (ban, kind, zone or protected person). Every change is a revision with
`seq` + 1; consumers keep the highest `seq`. Identities are hashes of what opened the episode,
so the same input log yields the same ids, whichever worker computes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from alerts.taskmodel import Task
from config.topics import ALERTS as ALERTS
from config.topics import DEAD_LETTERS as DEAD_LETTERS
from config.topics import PATROL_TASKS

CONTRACT_VERSION = 2
#: The reason of a proximity or approach episode ended because the protected person's own
#: device stopped reporting (rule 7): the danger has not ended, only her position is unknown.
POSITION_LOST = "protected person's position lost"

Value = dict[str, Any]
Output = tuple[str, str | None, Value | None]  # (topic, key, value)

TASKS = PATROL_TASKS  # the output topics (config/topics.py is the registry)


class Kind(StrEnum):
    zone_breach = "zone_breach"
    proximity_breach = "proximity_breach"
    reported_contact = "reported_contact"
    sos = "sos"
    tamper = "tamper"
    approach = "approach"
    signal_lost = "signal_lost"
    threat = "threat"
    battery_low = "battery_low"
    tip = "tip"
    late_evidence = "late_evidence"
    unmatched_incident = "unmatched_incident"


class State(StrEnum):
    open = "open"
    updated = "updated"
    escalated = "escalated"
    acknowledged = "acknowledged"
    resolved = "resolved"


def stable_id(*parts: str) -> str:
    """A 32-hex-digit id derived from `parts` only (never from time of processing)."""
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return h[:32]


def rfc3339(t: datetime) -> str:
    """UTC, `Z` suffix, fractional seconds only when present."""
    if t.tzinfo is UTC:  # most times (see records.Timestamp); a revision writes one 2-3 times
        return _rfc3339_utc(t)
    return _rfc3339_utc(t.astimezone(UTC))


@lru_cache(maxsize=4096)
def _rfc3339_utc(u: datetime) -> str:
    """`rfc3339` of a UTC time (the memo's keys: equal UTC times have the same text)."""
    if u.year < 1000:  # strftime writes such years unpadded: keep its text
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if u.microsecond else "%Y-%m-%dT%H:%M:%SZ"
        return u.strftime(fmt)
    # the same text as strftime's at half its cost: isoformat also leaves out a zero
    # fraction; its offset is "+00:00"
    return u.isoformat()[:-6] + "Z"


def place(lat: float, lon: float, accuracy_m: float | None, ts: datetime) -> Value:
    return {
        "lat": round(lat, 6),
        "lon": round(lon, 6),
        "accuracy_m": None if accuracy_m is None else round(accuracy_m, 1),
        "ts": rfc3339(ts),
    }


@dataclass(slots=True)
class Alert:
    """Mutable state of one alert; `revision()` renders the next published revision."""

    alert_id: str
    kind: Kind
    priority: int
    confidence: str | None
    ban_id: str | None
    ban_version: int | None
    restrained_person: str | None
    opened_at: datetime
    reason: str
    zone_id: str | None = None
    protected_person: str | None = None
    device_id: str | None = None
    incident_id: str | None = None
    position: Value | None = None
    protected_position: Value | None = None
    distance_m: float | None = None
    recommended_units: list[Value] = field(default_factory=list)
    state: State = State.open
    seq: int = 0
    updated_at: datetime | None = None
    episode: str = "active"  # "ended" once the person left, the signal came back, ...
    p1_since: datetime | None = None  # when it became priority 1 (escalation clock)
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    followups_sent: bool = False
    respond_sent: bool = False
    # what alerts/notifications.py sent the protected persons for this alert ("level:person")
    notified: set[str] = field(default_factory=set)
    evidence_count: int = 0
    # contract v2: the alert's respond/protect tasks, in the order they were offered, and
    # the response once a respond task was accepted (unit_id, accepted_at, on_scene_at,
    # outcome); `offer_due`: the earliest acceptance deadline of an unanswered one
    tasks: list[Task] = field(default_factory=list)
    response: dict[str, Any] | None = None
    offer_due: datetime | None = None

    @property
    def is_live(self) -> bool:
        return self.state is not State.resolved

    @property
    def awaiting_ack(self) -> bool:
        return self.state in (State.open, State.updated, State.escalated)

    def act(self, action: str, by: str, ts: datetime) -> Value | None:
        """Apply an operator's `acknowledge` or `resolve`; the revision to publish, or None when
        it changes nothing (idempotent: repeated or after resolution)."""
        if not self.is_live or (action == "acknowledge" and self.state is State.acknowledged):
            return None
        at = max(ts, self.updated_at) if self.updated_at is not None else ts
        if action == "acknowledge":
            self.acknowledged_by = by
            return self.revision(at, State.acknowledged)
        self.resolved_by = by
        return self.revision(at, State.resolved)

    def set_priority(self, priority: int, at: datetime) -> None:
        if priority == 1 and self.p1_since is None:
            self.p1_since = at
        self.priority = priority

    def revision(self, at: datetime, state: State | None = None) -> Value:
        """Bump `seq` and render. `state` defaults to `open` first, then `updated` unless the
        alert already is escalated or acknowledged (those states stick until resolved)."""
        self.seq += 1
        if state is not None:
            self.state = state
        elif self.seq == 1:
            self.state = State.open
        elif self.state in (State.open, State.updated):
            self.state = State.updated
        # Never backwards: an acknowledgement stamped by a console clock behind the devices'
        # clocks (or a late fix) must not make a newer revision look older.
        if self.updated_at is None or at > self.updated_at:
            self.updated_at = at
        v: Value = {
            "alert_id": self.alert_id,
            "seq": self.seq,
            "state": self.state.value,
            "kind": self.kind.value,
            "priority": self.priority,
            "confidence": self.confidence,
            "ban_id": self.ban_id,
            "ban_version": self.ban_version,
            "restrained_person": self.restrained_person,
            "zone_id": self.zone_id,
            "protected_person": self.protected_person,
            "position": self.position,
            "distance_m": None if self.distance_m is None else round(self.distance_m, 1),
            "opened_at": rfc3339(self.opened_at),
            "updated_at": rfc3339(self.updated_at),
            "reason": self.reason,
            "recommended_units": self.recommended_units,
            "episode": self.episode,
            "response": None if self.response is None else dict(self.response),
            "contract_version": CONTRACT_VERSION,
        }
        if self.protected_position is not None:
            v["protected_position"] = self.protected_position
        if self.device_id is not None:
            v["device_id"] = self.device_id
        if self.incident_id is not None:
            v["incident_id"] = self.incident_id
        if self.acknowledged_by is not None:
            v["acknowledged_by"] = self.acknowledged_by
        if self.resolved_by is not None:
            v["resolved_by"] = self.resolved_by
        if self.kind is Kind.late_evidence:
            v["evidence_count"] = self.evidence_count
        return v
