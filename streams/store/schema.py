"""The store's tables (SQLAlchemy Core): one per record kind, keyed by the record's natural key.

Every table keeps the record as it came (`payload`, JSON) plus the columns the searches need.
Natural keys make storing a record twice store it once (the sink is at-least-once): a ban by
`ban_id` + `version`, an alert revision by `alert_id` + `seq`, a task revision by `task_id` + `seq`
(version-1 tasks have no `seq`: 0), a task update by `task_id` + `ts` + `action` + `by`, a
notification by its id, an audit record by the SHA-256 of its canonical JSON (audit records have
no id, and source offsets restart with an embedded broker), a lifted ban by `ban_id` + the
tombstone's record time, a dead letter (the worker's and the sink's own) by its SHA-256 like an
audit record.

Times (`ts`, `stored_at`, ...) are naive UTC `DateTime`s on both dialects; `record_ms` is the Kafka
record's timestamp (ms since the epoch). String lengths here are also what the sink checks before
writing (SQLite does not enforce them): a longer value is a dead letter `too_large`.

A change here needs a new migration in `migrations/versions/` (tests compare the two).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

ID = 128  # identifiers: pseudonyms, ban ids, alert/task ids
WORD = 32  # closed-set words: kind, state, status, action, level, code, role


def _payload() -> sa.Column[Any]:
    return sa.Column("payload", sa.JSON, nullable=True)


def _bookkeeping() -> list[sa.Column[Any]]:
    return [
        sa.Column("record_ms", sa.BigInteger, nullable=False),
        sa.Column("stored_at", sa.DateTime, nullable=False),
        # set once personal data (positions, notes, zones) has been erased from `payload`
        sa.Column("erased_at", sa.DateTime, nullable=True),
    ]


bans = sa.Table(
    "bans",
    metadata,
    sa.Column("ban_id", sa.String(ID), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(WORD)),
    sa.Column("status", sa.String(WORD)),
    sa.Column("restrained_person", sa.String(ID), index=True),
    sa.Column("valid_from", sa.DateTime),
    sa.Column("valid_until", sa.DateTime),
    # the newest record time this version was seen with (a re-import after a lift revives it)
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    _payload(),
    *_bookkeeping(),
)

ban_lifts = sa.Table(
    "ban_lifts",
    metadata,
    sa.Column("ban_id", sa.String(ID), primary_key=True),
    sa.Column("lifted_ms", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("stored_at", sa.DateTime, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.String(ID), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(WORD), index=True),
    sa.Column("kind", sa.String(WORD), index=True),
    sa.Column("priority", sa.Integer),
    sa.Column("ban_id", sa.String(ID), index=True),
    sa.Column("restrained_person", sa.String(ID), index=True),
    sa.Column("protected_person", sa.String(ID), index=True),
    sa.Column("ts", sa.DateTime, index=True),
    _payload(),
    *_bookkeeping(),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("task_id", sa.String(ID), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("alert_id", sa.String(ID), index=True),
    sa.Column("kind", sa.String(WORD)),
    sa.Column("state", sa.String(WORD)),
    sa.Column("priority", sa.Integer),
    sa.Column("unit_id", sa.String(ID)),
    sa.Column("role", sa.String(WORD)),
    sa.Column("ban_id", sa.String(ID), index=True),
    sa.Column("restrained_person", sa.String(ID)),
    sa.Column("ts", sa.DateTime, index=True),
    _payload(),
    *_bookkeeping(),
)

task_updates = sa.Table(
    "task_updates",
    metadata,
    sa.Column("task_id", sa.String(ID), primary_key=True),
    sa.Column("ts", sa.DateTime, primary_key=True),
    sa.Column("action", sa.String(WORD), primary_key=True),
    sa.Column("by", sa.String(ID), primary_key=True),
    sa.Column("role", sa.String(WORD)),
    sa.Column("outcome", sa.String(WORD)),
    _payload(),
    *_bookkeeping(),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("ts", sa.DateTime, index=True),
    sa.Column("actor", sa.String(ID), index=True),
    sa.Column("role", sa.String(WORD)),
    sa.Column("action", sa.String(WORD)),
    sa.Column("object", sa.String(2 * ID), index=True),
    _payload(),
    sa.Column("record_ms", sa.BigInteger, nullable=False),
    sa.Column("stored_at", sa.DateTime, nullable=False),
)

protected_notifications = sa.Table(
    "protected_notifications",
    metadata,
    sa.Column("notification_id", sa.String(ID), primary_key=True),
    sa.Column("person_id", sa.String(ID), index=True),
    sa.Column("ban_id", sa.String(ID), index=True),
    sa.Column("alert_id", sa.String(ID)),
    sa.Column("level", sa.String(WORD)),
    sa.Column("code", sa.String(WORD)),
    sa.Column("ts", sa.DateTime, index=True),
    _payload(),
    *_bookkeeping(),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    # SHA-256 of the dead letter's canonical JSON, as for audit records: a dead letter has no
    # id, source offsets restart with an embedded broker, and one stored twice is stored once
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("source_topic", sa.String(ID)),
    sa.Column("reason", sa.String(WORD), index=True),
    # the dead letter's `ts`, else its record time: erasure and the report select on it
    sa.Column("ts", sa.DateTime, index=True),
    _payload(),
    *_bookkeeping(),
)

#: Tables the sink writes, by the name `banwatch_store_rows_total{table}` reports.
TABLES: dict[str, sa.Table] = {
    t.name: t
    for t in (
        bans,
        ban_lifts,
        alerts,
        tasks,
        task_updates,
        audit,
        protected_notifications,
        dead_letters,
    )
}
