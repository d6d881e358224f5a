"""The task index that routes task updates (streams/worker/routing.py `TaskIndex`), without a
broker: what a revision on `patrol-tasks` makes of it, and its pruning."""

from __future__ import annotations

from typing import Any

from streams.worker.assembly import _revised_at
from streams.worker.routing import TaskIndex


def task(task_id: str, seq: int, state: str, **extra: Any) -> dict[str, Any]:
    return {"task_id": task_id, "seq": seq, "state": state, "alert_id": "a1", **extra}


def test_a_role_task_routes_to_its_restrained_person_a_respond_task_to_its_alert() -> None:
    idx = TaskIndex()
    idx.observe(task("t-int", 1, "assigned", restrained_person="P-8810", kind="interview"), 0)
    idx.observe(task("t-resp", 1, "assigned", restrained_person=None, kind="respond"), 0)
    r = idx.get("t-int")
    assert r is not None and r.person == "P-8810"
    r = idx.get("t-resp")
    assert r is not None and r.person is None and r.alert_id == "a1"
    assert idx.get("t-other") is None


def test_the_highest_seq_wins_whatever_the_order() -> None:
    idx = TaskIndex()
    idx.observe(task("t", 3, "done", restrained_person="P-1"), 100.0)
    idx.observe(task("t", 2, "accepted", restrained_person="P-1"), 200.0)  # late, older
    r = idx.get("t")
    assert r is not None and r.seq == 3 and r.ended_at == 100.0


def test_ended_tasks_are_pruned_after_the_retention_and_live_ones_kept() -> None:
    idx = TaskIndex()
    idx.observe(task("live", 1, "assigned"), 0.0)
    idx.observe(task("old", 1, "assigned"), 0.0)
    idx.observe(task("old", 2, "expired"), 10.0)
    idx.observe(task("new", 1, "declined"), 50.0)
    assert idx.prune(now_s=60.0, retention_s=50.0) == 1
    assert idx.get("old") is None
    assert idx.get("new") is not None and idx.get("live") is not None
    assert idx.prune(now_s=100.0, retention_s=50.0) == 1
    assert idx.get("new") is None and idx.get("live") is not None and len(idx) == 1


def test_a_revision_counts_from_its_updated_at_also_when_read_again_later() -> None:
    assert _revised_at({"updated_at": "2026-12-03T04:00:00Z"}, 5.0) == 1796270400.0
    assert _revised_at({"updated_at": "not a time"}, 5.0) == 5.0
    assert _revised_at({"updated_at": "2026-12-03T04:00:00"}, 5.0) == 5.0  # no zone
    assert _revised_at({}, 5.0) == 5.0


def test_records_without_a_task_id_are_ignored() -> None:
    idx = TaskIndex()
    idx.observe({"seq": 1, "state": "assigned"}, 0.0)
    idx.observe({"task_id": 7}, 0.0)
    assert len(idx) == 0
