"""Reading the store back as records `(topic, key, value)` for a period: what `banwatch report`
reads (streams/report/sources.py `StoreSource`).

Each table is read by its `ts` column (naive UTC) in `[start, end)`, in `CHUNK`-row pages of one
server-side cursor, and each row yields its `payload` as the topic carried it, with the key the
topic would have had: alerts by alert id, tasks and task updates by task id, audit records by
object, dead letters by their own `key`. Tables a store of an older schema lacks (dead letters
before migration 0002) are skipped and named in `missing`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from streams.store import schema

CHUNK = 5000

#: (table, topic) in the order they are read
TOPICS: tuple[tuple[sa.Table, str], ...] = (
    (schema.alerts, "alerts"),
    (schema.tasks, "patrol-tasks"),
    (schema.task_updates, "task-updates"),
    (schema.audit, "audit"),
    (schema.dead_letters, "dead-letters"),
)


def _key(table: sa.Table) -> sa.ColumnElement[Any] | None:
    if table is schema.alerts:
        return table.c.alert_id
    if table in (schema.tasks, schema.task_updates):
        return table.c.task_id
    if table is schema.audit:
        return table.c.object
    return None  # dead letters: the key is in the payload


@dataclass
class Export:
    """The rows of a period, counted before they are read (for a progress bar)."""

    engine: Engine
    start: datetime
    end: datetime
    counts: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _where(self, table: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(table.c.ts >= self.start, table.c.ts < self.end)

    def count(self) -> Export:
        present = set(sa.inspect(self.engine).get_table_names())
        with self.engine.connect() as conn:
            for table, topic in TOPICS:
                if table.name not in present:
                    self.missing.append(table.name)
                    continue
                q = sa.select(sa.func.count()).select_from(table).where(self._where(table))
                self.counts[topic] = int(conn.execute(q).scalar_one())
        return self

    def records(self) -> Iterator[tuple[str, str | None, Any]]:
        with self.engine.connect() as conn:
            for table, topic in TOPICS:
                if not self.counts.get(topic):
                    continue
                key = _key(table)
                cols = [table.c.payload] if key is None else [table.c.payload, key]
                q = sa.select(*cols).where(self._where(table))
                rows = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(q)
                for row in rows:
                    payload = row[0]
                    if key is not None:
                        yield topic, row[1], payload
                    else:
                        k = payload.get("key") if isinstance(payload, dict) else None
                        yield topic, k if isinstance(k, str) else None, payload


def export(engine: Engine, start: datetime, end: datetime) -> Export:
    """The rows of every table the report reads with `ts` in `[start, end)` (naive UTC)."""
    return Export(engine, start, end).count()
