"""Erasure of personal data older than `BANWATCH_RETENTION_DAYS`, keeping the audit.

What is personal, per table (CONTRACT.md v2: "positions, notes"): an alert's position, distance,
reason and recommended units (a unit's distance places the person); a task's target and
instructions; a task update's note; a dead letter's raw record and error (a rejected position
is still a position); a ban's zones (homes and workplaces), once that version no longer
matters (superseded, lifted, or ended before the cutoff: the bans in force keep theirs, or a
restore could not protect anyone). Ids, kinds, states, priorities and times stay, so the
history still counts what happened. Audit records carry no coordinates or free text and are
never erased; every run adds one.

Erased means gone from the file, not only unlinked: SQLite runs with `secure_delete`, and each
run that erased anything ends with VACUUM and a WAL checkpoint (TRUNCATE), so neither the
database file nor its WAL holds the old values. On PostgreSQL a plain VACUUM makes the old row
versions reusable; `VACUUM FULL` (an exclusive lock: a maintenance window) rewrites the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from streams.store import schema
from streams.store.db import insert_rows
from streams.store.records import digest
from streams.store.registry import ban_rows, in_force_versions

#: payload fields erased per table
PERSONAL: dict[str, tuple[str, ...]] = {
    "alerts": ("position", "distance_m", "reason", "recommended_units"),
    "tasks": ("target", "instructions"),
    "task_updates": ("note",),
    "bans": ("zones",),
    # the rejected record as it came (a position, a note) and the error, which may quote it
    "dead_letters": ("raw", "error"),
}


#: rows erased per transaction
CHUNK = 5000


@dataclass
class Erasure:
    cutoff: datetime
    rows: dict[str, int] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)  # the run's audit record


def _strip(payload: Any, fields: tuple[str, ...]) -> Any:
    if not isinstance(payload, dict):
        return payload
    return {k: v for k, v in payload.items() if k not in fields}


def _erase_where(
    conn: Connection, table: sa.Table, where: Any, now: datetime, limit: int | None = None
) -> int:
    keys = list(table.primary_key.columns)
    rows = conn.execute(sa.select(*keys, table.c.payload).where(where).limit(limit)).all()
    if not rows:
        return 0
    fields = PERSONAL[table.name]
    cond = sa.and_(*(k == sa.bindparam(f"k_{k.name}") for k in keys))
    stmt = table.update().where(cond).values(payload=sa.bindparam("p"), erased_at=now)
    conn.execute(
        stmt,
        [
            {**{f"k_{k.name}": r[i] for i, k in enumerate(keys)}, "p": _strip(r[-1], fields)}
            for r in rows
        ],
    )
    return len(rows)


def _stale_bans(conn: Connection, cutoff: datetime) -> list[tuple[str, int]]:
    """Ban versions whose zones may go: ended before the cutoff, or not held by the registry
    (superseded or lifted) and last seen before it."""
    cutoff_ms = int(cutoff.replace(tzinfo=UTC).timestamp() * 1000)
    rows, lifted = ban_rows(conn)
    held = in_force_versions(((r.ban_id, r.version, r.last_seen_ms) for r in rows), lifted)
    return [
        (r.ban_id, r.version)
        for r in rows
        if r.erased_at is None
        and (
            (r.valid_until is not None and r.valid_until < cutoff)
            or (held.get(r.ban_id) != r.version and r.last_seen_ms < cutoff_ms)
        )
    ]


def erase(engine: Engine, now: datetime, retention_days: float, actor: str) -> Erasure:
    """Erase personal data whose record time (`ts`) is before `now - retention_days` (`now`:
    aware); audit the run.

    Alerts, tasks and task updates in transactions of `CHUNK` rows (the first run on a full
    store must not hold one huge transaction); then the bans and the run's audit record in one;
    then (SQLite) VACUUM and a checkpoint, or (PostgreSQL) VACUUM.
    """
    now_utc = now.astimezone(UTC).replace(tzinfo=None)
    cutoff = now_utc - timedelta(days=retention_days)
    run = Erasure(cutoff=cutoff)
    for table in (schema.alerts, schema.tasks, schema.task_updates, schema.dead_letters):
        where = sa.and_(table.c.ts < cutoff, table.c.erased_at.is_(None))
        run.rows[table.name] = 0
        while True:
            with engine.begin() as conn:
                n = _erase_where(conn, table, where, now_utc, CHUNK)
            run.rows[table.name] += n
            if n < CHUNK:
                break
    with engine.begin() as conn:
        stale = _stale_bans(conn, cutoff)
        b = schema.bans
        run.rows["bans"] = (
            _erase_where(conn, b, sa.tuple_(b.c.ban_id, b.c.version).in_(stale), now_utc)
            if stale
            else 0
        )
        total = sum(run.rows.values())
        run.audit = {
            "ts": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "actor": actor,
            "role": "system",
            "action": "erase",
            "object": "store:retention",
            "reason": (
                f"erased personal data older than {cutoff.isoformat()}Z "
                f"({retention_days:g} days): {total} rows"
            ),
        }
        insert_rows(
            conn,
            schema.audit,
            [
                {
                    "digest": digest(run.audit),
                    "ts": now_utc,
                    "actor": actor,
                    "role": "system",
                    "action": "erase",
                    "object": "store:retention",
                    "payload": run.audit,
                    "record_ms": int(now.timestamp() * 1000),
                    "stored_at": now_utc,
                }
            ],
        )
    if total:
        compact(engine)
    return run


def compact(engine: Engine) -> None:
    """Rewrite the database so freed pages hold no old values (SQLite), or let PostgreSQL
    reclaim dead row versions."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        elif conn.dialect.name == "postgresql":
            for t in PERSONAL:
                conn.exec_driver_sql(f"VACUUM {t}")
