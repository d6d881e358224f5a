"""Erasure: personal data older than the retention is gone from the SQLite file itself, the
audit stays, and the run is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from streams.store import retention, schema
from streams.store.db import SQLITE_FILE, engine_for, migrate
from streams.store.restore import bans_in_force
from streams.store.retention import erase
from tests.store.helpers import ban_value, iso, store

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=91)
RECENT = NOW - timedelta(days=89)


def file_bytes(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith(SQLITE_FILE))


def test_old_positions_and_notes_are_gone_from_the_file_and_the_run_is_audited(
    tmp_path: Path,
) -> None:
    engine = engine_for(None, str(tmp_path))
    migrate(engine)

    def alert(alert_id: str, at: datetime, marker: str) -> dict[str, object]:
        return {
            "alert_id": alert_id,
            "seq": 1,
            "state": "open",
            "kind": "zone_breach",
            "priority": 1,
            "updated_at": iso(at),
            "distance_m": 0.0,
            # long enough to spill into overflow pages, which an update frees without wiping
            "position": {"lat": 59.123456, "lon": 17.654321, "place": marker * 800},
            "reason": f"fix inside zone {marker}",
        }

    store(engine, "alerts", "A-old", alert("A-old", OLD, "OLDPLACE-7f3a"), OLD)
    store(engine, "alerts", "A-new", alert("A-new", RECENT, "NEWPLACE-91bc"), RECENT)
    update = {
        "task_id": "T1",
        "by": "SÖ-1",
        "ts": iso(OLD),
        "action": "done",
        "note": "OLDNOTE-5d2e he was at the door",
    }
    store(engine, "task-updates", "T1", update, OLD)
    task = {
        "task_id": "T1",
        "kind": "respond",
        "created_at": iso(OLD),
        "target": {"lat": 59.1, "lon": 17.6},
        "instructions": "OLDTASK-2b1c",
    }
    store(engine, "patrol-tasks", "T1", task, OLD)
    superseded = ban_value("K1", 1)
    superseded["zones"]["features"][0]["properties"]["label"] = "OLDZONE-aa11"
    store(engine, "contact-bans", "K1", superseded, OLD)
    store(engine, "contact-bans", "K1", ban_value("K1", 2), OLD + timedelta(minutes=1))
    in_force = ban_value("K2", 1)
    in_force["zones"]["features"][0]["properties"]["label"] = "KEEPZONE-cc33"
    store(engine, "contact-bans", "K2", in_force, OLD)

    def dead(at: datetime, marker: str) -> dict[str, object]:  # a rejected position
        raw = f'{{"person_id": "P-1", "lat": 59.3{marker}, "lon": 18.07}}'
        return {
            "source_topic": "positions",
            "partition": 0,
            "offset": 7,
            "key": "P-1",
            "raw": raw,
            "error": f"ts: Field required (input {raw})",
            "reason": "schema",
            "ts": iso(at),
        }

    store(engine, "dead-letters", "P-1", dead(OLD, "114455"), OLD)
    store(engine, "dead-letters", "P-1", dead(RECENT, "998877"), RECENT)
    consult = {"ts": iso(OLD), "actor": "op-1", "action": "consult", "object": "alert:A-old"}
    store(engine, "audit", "alert:A-old", consult, OLD)
    with engine.connect() as conn:  # the WAL holds the pages until a checkpoint
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    before = file_bytes(tmp_path)
    old_markers = (b"OLDPLACE-7f3a", b"OLDNOTE-5d2e", b"OLDTASK-2b1c", b"OLDZONE-aa11", b"114455")
    for marker in old_markers:
        assert marker in before  # the test can see what it looks for

    run = erase(engine, NOW, 90, actor="banwatch-store")

    assert run.rows == {
        "alerts": 1,
        "tasks": 1,
        "task_updates": 1,
        "dead_letters": 1,
        "bans": 1,
    }
    engine.dispose()
    after = file_bytes(tmp_path)
    for marker in old_markers:
        assert marker not in after, marker
    assert b"NEWPLACE-91bc" in after and b"KEEPZONE-cc33" in after and b"998877" in after
    with engine.connect() as conn:
        old = conn.execute(
            sa.select(schema.alerts.c.payload, schema.alerts.c.erased_at).where(
                schema.alerts.c.alert_id == "A-old"
            )
        ).one()
        audits = conn.execute(sa.select(schema.audit.c.payload)).scalars().all()
        dead_rows = conn.execute(
            sa.select(schema.dead_letters.c.payload, schema.dead_letters.c.erased_at).order_by(
                schema.dead_letters.c.ts
            )
        ).all()
    assert "position" not in old.payload and old.payload["kind"] == "zone_breach"
    assert old.erased_at is not None
    # an old dead letter keeps what the report counts (reason, time, topic), not the record
    assert [(d.payload.get("raw") is None, d.erased_at is None) for d in dead_rows] == [
        (True, False),
        (False, True),
    ]
    assert dead_rows[0].payload["reason"] == "schema" and "error" not in dead_rows[0].payload
    assert consult in audits  # audit is never erased
    assert [a["action"] for a in audits].count("erase") == 1
    assert any(a["object"] == "store:retention" and "5 rows" in a["reason"] for a in audits)
    # the ban in force keeps its zones: a restore still protects
    assert [b["ban_id"] for b in bans_in_force(engine, NOW)] == ["K1", "K2"]
    assert all(b["zones"]["features"] for b in bans_in_force(engine, NOW))

    # the run's audit record, also published to `audit`, comes back through the sink: stored once
    assert store(engine, "audit", "store:retention", run.audit, NOW) == {"audit": 0}

    again = erase(engine, NOW + timedelta(hours=1), 90, actor="banwatch-store")
    assert sum(again.rows.values()) == 0  # nothing twice, but the run is audited again
    with engine.connect() as conn:
        n = conn.execute(
            sa.select(sa.func.count())
            .select_from(schema.audit)
            .where(schema.audit.c.action == "erase")
        ).scalar()
    assert n == 2


def test_a_large_erasure_goes_in_chunks_and_misses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "CHUNK", 2)
    engine = engine_for(None, str(tmp_path))
    migrate(engine)
    for i in range(5):
        alert = {"alert_id": f"A{i}", "seq": 1, "updated_at": iso(OLD), "position": {"lat": i}}
        store(engine, "alerts", f"A{i}", alert, OLD)
    assert erase(engine, NOW, 90, actor="t").rows["alerts"] == 5
    with engine.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count())
            .select_from(schema.alerts)
            .where(schema.alerts.c.erased_at.is_(None))
        ).scalar()
    assert left == 0
