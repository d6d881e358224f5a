"""Where the report's records come from, and where its own audit record goes.

A source is anything with `records(start, end)` (an iterator of `(topic, key, value)`, showing
progress while it reads) and `write_audit(record)`. Two:

- `StoreSource`, the record store (CONTRACT.md, "The record store"; the default): the `payload`
  of its `alerts`, `tasks`, `task_updates`, `audit` and `dead_letters` rows whose `ts` is in the
  period widened by the effect window (90 days each side), as
  `("alerts", alert_id, payload)`, `("patrol-tasks", task_id, payload)`,
  `("task-updates", task_id, payload)`, `("audit", object, payload)`,
  `("dead-letters", key, payload)` (streams/store/export.py). Its audit record goes into the
  store's `audit` table at once, and is also published to the `audit` topic when a broker
  answers (the sink then stores it once more as the same row: audit rows are keyed by digest).
- `FileSource`, JSON lines `{"topic", "key", "value"}` as `banwatch replay` writes them
  (optionally concatenated with the replay's input log, so that `task-updates` and `positions`
  are included).

See docs/report.md.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

Record = tuple[str, str | None, Any]

#: Records the report reads; anything else in a file (bans, patrol positions, incidents) is
#: skipped before it is parsed further.
TOPICS = frozenset({"alerts", "patrol-tasks", "task-updates", "dead-letters", "audit", "positions"})


class SourceError(Exception):
    """The source cannot be read; one line for the user."""


class Source(Protocol):
    @property
    def description(self) -> str:
        """What the source is, for messages."""
        ...

    def records(self, start: datetime, end: datetime) -> Iterator[Record]: ...

    def write_audit(self, record: dict[str, Any]) -> str:
        """Keep the report's audit record; returns where it went, for the user."""
        ...


def _progress(label: str, enabled: bool) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f} %"),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=None,
        transient=True,
        disable=not enabled,
    )


@dataclass
class FileSource:
    """JSON lines `{"topic", "key", "value"}`; `audit_path` (JSON lines, appended) receives the
    report's audit record, else it is printed to stderr."""

    path: Path
    audit_path: Path | None = None
    progress: bool = True

    @property
    def description(self) -> str:
        return f"records file {self.path}"

    def records(self, start: datetime, end: datetime) -> Iterator[Record]:
        """Every record of the file (the figures need data before and after the period)."""
        try:
            size = os.path.getsize(self.path)
            f = self.path.open("rb")
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot read: {exc.strerror}") from None
        show = self.progress and sys.stderr.isatty() and size > 5_000_000
        with f, _progress(f"reading {self.path.name}", show) as bar:
            task = bar.add_task("read", total=size)
            done = 0
            for n, line in enumerate(f, start=1):
                done += len(line)
                if n % 20_000 == 0:
                    bar.update(task, completed=done)
                if not line.strip():
                    continue
                try:
                    item = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise SourceError(f"{self.path} line {n}: invalid JSON") from None
                if not isinstance(item, dict) or not isinstance(item.get("topic"), str):
                    raise SourceError(f'{self.path} line {n}: expected {{"topic", "key", "value"}}')
                if item["topic"] not in TOPICS:
                    continue
                key = item.get("key")
                yield item["topic"], key if isinstance(key, str) else None, item.get("value")
            bar.update(task, completed=size)

    def write_audit(self, record: dict[str, Any]) -> str:
        line = json.dumps(
            {"topic": "audit", "key": record["object"], "value": record},
            ensure_ascii=False,
            sort_keys=True,
        )
        if self.audit_path is None:
            print(line, file=sys.stderr)
            return "stderr (a records file has no audit sink; give --audit FILE to keep it)"
        try:
            with self.audit_path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as exc:
            raise SourceError(f"{self.audit_path}: cannot write: {exc.strerror}") from None
        return str(self.audit_path)


