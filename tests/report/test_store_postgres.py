"""`banwatch report` on a record store in a real PostgreSQL server (tests/store/postgres.py):
the golden log written through the store's write path gives the file's figures, and the
command (BANWATCH_DATABASE_URL) writes its audit record into the server's audit table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from streams.cli import main
from streams.kafka.broker import free_port
from streams.report.sources import StoreSource
from streams.store import schema
from streams.store.db import database_url, engine_for
from tests.report import golden
from tests.report.store import figures_of, file_figures, fill, stored_golden
from tests.store.postgres import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180)]


def test_report_on_postgres(
    pg: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    engine = engine_for(pg.url, "/nonexistent")
    assert engine.dialect.name == "postgresql"
    n, _ = fill(engine, golden.records())
    assert n == len(stored_golden())
    expected = file_figures(tmp_path, stored_golden())
    fig, read = figures_of(StoreSource(database_url(pg.url, "/nonexistent"), progress=False))
    assert read == len(stored_golden())
    assert fig == expected

    for k in ("BANWATCH_CONFIG", "BANWATCH_TOPIC_PREFIX"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("BANWATCH_DATABASE_URL", pg.url)
    monkeypatch.setenv("BANWATCH_DATA_DIR", str(tmp_path / "unused"))
    monkeypatch.setenv("BANWATCH_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    js = tmp_path / "r.json"
    args = ["report", "--from", golden.FIRST, "--to", golden.LAST, "--out", str(tmp_path / "r")]
    assert main([*args, "--json", str(js), "--by", "analyst-9", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "audit record: the store's audit table" in out
    assert json.loads(js.read_text("utf-8")) == expected
    assert not (tmp_path / "unused").exists()  # the database URL wins over the data dir
    with engine.connect() as conn:
        actors = conn.execute(
            sa.select(schema.audit.c.actor).where(
                schema.audit.c.object == "report:2026-11-02..2026-11-15"
            )
        ).scalars()
        assert list(actors) == ["analyst-9"]
    engine.dispose()
