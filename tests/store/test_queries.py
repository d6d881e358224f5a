"""The console's history and audit searches over the store (SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from streams.store.db import engine_for, migrate
from streams.store.queries import alert_history, audit_search
from tests.store.helpers import iso, store

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    e = engine_for(None, str(tmp_path))
    migrate(e)
    for i in range(6):
        at = T0 + timedelta(days=i)
        alert = {
            "alert_id": f"A{i}",
            "seq": 1,
            "state": "open",
            "kind": "zone_breach",
            "ban_id": f"K{i % 2}",
            "restrained_person": f"P{i % 3}",
            "protected_person": "V1" if i == 5 else None,
            "updated_at": iso(at),
        }
        store(e, "alerts", alert["alert_id"], alert, at)
        if i % 2 == 0:  # a later revision: the history shows the latest
            later = at + timedelta(hours=1)
            resolved = {**alert, "seq": 2, "state": "resolved", "updated_at": iso(later)}
            store(e, "alerts", alert["alert_id"], resolved, later)
        store(
            e,
            "audit",
            f"alert:A{i}",
            {"ts": iso(at), "actor": f"op-{i % 2}", "action": "consult", "object": f"alert:A{i}"},
            at,
        )
    return e


def test_history_is_the_latest_revision_of_each_alert_with_filters_and_pages(
    engine: sa.Engine,
) -> None:
    page = alert_history(engine)
    assert page.total == 6
    assert [(a["alert_id"], a["seq"]) for a in page.items] == [
        ("A5", 1),
        ("A4", 2),
        ("A3", 1),
        ("A2", 2),
        ("A1", 1),
        ("A0", 2),
    ]
    assert [a["alert_id"] for a in alert_history(engine, state="resolved").items] == [
        "A4",
        "A2",
        "A0",
    ]
    assert [a["alert_id"] for a in alert_history(engine, ban_id="K1").items] == ["A5", "A3", "A1"]
    assert [a["alert_id"] for a in alert_history(engine, person="P2").items] == ["A5", "A2"]
    assert [a["alert_id"] for a in alert_history(engine, person="V1").items] == ["A5"]
    window = alert_history(engine, start=T0 + timedelta(days=1), end=T0 + timedelta(days=3))
    assert [a["alert_id"] for a in window.items] == ["A2", "A1"]
    second = alert_history(engine, limit=4, offset=4)
    assert (second.total, [a["alert_id"] for a in second.items]) == (6, ["A1", "A0"])
    with pytest.raises(ValueError):
        alert_history(engine, start=datetime(2026, 11, 1))


def test_audit_search_filters_by_object_actor_and_time(engine: sa.Engine) -> None:
    assert audit_search(engine).total == 6
    assert [r["object"] for r in audit_search(engine, actor="op-1").items] == [
        "alert:A5",
        "alert:A3",
        "alert:A1",
    ]
    assert [r["actor"] for r in audit_search(engine, object="alert:A2").items] == ["op-0"]
    late = audit_search(engine, start=T0 + timedelta(days=4), limit=1)
    assert (late.total, late.items[0]["object"]) == (2, "alert:A5")