@dataclass
class StoreSource:
    """The record store at `url` (a SQLAlchemy URL, as `streams.store.db.database_url` makes
    it). `bootstrap`: the broker to publish the report's audit record to, if it answers;
    `topic`: the deployed name of the `audit` topic; `security`: kafka-python's settings."""

    url: str
    bootstrap: str | None = None
    topic: str = "audit"
    security: dict[str, Any] | None = None
    progress: bool = True

    @property
    def description(self) -> str:
        from sqlalchemy.engine import make_url

        return f"record store {make_url(self.url).render_as_string(hide_password=True)}"

    def _engine(self) -> Any:
        import sqlalchemy as sa

        from streams.store.db import make_engine

        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                tables = set(sa.inspect(conn).get_table_names())
        except sa.exc.SQLAlchemyError as exc:
            raise SourceError(f"{self.description}: cannot connect: {_first_line(exc)}") from None
        if "alerts" not in tables:
            raise SourceError(
                f"{self.description}: an empty store (no tables: nothing was ever stored; "
                "run `banwatch up` or `banwatch store` first)"
            )
        return engine

    def records(self, start: datetime, end: datetime) -> Iterator[Record]:
        """The rows of the report's tables with `ts` in `[start, end)`."""
        import sqlalchemy as sa

        from streams.store.export import export

        engine = self._engine()
        a, b = _naive_utc(start), _naive_utc(end)
        try:
            rows = export(engine, a, b)
            show = self.progress and sys.stderr.isatty() and rows.total > 50_000
            with _progress("reading the record store", show) as bar:
                task = bar.add_task("read", total=rows.total)
                for n, record in enumerate(rows.records(), start=1):
                    if n % 20_000 == 0:
                        bar.update(task, completed=n)
                    yield record
                bar.update(task, completed=rows.total)
        except sa.exc.SQLAlchemyError as exc:
            raise SourceError(f"{self.description}: cannot read: {_first_line(exc)}") from None
        finally:
            engine.dispose()

    def write_audit(self, record: dict[str, Any]) -> str:
        """Into the store's `audit` table through the sink's own path (`records.to_row`), and
        to the `audit` topic when a broker answers. Both: the report leaves its trail even with
        no sink running, and the topic's other readers see it; the sink stores the published
        copy as the same row (an audit row's key is the record's digest)."""
        import sqlalchemy as sa

        from streams.store.db import write_rows
        from streams.store.records import Row, to_row

        raw = json.dumps(record, ensure_ascii=False).encode()
        now = datetime.now(UTC)
        row = to_row(
            "audit",
            record["object"].encode(),
            raw,
            int(now.timestamp() * 1000),
            now.replace(tzinfo=None),
        )
        if not isinstance(row, Row):
            raise SourceError(f"the report's audit record was refused: {row}")
        engine = self._engine()
        try:
            with engine.begin() as conn:
                write_rows(conn, [(row.table, row.values)])
        except sa.exc.SQLAlchemyError as exc:
            raise SourceError(f"{self.description}: cannot write: {_first_line(exc)}") from None
        finally:
            engine.dispose()
        where = "the store's audit table"
        published = self._publish(record)
        return f"{where}; {published}"

    def _publish(self, record: dict[str, Any]) -> str:
        if not self.bootstrap:
            return "no broker configured, so not published"
        host, _, port = self.bootstrap.split(",")[0].strip().rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0).close()
        except (OSError, ValueError):
            return f"not published: no broker answers at {self.bootstrap}"
        from streams.kafka.blocking import produce_json
        from streams.kafka.clients import make_producer

        try:
            producer = make_producer(self.bootstrap, **(self.security or {}))
            try:
                produce_json(producer, self.topic, record["object"], record).get(timeout=10)
            finally:
                producer.close(timeout=5)
        except Exception as exc:  # kafka-python raises many kinds; the store has the record
            return f"not published to {self.topic} on {self.bootstrap}: {_first_line(exc)}"
        return f"published to {self.topic} on {self.bootstrap}"


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
