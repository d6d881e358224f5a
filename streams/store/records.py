"""From one Kafka record to one row of the store, or to the reason it cannot be stored.

Pure: no database, no broker, no clock (the caller passes `stored_at`). The sink turns a
`Rejected` into a dead letter. What is checked is only what the store needs: the natural key and
the searched columns must be there with the right types and fit their columns (lengths come from
`schema`, not from a second list here); everything else in the record is kept as it came, since
the worker has already validated it and a later contract version may add fields.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from streams.store import schema

#: A record larger than this is not stored (`too_large`); the worker's own limit is lower.
MAX_RECORD_BYTES = 1_000_000

#: Topic names (without the prefix) the sink reads, and the table each one fills.
TOPIC_TABLES: dict[str, str] = {
    "contact-bans": "bans",
    "alerts": "alerts",
    "patrol-tasks": "tasks",
    "task-updates": "task_updates",
    "audit": "audit",
    "protected-notifications": "protected_notifications",
    "dead-letters": "dead_letters",
}


@dataclass(frozen=True)
class Row:
    table: sa.Table
    values: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    reason: str  # decode | schema | too_large (the dead letters' closed set)
    error: str


class _Bad(Exception):
    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error


def _text(value: dict[str, Any], field: str, *, required: bool = False) -> str | None:
    v = value.get(field)
    if v is None:
        if required:
            raise _Bad("schema", f"{field}: Field required")
        return None
    if not isinstance(v, str) or not v:
        raise _Bad("schema", f"{field}: Input should be a non-empty string")
    return v


def _int(value: dict[str, Any], field: str, *, default: int | None = None) -> int | None:
    v = value.get(field, default)
    if v is None:
        if default is None and field in ("version", "seq"):
            raise _Bad("schema", f"{field}: Field required")
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad("schema", f"{field}: Input should be a valid integer")
    if not -(2**31) <= v < 2**31 and field != "version":
        raise _Bad("too_large", f"{field}: {v} does not fit the column")
    if not -(2**63) <= v < 2**63:
        raise _Bad("too_large", f"{field}: {v} does not fit the column")
    return v


def _time(value: dict[str, Any], *fields: str, required: bool = False) -> datetime | None:
    """The first of `fields` present, as naive UTC; a naive or malformed time is `schema`."""
    for field in fields:
        v = value.get(field)
        if v is None:
            continue
        if not isinstance(v, str):
            raise _Bad("schema", f"{field}: Input should be an RFC 3339 timestamp")
        try:
            t = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise _Bad("schema", f"{field}: Input should be an RFC 3339 timestamp") from None
        if t.tzinfo is None:
            raise _Bad("schema", f"{field}: timestamp needs an offset")
        return t.astimezone(UTC).replace(tzinfo=None)
    if required:
        raise _Bad("schema", f"{fields[0]}: Field required")
    return None


def _fits(table: sa.Table, values: dict[str, Any]) -> None:
    for name, v in values.items():
        if not isinstance(v, str):
            continue
        if "\x00" in v:  # PostgreSQL text cannot hold NUL
            raise _Bad("schema", f"{name}: contains a NUL character")
        length = getattr(table.c[name].type, "length", None)
        if length is not None and len(v) > length:
            raise _Bad("too_large", f"{name}: {len(v)} characters, the column holds {length}")


def digest(value: dict[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON: the audit record's identity."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _ban(key: str | None, value: dict[str, Any] | None, ms: int, now: datetime) -> Row:
    if value is None:
        if not key:
            raise _Bad("schema", "a tombstone without a key lifts no ban")
        return Row(schema.ban_lifts, {"ban_id": key, "lifted_ms": ms, "stored_at": now})
    return Row(
        schema.bans,
        {
            "ban_id": _text(value, "ban_id", required=True),
            "version": _int(value, "version"),
            "kind": _text(value, "kind"),
            "status": _text(value, "status"),
            "restrained_person": _text(value, "restrained_person"),
            "valid_from": _time(value, "valid_from"),
            "valid_until": _time(value, "valid_until"),
            "last_seen_ms": ms,
        },
    )


def _alert(value: dict[str, Any]) -> Row:
    return Row(
        schema.alerts,
        {
            "alert_id": _text(value, "alert_id", required=True),
            "seq": _int(value, "seq"),
            "state": _text(value, "state"),
            "kind": _text(value, "kind"),
            "priority": _int(value, "priority"),
            "ban_id": _text(value, "ban_id"),
            "restrained_person": _text(value, "restrained_person"),
            "protected_person": _text(value, "protected_person"),
            "ts": _time(value, "updated_at", "opened_at"),
        },
    )


def _task(value: dict[str, Any]) -> Row:
    return Row(
        schema.tasks,
        {
            "task_id": _text(value, "task_id", required=True),
            "seq": _int(value, "seq", default=0),  # version-1 tasks have no seq
            "alert_id": _text(value, "alert_id"),
            "kind": _text(value, "kind"),
            "state": _text(value, "state"),
            "priority": _int(value, "priority"),
            "unit_id": _text(value, "unit_id"),
            "role": _text(value, "role"),
            "ban_id": _text(value, "ban_id"),
            "restrained_person": _text(value, "restrained_person"),
            "ts": _time(value, "created_at"),
        },
    )


def _task_update(value: dict[str, Any]) -> Row:
    return Row(
        schema.task_updates,
        {
            "task_id": _text(value, "task_id", required=True),
            "ts": _time(value, "ts", required=True),
            "action": _text(value, "action", required=True),
            "by": _text(value, "by", required=True),
            "role": _text(value, "role"),
            "outcome": _text(value, "outcome"),
        },
    )


def _audit(value: dict[str, Any]) -> Row:
    return Row(
        schema.audit,
        {
            "digest": digest(value),
            "ts": _time(value, "ts", required=True),
            "actor": _text(value, "actor"),
            "role": _text(value, "role"),
            "action": _text(value, "action"),
            "object": _text(value, "object"),
        },
    )


def _notification(value: dict[str, Any]) -> Row:
    return Row(
        schema.protected_notifications,
        {
            "notification_id": _text(value, "notification_id", required=True),
            "person_id": _text(value, "person_id"),
            "ban_id": _text(value, "ban_id"),
            "alert_id": _text(value, "alert_id"),
            "level": _text(value, "level"),
            "code": _text(value, "code"),
            "ts": _time(value, "ts"),
        },
    )


def _dead_letter(value: dict[str, Any], record_ms: int) -> Row:
    ts = _time(value, "ts")
    if ts is None:  # a dead letter without a time (replay's): its record time
        ts = datetime.fromtimestamp(record_ms / 1000, UTC).replace(tzinfo=None)
    return Row(
        schema.dead_letters,
        {
            "digest": digest(value),
            "source_topic": _text(value, "source_topic"),
            "reason": _text(value, "reason"),
            "ts": ts,
        },
    )


_BUILDERS = {
    "alerts": _alert,
    "tasks": _task,
    "task_updates": _task_update,
    "audit": _audit,
    "protected_notifications": _notification,
}


def to_row(
    topic: str, key: bytes | None, raw: bytes | None, record_ms: int, now: datetime
) -> Row | Rejected | None:
    """The row for one record of `topic` (unprefixed), a rejection, or None (nothing to store:
    a tombstone on a topic other than contact-bans). `now` is naive UTC."""
    table = TOPIC_TABLES[topic]
    try:
        key_text = None if key is None else key.decode("utf-8")
    except UnicodeDecodeError:
        key_text = None
    try:
        if raw is None:
            if table != "bans":
                return None
            return _ban(key_text, None, record_ms, now)
        if len(raw) > MAX_RECORD_BYTES:
            raise _Bad("too_large", f"record of {len(raw)} bytes, at most {MAX_RECORD_BYTES}")
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise _Bad("decode", f"not UTF-8 JSON: {exc}") from None
        if not isinstance(value, dict):
            raise _Bad("decode", "not a JSON object")
        if table == "bans":
            row = _ban(key_text, value, record_ms, now)
        elif table == "dead_letters":
            row = _dead_letter(value, record_ms)
        else:
            row = _BUILDERS[table](value)
        row.values.update(payload=value, record_ms=record_ms, stored_at=now)
        _fits(row.table, row.values)
        return row
    except _Bad as bad:
        return Rejected(bad.reason, bad.error)
