"""Where the report's records come from, and where its own audit record goes.

A source is anything with `records(start, end)` (an iterator of `(topic, key, value)`, showing
progress while it reads) and `write_audit(record)`. Today there is one: `FileSource`, JSON lines
`{"topic", "key", "value"}` as `banwatch replay` writes them (optionally concatenated with the
replay's input log, so that `task-updates` and `positions` are included).

The record store (CONTRACT.md, "The record store") plugs in as one more class with the same two
methods: `records` selects the `payload` column of its `alerts`, `tasks`, `task_updates` and
`audit` tables for the period widened by the effect window (90 days each side), yielding
`("alerts", alert_id, payload)`, `("patrol-tasks", task_id, payload)`,
`("task-updates", task_id, payload)`, `("audit", object, payload)`; `write_audit` inserts the
record into its `audit` table. See docs/report.md.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

Record = tuple[str, str | None, Any]

#: Records the report reads; anything else in a file (bans, patrol positions, incidents) is
#: skipped before it is parsed further.
TOPICS = frozenset(
    {"alerts", "patrol-tasks", "task-updates", "dead-letters", "audit", "positions"}
)


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
