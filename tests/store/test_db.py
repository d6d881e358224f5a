"""The SQLite store: migrations, idempotent writes, and which bans a restore would publish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from streams.store import schema
from streams.store.db import engine_for, migrate
from streams.store.restore import bans_in_force
from tests.store.helpers import ban_value, store

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_migrations_build_exactly_the_schema_and_run_again_harmlessly(tmp_path: Path) -> None:
    engine = engine_for(None, str(tmp_path / "data"))
    migrate(engine)
    migrate(engine)
    assert (tmp_path / "data" / "banwatch.sqlite3").is_file()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1


def test_storing_a_record_twice_stores_it_once(tmp_path: Path) -> None:
    engine = engine_for(None, str(tmp_path))
    migrate(engine)
    alert = {"alert_id": "A1", "seq": 1, "state": "open", "updated_at": "2026-11-22T10:00:00Z"}
    assert store(engine, "alerts", "A1", alert, T0) == {"alerts": 1}
    assert store(engine, "alerts", "A1", alert, T0) == {"alerts": 0}
    assert store(engine, "alerts", "A1", {**alert, "seq": 2}, T0) == {"alerts": 1}
    audit = {"ts": "2026-11-22T10:00:00Z", "actor": "op", "action": "consult", "object": "x"}
    assert store(engine, "audit", "x", audit, T0) == {"audit": 1}
    assert store(engine, "audit", "x", audit, T0 + timedelta(seconds=5)) == {"audit": 0}
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(schema.alerts)).scalar()
    assert n == 2


def test_bans_in_force_are_the_latest_versions_not_lifted_since(tmp_path: Path) -> None:
    engine = engine_for(None, str(tmp_path))
    migrate(engine)
    now = T0 + timedelta(days=10)
    store(engine, "contact-bans", "K1", ban_value("K1", 1), T0)
    store(engine, "contact-bans", "K1", ban_value("K1", 2), T0 + timedelta(minutes=1))
    store(engine, "contact-bans", "K2", ban_value("K2", 1), T0)
    store(engine, "contact-bans", "K2", None, T0 + timedelta(minutes=2))  # lifted
    store(engine, "contact-bans", "K3", ban_value("K3", 1), T0)
    store(engine, "contact-bans", "K3", None, T0 + timedelta(minutes=2))
    store(engine, "contact-bans", "K3", ban_value("K3", 1), T0 + timedelta(minutes=3))  # again
    store(engine, "contact-bans", "K4", ban_value("K4", 1, until=now - timedelta(days=31)), T0)
    store(engine, "contact-bans", "K5", ban_value("K5", 1, until=now - timedelta(days=29)), T0)
    got = [(b["ban_id"], b["version"]) for b in bans_in_force(engine, now)]
    assert got == [("K1", 2), ("K3", 1), ("K5", 1)]
