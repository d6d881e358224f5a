"""The console's history and audit searches over the record store, and the alerts restored
from it after a restart (CONTRACT.md v2, "The record store" and "Roles").

The store is a real SQLite file written the way the sink writes it; the console reads it
through its read-only handle (`streams.store.queries.Records`). No broker here: the audit
records the console publishes are caught by the harness's recorder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.console.store import Store
from streams.store.queries import RESOLVE_RESTORED, Records
from tests.streams.consolekit import (
    AUDITOR,
    DISPATCHER,
    PATROL,
    VIEWER,
    alert,
    bearer,
    console,
    filled_store,
    stored_records,
    ts,
)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def _history() -> list[dict[str, Any]]:
    """Twelve alerts over twelve hours, three bans, two restrained persons, some resolved;
    h1 has two revisions (the second, resolved, is its latest)."""
    out = []
    for i in range(12):
        out.append(
            alert(
                f"h{i}",
                seq=1,
                opened_s=-3600 * i,
                ban_id=f"KF-{i % 3}",
                restrained_person="P-1" if i % 2 else "P-2",
                kind="approach" if i % 4 == 0 else "zone_breach",
            )
        )
    out.append(
        alert("h1", seq=2, state="resolved", opened_s=-3600, ban_id="KF-1", restrained_person="P-1")
    )
    return out


def _audits() -> list[dict[str, Any]]:
    def rec(i: int, actor: str, obj: str, action: str = "consult") -> dict[str, Any]:
        return {
            "ts": ts(-600 * i),
            "actor": actor,
            "role": "dispatcher",
            "action": action,
            "object": obj,
            "reason": "handling the alert from the dispatch board",
        }

    return [rec(i, "op-17" if i % 2 else "op-9", f"alert:h{i % 4}") for i in range(10)]


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    r = stored_records(str(tmp_path), alerts=_history(), audits=_audits())
    yield r
    r.close()


async def _get(h: Any, path: str, token: str) -> tuple[int, Any]:
    async with h.client.get(path, headers=bearer(token)) as resp:
        return resp.status, await resp.json()


def test_history_filters_pages_and_audits_each_search(records: Records) -> None:
    async def scenario() -> None:
        async with console(records=records) as h:
            status, body = await _get(h, "/api/alerts?state=all&limit=5", DISPATCHER)
            assert status == 200, body
            assert body["total"] == 12 and body["limit"] == 5 and body["offset"] == 0
            assert body["next_offset"] == 5
            first = [a["alert_id"] for a in body["alerts"]]
            assert first[:2] == ["h0", "h1"]  # newest first (h1's latest revision is later)
            assert body["alerts"][1]["state"] == "resolved" and body["alerts"][1]["seq"] == 2
            seen = list(first)
            offset = body["next_offset"]
            while offset is not None:
                status, body = await _get(
                    h, f"/api/alerts?state=all&limit=5&offset={offset}", DISPATCHER
                )
                assert status == 200
                seen += [a["alert_id"] for a in body["alerts"]]
                offset = body["next_offset"]
            assert sorted(seen) == sorted(f"h{i}" for i in range(12))  # each once, all

            status, body = await _get(h, "/api/alerts?state=all&ban_id=KF-1", DISPATCHER)
            assert {a["alert_id"] for a in body["alerts"]} == {"h1", "h4", "h7", "h10"}
            status, body = await _get(
                h, "/api/alerts?state=all&person=P-1&kind=zone_breach", DISPATCHER
            )
            assert {a["alert_id"] for a in body["alerts"]} == {"h1", "h3", "h5", "h7", "h9", "h11"}
            status, body = await _get(h, "/api/alerts?state=resolved", DISPATCHER)
            assert [a["alert_id"] for a in body["alerts"]] == ["h1"]
            since, until = ts(-3 * 3600), ts(-3600)  # h3, h2; not h1 (-1 h + 2 s)
            status, body = await _get(
                h, f"/api/alerts?state=all&from={since}&to={until}", DISPATCHER
            )
            assert [a["alert_id"] for a in body["alerts"]] == ["h2", "h3"], body

            searches = h.published.on("audit")
            assert len(searches) == 7  # one per search (three pages, four filters)
            key, rec = searches[1]
            assert rec["action"] == "search" and rec["actor"] == "op-17"
            assert rec["role"] == "dispatcher"
            assert key == rec["object"] == "alerts"
            assert rec["reason"] == "alert history: state=all limit=5 offset=5"
            key, rec = searches[3]
            assert key == rec["object"] == "ban:KF-1"
            key, rec = searches[4]
            assert key == "person:P-1" and "person=P-1 kind=zone_breach" in rec["reason"]
            _, rec = searches[6]
            assert f"from={since[:-1]}.000Z to={until[:-1]}.000Z" in rec["reason"], rec
            for _, rec in searches:
                assert "59." not in str(rec) and "17.6" not in str(rec)  # never coordinates

    run(scenario)


def test_the_live_board_is_unchanged_without_state(records: Records) -> None:
    async def scenario() -> None:
        async with console(records=records) as h:
            status, body = await _get(h, "/api/alerts", VIEWER)
            assert status == 200
            assert [a["alert_id"] for a in body["alerts"]] == ["a1", "a2"]  # the live store's
            assert "total" not in body
            assert h.published.on("audit") == []

    run(scenario)


@pytest.mark.parametrize(
    "query",
    [
        "state=bogus",
        "state=all&limit=0",
        "state=all&limit=201",
        "state=all&limit=ten",
        "state=all&offset=-1",
        "state=all&from=2026-11-22T21:00:00",  # no offset
        "state=all&from=yesterday",
        "state=all&from=2026-11-22T21:00:00Z&to=2026-11-22T20:00:00Z",
        "state=all&ban_id=KF-1%20or%201=1",
        "state=all&person=" + "P" * 300,
        "state=all&kind=Zone%20Breach",
    ],
)
def test_history_refuses_what_it_cannot_audit_or_search(records: Records, query: str) -> None:
    async def scenario() -> None:
        async with console(records=records) as h:
            status, body = await _get(h, f"/api/alerts?{query}", DISPATCHER)
            assert status == 400, body
            assert "error" in body
            assert h.published.on("audit") == []  # nothing searched, nothing audited

    run(scenario)


def test_audit_search_is_for_auditors_pages_and_is_audited(records: Records) -> None:
    async def scenario() -> None:
        async with console(records=records) as h:
            for token in (DISPATCHER, VIEWER, PATROL):
                status, _ = await _get(h, "/api/audit", token)
                assert status == 403
            status, body = await _get(h, "/api/audit?limit=4", AUDITOR)
            assert status == 200, body
            assert body["total"] == 10 and body["next_offset"] == 4
            stamps = [r["ts"] for r in body["records"]]
            assert stamps == sorted(stamps, reverse=True) and stamps[0] == ts(0)
            status, body = await _get(h, "/api/audit?object=alert:h1", AUDITOR)
            assert {r["object"] for r in body["records"]} == {"alert:h1"}
            assert body["total"] == 3  # i = 1, 5, 9
            status, body = await _get(
                h, f"/api/audit?actor=op-9&from={ts(-3000)}&to={ts(1)}", AUDITOR
            )
            assert [r["ts"] for r in body["records"]] == [ts(0), ts(-1200), ts(-2400)]
            assert {r["actor"] for r in body["records"]} == {"op-9"}
            status, body = await _get(h, "/api/audit?actor=op%20-9;drop", AUDITOR)
            assert status == 400

            searches = h.published.on("audit")
            assert [k for k, _ in searches] == ["audit", "alert:h1", "user:op-9"]
            for _, rec in searches:
                assert rec["action"] == "audit_search"
                assert rec["actor"] == "aud-1" and rec["role"] == "auditor"
            assert searches[1][1]["reason"] == "audit: object=alert:h1 limit=50 offset=0"

    run(scenario)


def test_the_auditor_reads_only_the_audit(records: Records) -> None:
    async def scenario() -> None:
        async with console(records=records) as h:
            for path in ("/api/alerts", "/api/alerts?state=all", "/api/alerts/a1", "/api/tasks"):
                status, _ = await _get(h, path, AUDITOR)
                assert status == 403, path
            async with h.client.get("/api/stream", headers=bearer(AUDITOR)) as resp:
                assert resp.status == 403
            status, body = await _get(h, "/api/me", AUDITOR)
            assert status == 200 and body["role"] == "auditor"

    run(scenario)


def test_no_result_without_its_audit_record_and_503_without_a_store(records: Records) -> None:
    async def scenario() -> None:
        async with console(records=records) as h:
            h.published.fail = True
            status, body = await _get(h, "/api/alerts?state=all", DISPATCHER)
            assert status == 503 and "alerts" not in body
            status, body = await _get(h, "/api/audit", AUDITOR)
            assert status == 503 and "records" not in body
        async with console() as h:  # a console without a record store
            status, body = await _get(h, "/api/alerts?state=all", DISPATCHER)
            assert status == 503 and "record store" in body["error"]
            status, _ = await _get(h, "/api/audit", AUDITOR)
            assert status == 503

    run(scenario)


def test_a_missing_store_file_answers_503_and_is_not_created(tmp_path: Path) -> None:
    records = Records.open(None, str(tmp_path / "nothing-here"))

    async def scenario() -> None:
        async with console(records=records) as h:
            status, body = await _get(h, "/api/alerts?state=all", DISPATCHER)
            assert status == 503, body
            assert h.published.on("audit") == []

    run(scenario)
    assert not (tmp_path / "nothing-here").exists()  # read-only: never creates the store


def test_an_alert_of_the_history_opens_with_its_stored_revisions(records: Records) -> None:
    async def scenario() -> None:
        async with console(records=records) as h:
            status, body = await _get(h, "/api/alerts/h1?reason=review", DISPATCHER)
            assert status == 200, body
            assert body["source"] == "store"
            assert [r["seq"] for r in body["revisions"]] == [1, 2]
            assert body["alert"]["state"] == "resolved"
            assert h.published.on("audit")[-1][0] == "alert:h1"
            status, _ = await _get(h, "/api/alerts/h1", VIEWER)  # the history is dispatchers'
            assert status == 404
            status, body = await _get(h, "/api/alerts/a1", DISPATCHER)
            assert body["source"] == "live"

    run(scenario)


def test_restored_alerts_are_marked_cannot_be_acknowledged_and_close_audited(
    tmp_path: Path,
) -> None:
    """After a restart on an empty broker the console seeds its board from the store; such an
    alert is honest about what it is: acknowledging is refused (no worker tracks it), Resolve
    takes it off the board with an audit record, and that record keeps it off next time."""
    before = [alert("r1", seq=1), alert("r1", seq=2, state="escalated"), alert("r2", seq=1)]
    before.append(alert("r3", seq=1, state="resolved"))
    records = stored_records(str(tmp_path), alerts=before)
    store = filled_store()
    seeded = [a for a in records.restorable_alerts() if store.restore_alert(a)]
    assert sorted(a["alert_id"] for a in seeded) == ["r1", "r2"]  # not the resolved r3

    async def scenario() -> None:
        async with console(store, records=records) as h:
            status, body = await _get(h, "/api/alerts", DISPATCHER)
            board = {a["alert_id"]: a for a in body["alerts"]}
            assert board["r1"]["restored"] is True and board["r1"]["state"] == "escalated"
            assert "restored" not in board["a1"]
            status, body = await _get(h, "/api/alerts/r1", DISPATCHER)
            assert status == 200
            assert body["source"] == "store" and [r["seq"] for r in body["revisions"]] == [1, 2]

            resp = await h.client.post("/api/alerts/r1/ack", json={}, headers=bearer(DISPATCHER))
            assert resp.status == 409
            assert "no stream worker tracks it" in (await resp.json())["error"]
            assert h.published.on("alert-acks") == []
            resp = await h.client.post(
                "/api/alerts/r1/resolve", json={"note": "x"}, headers=bearer(DISPATCHER)
            )
            assert resp.status == 200, await resp.text()
            assert h.published.on("alert-acks") == []  # the worker would reject it as unknown
            key, rec = h.published.on("audit")[-1]
            assert key == "alert:r1" and rec["action"] == RESOLVE_RESTORED
            _status, body = await _get(h, "/api/alerts", DISPATCHER)
            assert "r1" not in {a["alert_id"] for a in body["alerts"]}
            closing = rec

        # that audit record, once the sink stored it, keeps r1 off the next start's board
        again = stored_records(str(tmp_path), audits=[closing])
        assert [a["alert_id"] for a in again.restorable_alerts()] == ["r2"]
        again.close()

    run(scenario)
    records.close()


def test_a_live_revision_replaces_a_restored_alert() -> None:
    store = Store("t")
    assert store.restore_alert(alert("x1", seq=5, state="escalated"))
    assert store.is_restored("x1")
    assert store.apply_alert(alert("x1", seq=1))  # live, even with a lower seq
    assert not store.is_restored("x1")
    held = store.alert("x1")
    assert held is not None and held["seq"] == 1 and "restored" not in held
    assert not store.restore_alert(alert("x1", seq=9))  # the topics hold it: left alone
    assert store.alert("x1") == held
