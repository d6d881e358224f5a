"""Bytes from a topic to a validated record, or a rejection: errors are data.

Every rejection carries a reason from a closed set (metrics label it) and a one-line error
that names the field, for the `dead-letters` record. Nothing here raises for bad input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ValidationError

from config.policy import Policy
from config.topics import ALERT_ACKS, CONTACT_BANS
from config.topics import INCIDENTS as INCIDENTS
from config.topics import PATROL_POSITIONS as PATROL_POSITIONS
from config.topics import POSITIONS as POSITIONS
from config.topics import TASK_UPDATES as TASK_UPDATES
from geofence.bans import CompiledBan
from geofence.evaluation import duration
from geofence.records import (
    AlertAction,
    ContactBan,
    Incident,
    LocationFix,
    PatrolPosition,
    TaskUpdate,
)
from geofence.zones import ZoneError


class Reason(StrEnum):
    """Why a record was rejected: the closed set used for dead letters and metrics."""

    decode = "decode"  # not UTF-8 JSON, or not a JSON object
    schema = "schema"  # a field is missing, of the wrong type or out of range
    geometry = "geometry"  # a zone's geometry is unusable
    future = "future"  # timestamped beyond the allowed clock skew
    too_large = "too_large"  # larger than the configured record size
    key_mismatch = "key_mismatch"  # the message key names another object than the value
    unknown_topic = "unknown_topic"
    unknown_alert = "unknown_alert"  # an action names an alert this service never issued
    internal = "internal"  # a detector failed on this record (a bug; the record is kept)
    unknown_task = "unknown_task"  # a task update names a task this service does not hold
    invalid_transition = "invalid_transition"  # backwards, after an end state, wrong unit/role,
    # or an outcome outside the task kind's set (contract v2)


# the input topics, by the names this module has always used (config/topics.py is the registry)
BANS, ACKS = CONTACT_BANS, ALERT_ACKS

_MODELS: dict[str, type[BaseModel]] = {
    BANS: ContactBan,
    POSITIONS: LocationFix,
    PATROL_POSITIONS: PatrolPosition,
    INCIDENTS: Incident,
    ACKS: AlertAction,
    TASK_UPDATES: TaskUpdate,
}
_KEY_FIELD = {
    BANS: "ban_id",
    POSITIONS: "person_id",
    PATROL_POSITIONS: "unit_id",
    INCIDENTS: "incident_id",
    ACKS: "alert_id",
    TASK_UPDATES: "task_id",
}
INPUT_TOPICS = tuple(_MODELS)


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A null value on `contact-bans`: the ban named by the key is lifted."""

    ban_id: str


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Reason
    error: str


Decoded = (
    CompiledBan | LocationFix | PatrolPosition | Incident | AlertAction | TaskUpdate | Tombstone
)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if err["type"] in ("json_invalid", "json_type"):
        return f"invalid JSON: {msg}"
    return f"{loc}: {msg}" if loc else msg


def _ts(record: object) -> datetime | None:
    if isinstance(record, ContactBan):
        return None  # bans are dated by their validity window, not a send time
    ts = getattr(record, "ts", None)
    return ts if isinstance(ts, datetime) else None


def decode(
    topic: str, key: str | None, raw: bytes | None, now: datetime, policy: Policy
) -> Decoded | Rejected:
    """Validate one message. `now` is the reference for rejecting records from the future."""
    model = _MODELS.get(topic)
    if model is None:
        return Rejected(Reason.unknown_topic, f"no input topic named {topic!r}")
    if raw is None:
        if topic == BANS and key:
            return Tombstone(key)
        return Rejected(Reason.decode, "null value (a tombstone needs contact-bans and a key)")
    limit = policy.max_ban_record_bytes if topic == BANS else policy.max_record_bytes
    if len(raw) > limit:
        return Rejected(Reason.too_large, f"record of {len(raw)} bytes exceeds {limit} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(Reason.decode, f"not UTF-8: {exc.reason} at byte {exc.start}")
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        if not stripped:
            return Rejected(Reason.decode, "empty value")
        return Rejected(Reason.decode, "value is not a JSON object")
    try:
        # the model's validator itself: `model_validate_json` only forwards to it (with
        # every option at its default), through a wrapper that costs ~1 µs a record
        record = model.__pydantic_validator__.validate_json(text)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        reason = Reason.decode if err["type"] == "json_invalid" else Reason.schema
        return Rejected(reason, _first_error(exc))
    except (RecursionError, ValueError) as exc:
        return Rejected(Reason.decode, f"invalid JSON: {type(exc).__name__}")
    key_field = _KEY_FIELD[topic]
    if key and getattr(record, key_field) != key:
        return Rejected(Reason.key_mismatch, f"key {key!r} differs from {key_field}")
    ts = _ts(record)
    if ts is not None and ts > now + duration(policy.max_future_skew_s):
        # the text names no distance from `now`: `now` is the wall clock unless given, and a
        # replay must give the same bytes whenever it runs
        return Rejected(
            Reason.future,
            f"ts: in the future by more than the allowed skew ({policy.max_future_skew_s:g} s)",
        )
    if isinstance(record, ContactBan):
        try:
            return CompiledBan.build(record)
        except ZoneError as exc:
            return Rejected(Reason.geometry, f"zones: {exc}")
    assert isinstance(record, (LocationFix, PatrolPosition, Incident, AlertAction, TaskUpdate))
    return record


def redacted_task_update(raw: bytes) -> tuple[bytes, str | None]:
    """What a dead letter of a task update may keep of `raw`, and what was taken out: the
    record without its `note` ("note"), the record as it is when it is a JSON object without
    one (None), or nothing at all when it is no JSON object ("unparseable": a note may be
    anywhere in bytes that cannot be parsed, so none of them are kept)."""
    try:
        v = json.loads(raw)
    except (ValueError, RecursionError):
        return b"", "unparseable"
    if not isinstance(v, dict):
        return b"", "unparseable"
    if "note" not in v:
        return raw, None
    v.pop("note")
    return json.dumps(v, ensure_ascii=False).encode("utf-8"), "note"


def without_note(raw: bytes) -> bytes:
    """A task update's bytes without its free-text `note` (contract v2: stored, never
    forwarded, so not in a dead letter either), or b"" when there is no note to take out. A
    record that is no JSON object is kept as it is: nothing can be told apart in it."""
    try:
        v = json.loads(raw)
    except (ValueError, RecursionError):
        return b""
    if not isinstance(v, dict) or "note" not in v:
        return b""
    v.pop("note")
    return json.dumps(v, ensure_ascii=False).encode("utf-8")
