"""Writing records into a record store the way the sink does (`records.to_row`, then
`db.write_rows` in one transaction), and reading the report's figures back from it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from alerts.report import Period
from alerts.report.ledger import parse_time
from streams.report.command import build
from streams.report.sources import FileSource, Source
from streams.store.db import migrate, write_rows
from streams.store.records import TOPIC_TABLES, Row, to_row
from tests.report import golden

Rec = tuple[str, str | None, Any]

STORED_AT = datetime(2026, 12, 3, 12, 0)  # naive UTC, as the sink writes it

PERIOD = Period(
    datetime.fromisoformat(golden.FIRST).date(), datetime.fromisoformat(golden.LAST).date()
)


def _record_ms(value: Any) -> int:
    """The record time a producer would have given it: the value's own time."""
    if isinstance(value, dict):
        for f in ("updated_at", "ts", "created_at", "opened_at"):
            t = parse_time(value.get(f))
            if t is not None:
                return int(t.timestamp() * 1000)
    return int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)


def fill(engine: Engine, records: Iterable[Rec]) -> tuple[int, list[str]]:
    """Migrate, then store every record of a topic the sink reads; returns (rows written, topics
    of the records skipped because the store does not keep them)."""
    migrate(engine)
    rows: list[tuple[Any, dict[str, Any]]] = []
    skipped: list[str] = []
    for topic, key, value in records:
        if topic not in TOPIC_TABLES:
            skipped.append(topic)
            continue
        raw = None if value is None else json.dumps(value, ensure_ascii=False).encode()
        out = to_row(
            topic, None if key is None else key.encode(), raw, _record_ms(value), STORED_AT
        )
        assert isinstance(out, Row), (topic, key, out)
        rows.append((out.table, out.values))
    with engine.begin() as conn:
        written = write_rows(conn, rows)
    return sum(written.values()), skipped


def stored_golden() -> list[Rec]:
    """The golden log without what the store does not keep (input positions)."""
    return [r for r in golden.records() if r[0] in TOPIC_TABLES]


def write_jsonl(path: Path, records: Iterable[Rec]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for topic, key, value in records:
            f.write(json.dumps({"topic": topic, "key": key, "value": value}, ensure_ascii=False))
            f.write("\n")
    return path


def figures_of(source: Source) -> tuple[dict[str, Any], int]:
    return build(source, PERIOD, None)


def file_figures(tmp: Path, records: Iterable[Rec]) -> dict[str, Any]:
    return figures_of(FileSource(write_jsonl(tmp / "same.jsonl", records), progress=False))[0]
