"""records.to_row: each topic's natural key and searched columns, and what becomes a dead letter."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from streams.store import schema
from streams.store.records import MAX_RECORD_BYTES, Rejected, Row, to_row

NOW = datetime(2026, 12, 3, 1, 0, 0)


def row(topic: str, value: object, key: bytes | None = b"k") -> Row:
    out = to_row(topic, key, json.dumps(value).encode(), 1_000, NOW)
    assert isinstance(out, Row), out
    return out


def rejected(topic: str, raw: bytes | None, key: bytes | None = b"k") -> Rejected:
    out = to_row(topic, key, raw, 1_000, NOW)
    assert isinstance(out, Rejected), out
    return out


def test_an_alert_revision_is_keyed_by_id_and_seq_with_its_searched_columns() -> None:
    a = {
        "alert_id": "A1",
        "seq": 3,
        "state": "open",
        "kind": "zone_breach",
        "priority": 1,
        "ban_id": "KF-1",
        "restrained_person": "P-1",
        "opened_at": "2026-11-22T10:15:03Z",
        "updated_at": "2026-11-22T11:15:13+01:00",
        "position": {"lat": 59.1, "lon": 17.6},
    }
    r = row("alerts", a)
    assert r.table is schema.alerts
    assert (r.values["alert_id"], r.values["seq"], r.values["ban_id"]) == ("A1", 3, "KF-1")
    assert r.values["ts"] == datetime(2026, 11, 22, 10, 15, 13)  # updated_at, as naive UTC
    assert r.values["payload"] == a and r.values["record_ms"] == 1_000


def test_a_version_1_task_without_seq_is_seq_0() -> None:
    t = row(
        "patrol-tasks", {"task_id": "T1", "kind": "respond", "created_at": "2026-11-22T10:00:00Z"}
    )
    assert t.table is schema.tasks and t.values["seq"] == 0
    t2 = row("patrol-tasks", {"task_id": "T1", "seq": 2, "state": "accepted"})
    assert t2.values["seq"] == 2 and t2.values["state"] == "accepted"


def test_a_ban_tombstone_is_a_lift_at_the_record_time_and_needs_a_key() -> None:
    lift = to_row("contact-bans", b"KF-9", None, 42_000, NOW)
    assert isinstance(lift, Row) and lift.table is schema.ban_lifts
    assert lift.values == {"ban_id": "KF-9", "lifted_ms": 42_000, "stored_at": NOW}
    assert rejected("contact-bans", None, key=None).reason == "schema"
    assert to_row("alerts", b"A1", None, 1, NOW) is None  # other tombstones: nothing to store


def test_audit_records_are_identified_by_their_content() -> None:
    a = {"ts": "2026-11-22T10:00:00Z", "actor": "op-1", "action": "consult", "object": "ban:K"}
    r1, r2 = row("audit", a), row("audit", dict(reversed(list(a.items()))))
    assert r1.values["digest"] == r2.values["digest"]
    assert row("audit", {**a, "actor": "op-2"}).values["digest"] != r1.values["digest"]


def test_dead_letters_are_identified_by_their_content_and_timed() -> None:
    d = {
        "source_topic": "positions",
        "partition": 0,
        "offset": 41,
        "key": "P-1",
        "raw": '{"lat": 91}',
        "error": "lat: Input should be less than or equal to 90",
        "reason": "schema",
        "ts": "2026-11-22T11:15:13+01:00",
    }
    r = row("dead-letters", d)
    assert r.table is schema.dead_letters
    assert r.values["source_topic"] == "positions" and r.values["reason"] == "schema"
    assert r.values["ts"] == datetime(2026, 11, 22, 10, 15, 13)
    assert r.values["digest"] == row("dead-letters", dict(reversed(d.items()))).values["digest"]
    assert r.values["digest"] != row("dead-letters", {**d, "offset": 42}).values["digest"]
    # replay's dead letters have no time: the record's (1,000 ms after the epoch)
    assert row("dead-letters", {**d, "ts": None}).values["ts"] == datetime(1970, 1, 1, 0, 0, 1)


def test_task_updates_are_keyed_by_task_ts_action_and_by() -> None:
    u = {
        "task_id": "T1",
        "by": "SÖ-1",
        "ts": "2026-11-22T10:00:00Z",
        "action": "done",
        "outcome": "contact_made",
        "note": "text",
    }
    r = row("task-updates", u)
    assert r.table is schema.task_updates
    assert (r.values["task_id"], r.values["action"], r.values["by"]) == ("T1", "done", "SÖ-1")


@pytest.mark.parametrize(
    ("topic", "raw", "reason"),
    [
        ("alerts", b"\xff\xfe not utf-8", "decode"),
        ("alerts", b"{not json", "decode"),
        ("alerts", b"[1, 2]", "decode"),
        ("alerts", b'{"seq": 1}', "schema"),  # no alert_id
        ("alerts", b'{"alert_id": "A", "seq": "1"}', "schema"),  # drifted type
        ("alerts", b'{"alert_id": "A", "seq": 1, "updated_at": "2026-11-22T10:00:00"}', "schema"),
        ("contact-bans", b'{"ban_id": "K"}', "schema"),  # no version
        (
            "task-updates",
            b'{"task_id": "T", "ts": "2026-11-22T10:00:00Z", "action": "done"}',
            "schema",
        ),
        ("alerts", json.dumps({"alert_id": "A" * 129, "seq": 1}).encode(), "too_large"),
        ("alerts", json.dumps({"alert_id": "A", "seq": 2**40}).encode(), "too_large"),
        ("alerts", json.dumps({"alert_id": "A\x00", "seq": 1}).encode(), "schema"),
        ("audit", b" " * (MAX_RECORD_BYTES + 1), "too_large"),
    ],
    ids=lambda v: v if isinstance(v, str) else "raw",
)
def test_records_the_store_cannot_keep_are_rejected_with_a_reason(
    topic: str, raw: bytes, reason: str
) -> None:
    assert rejected(topic, raw).reason == reason
