"""The console shows a revision re-published after a worker's SIGKILL once (issue 16).

A killed worker's successor decides again the records since the last commit; what it cannot
prove was published already goes out again with the same `alert_id` and `seq` (its decision
time may differ). The dispatcher's board and event stream must show it once, unchanged.
(Tasks: contract v2's (task_id, seq) rule is the console's, tests/streams/test_console_tasks.py.)
"""

from __future__ import annotations

from streams.console.store import Event, Store
from tests.streams.consolekit import alert, task


def test_an_alert_revision_published_twice_is_shown_once() -> None:
    store = Store("c1")
    events: list[Event] = []
    store.subscribe(events.append)
    first = alert("a1", seq=1)
    again = {**first, "updated_at": "2099-01-01T00:00:00.000Z"}  # decided again, later
    assert store.apply_alert(first) is True
    assert store.apply_alert(again) is False
    assert [e.kind for e in events] == ["alert"]
    assert store.alert("a1") == first
    assert store.revisions("a1") == [first]
    assert store.apply_alert(alert("a1", seq=2, state="acknowledged")) is True
    assert store.apply_alert(again) is False  # an older one after a newer: still ignored
    assert store.alert("a1")["seq"] == 2  # type: ignore[index]
    assert [e.kind for e in events] == ["alert", "alert"]
    assert len(store.open_alerts()) == 1


def test_a_task_published_twice_is_shown_once() -> None:
    store = Store("c1")
    store.apply_alert(alert("a1"))
    events: list[Event] = []
    store.subscribe(events.append)
    t = task("t1", "SÖ-2140", alert_id="a1")
    assert store.apply_task(t) is True
    assert store.apply_task(dict(t)) is False
    assert len(events) == 1
    assert [x["task_id"] for x in store.tasks()] == ["t1"]
