"""The console's HTTP API on its in-memory store: every route × role, audit, actions, SSE resume,
login limits, cookies, headers. No broker here (tests/streams/test_console_kafka.py has one)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.streams.consolekit import (
    DISPATCHER,
    PATROL,
    PATROL_OTHER,
    ROLE_TOKENS,
    VIEWER,
    Harness,
    alert,
    bearer,
    console,
    read_event,
    stored_records,
    task,
    ts,
)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


FOLLOW_UP = {"investigator", "negotiator", "social_services", "outreach"}
EVERYONE = {"dispatcher", "viewer", "patrol", "auditor", *FOLLOW_UP}
# (method, path, roles that may) for every route that needs authentication
ROUTES: list[tuple[str, str, set[str]]] = [
    ("GET", "/api/me", EVERYONE),
    ("GET", "/api/alerts", {"dispatcher", "viewer"}),
    ("GET", "/api/alerts?state=all", {"dispatcher"}),
    ("GET", "/api/alerts?state=open&person=P-7731", {"dispatcher"}),
    ("GET", "/api/audit", {"auditor"}),
    ("GET", "/api/audit?object=alert:a1", {"auditor"}),
    ("GET", "/api/alerts/a1", {"dispatcher", "viewer"}),
    ("POST", "/api/alerts/a1/ack", {"dispatcher"}),
    ("POST", "/api/alerts/a1/resolve", {"dispatcher"}),
    ("GET", "/api/tasks", {"dispatcher", "viewer", "patrol", *FOLLOW_UP}),
    ("GET", "/api/tasks?unit=SÖ-2150", {"dispatcher", "viewer"}),
    ("GET", "/api/tasks?role=investigator", {"dispatcher", "viewer", "investigator"}),
    ("GET", "/api/tasks?role=negotiator", {"dispatcher", "viewer", "negotiator"}),
    ("GET", "/api/tasks?alert=a1", {"dispatcher", "viewer"}),
    ("POST", "/api/tasks/t1/accept", {"patrol"}),  # SÖ-2140's respond task
    ("POST", "/api/tasks/t3/accept", {"investigator"}),  # the investigator's interview
    ("GET", "/api/units", {"dispatcher", "viewer"}),
    ("GET", "/api/stream", {"dispatcher", "viewer", "patrol", *FOLLOW_UP}),
    ("POST", "/logout", EVERYONE),
]


async def call(h: Harness, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    body = {"json": {"note": "x"}} if method == "POST" else {}
    async with h.client.request(method, path, headers=headers, **body) as resp:
        if path == "/api/stream" and resp.status == 200:
            return resp.status, resp.headers.get("Content-Type")
        return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("method", "path", "allowed"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_every_route_needs_a_token_and_the_right_role(
    method: str, path: str, allowed: set[str], tmp_path: Path
) -> None:
    records = stored_records(str(tmp_path), alerts=[alert("a1")])

    async def scenario() -> None:
        async with console(records=records) as h:
            status, body = await call(h, method, path, {})
            assert status == 401, body
            status, body = await call(h, method, path, bearer("not-a-token-at-all-xx"))
            assert status == 401, body
            for role, token in ROLE_TOKENS.items():
                status, body = await call(h, method, path, bearer(token))
                if role in allowed:
                    assert 200 <= status < 300, (role, status, body)
                else:
                    assert status == 403, (role, status, body)
                    assert "error" in body

    run(scenario)


def test_the_page_answers_401_without_a_session_and_200_with_one() -> None:
    async def scenario() -> None:
        async with console() as h:
            resp = await h.client.get("/")
            assert resp.status == 401
            assert "<title>" in await resp.text()
            resp = await h.client.get("/", headers=bearer(VIEWER))
            assert resp.status == 200
            resp = await h.client.get("/static/console.js")
            assert resp.status == 200  # the page's code is public: it holds no data
            for path in ("/static/%2e%2e/app.py", "/static/..%2fapp.py"):
                resp = await h.client.get(path)
                assert resp.status in (401, 403, 404), path
                assert "import" not in await resp.text()

    run(scenario)


def test_healthz_needs_no_token_and_tells_whether_the_console_is_consuming() -> None:
    async def scenario() -> None:
        async with console() as h:
            resp = await h.client.get("/healthz")
            assert resp.status == 200
            h.healthy[0] = False
            resp = await h.client.get("/healthz")
            assert resp.status == 503

    run(scenario)


def test_alerts_come_most_urgent_first_and_resolved_ones_leave_the_board() -> None:
    async def scenario() -> None:
        async with console() as h:
            h.store.apply_alert(alert("a3", priority=1, opened_s=-300))  # older p1: first
            h.store.apply_alert(alert("a4", priority=1, state="acknowledged", opened_s=-600))
            h.store.apply_alert(alert("a5", priority=1, state="escalated", opened_s=100))
            h.store.apply_alert(alert("a6", seq=1, priority=3, kind="tip"))
            h.store.apply_alert(alert("a6", seq=2, state="resolved", priority=3, kind="tip"))
            resp = await h.client.get("/api/alerts", headers=bearer(VIEWER))
            ids = [a["alert_id"] for a in (await resp.json())["alerts"]]
            assert ids == ["a5", "a3", "a1", "a4", "a2"]

    run(scenario)


def test_consulting_an_alert_writes_an_audit_record_first() -> None:
    async def scenario() -> None:
        async with console() as h:
            resp = await h.client.get("/api/alerts/a1?reason=review", headers=bearer(VIEWER))
            assert resp.status == 200
            body = await resp.json()
            assert body["alert"]["alert_id"] == "a1"
            assert [r["seq"] for r in body["revisions"]] == [1]
            assert body["ban"]["zones"]["features"][0]["properties"]["zone_id"] == "home"
            assert {t["task_id"] for t in body["tasks"]} == {"t1", "t2", "t3"}
            assert body["units"][0]["unit_id"] == "SÖ-2140"
            assert body["units"][0]["position"]["lat"] == 59.1966
            [(key, record)] = h.published.on("audit")
            assert key == "alert:a1"
            assert record == {
                "ts": "2026-11-22T21:50:00.000Z",
                "actor": "sup-3",
                "role": "viewer",
                "action": "consult",
                "object": "alert:a1",
                "reason": "supervisory review",
            }
            # a reason outside the closed set is refused: no free text reaches the audit log
            resp = await h.client.get("/api/alerts/a1?reason=curious", headers=bearer(VIEWER))
            assert resp.status == 400
            resp = await h.client.get("/api/alerts/nope", headers=bearer(VIEWER))
            assert resp.status == 404
            assert len(h.published.on("audit")) == 1
            # no audit, no detail
            h.published.fail = True
            resp = await h.client.get("/api/alerts/a1", headers=bearer(DISPATCHER))
            assert resp.status == 503
            assert "alert" not in await resp.json()

    run(scenario)


def test_acknowledge_and_resolve_publish_an_alert_action_once() -> None:
    async def scenario() -> None:
        async with console() as h:
            headers = bearer(DISPATCHER)
            resp = await h.client.post(
                "/api/alerts/a1/ack", json={"note": "Patrull på väg"}, headers=headers
            )
            assert resp.status == 202
            assert (await resp.json())["published"] is True
            [(key, action)] = h.published.on("alert-acks")
            assert key == "a1"
            assert action == {
                "alert_id": "a1",
                "action": "acknowledge",
                "by": "op-17",
                "ts": "2026-11-22T21:50:00.000Z",
                "note": "Patrull på väg",
            }
            [(akey, audit)] = h.published.on("audit")
            assert (akey, audit["action"], audit["actor"]) == ("alert:a1", "acknowledge", "op-17")
            assert "Patrull" not in str(audit)  # the note is free text: never in the audit log
            # a double click: not published twice
            resp = await h.client.post("/api/alerts/a1/ack", json={}, headers=headers)
            assert resp.status == 200
            assert (await resp.json())["published"] is False
            # the worker's revision arrives: acknowledging again changes nothing
            h.store.apply_alert(alert("a1", seq=2, state="acknowledged"))
            h.store.apply_alert(alert("a1", seq=1))  # a late redelivery of an older revision
            assert h.store.alert("a1")["state"] == "acknowledged"  # type: ignore[index]
            resp = await h.client.post("/api/alerts/a1/ack", json={}, headers=headers)
            assert (resp.status, (await resp.json())["published"]) == (200, False)
            assert len(h.published.on("alert-acks")) == 1
            resp = await h.client.post("/api/alerts/a1/resolve", json={"note": ""}, headers=headers)
            assert resp.status == 202
            h.store.apply_alert(alert("a1", seq=3, state="resolved"))
            for path in ("/api/alerts/a1/resolve", "/api/alerts/a1/ack"):
                resp = await h.client.post(path, json={}, headers=headers)
                assert (resp.status, (await resp.json())["published"]) == (200, False)
            assert [v["action"] for _, v in h.published.on("alert-acks")] == [
                "acknowledge",
                "resolve",
            ]
            # bad requests
            resp = await h.client.post("/api/alerts/zz/ack", json={}, headers=headers)
            assert resp.status == 404
            resp = await h.client.post(
                "/api/alerts/a2/ack", json={"note": "x" * 501}, headers=headers
            )
            assert resp.status == 400
            resp = await h.client.post("/api/alerts/a2/ack", json={"note": 5}, headers=headers)
            assert resp.status == 400
            h.published.fail = True
            resp = await h.client.post("/api/alerts/a2/ack", json={}, headers=headers)
            assert resp.status == 503

    run(scenario)


def test_posts_must_be_json_from_this_origin() -> None:
    async def scenario() -> None:
        async with console() as h:
            headers = bearer(DISPATCHER)
            resp = await h.client.post(
                "/api/alerts/a1/ack",
                data="note=x",
                headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
            )
            assert resp.status == 415
            resp = await h.client.post(
                "/api/alerts/a1/ack", json={}, headers={**headers, "Origin": "https://evil.example"}
            )
            assert resp.status == 403
            host = f"{h.client.host}:{h.client.port}"
            resp = await h.client.post(
                "/api/alerts/a1/ack", json={}, headers={**headers, "Origin": f"http://{host}"}
            )
            assert resp.status == 202
            resp = await h.client.post(
                "/login",
                data="token=" + DISPATCHER,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert resp.status == 415
            assert h.published.on("alert-acks")[0][0] == "a1"

    run(scenario)


def test_a_patrol_unit_sees_only_its_own_tasks() -> None:
    async def scenario() -> None:
        async with console() as h:
            resp = await h.client.get("/api/tasks", headers=bearer(PATROL))
            body = await resp.json()
            assert [t["task_id"] for t in body["tasks"]] == ["t1"]
            assert body["unit"] == "SÖ-2140"
            resp = await h.client.get("/api/tasks?unit=SÖ-2140", headers=bearer(PATROL))
            assert [t["task_id"] for t in (await resp.json())["tasks"]] == ["t1"]
            resp = await h.client.get("/api/tasks", headers=bearer(PATROL_OTHER))
            assert [t["task_id"] for t in (await resp.json())["tasks"]] == ["t2"]
            for path in (
                "/api/tasks?unit=SÖ-2150",
                "/api/tasks?role=investigator",
                "/api/tasks?alert=a1",
                "/api/alerts/a1",
                "/api/alerts",
            ):
                resp = await h.client.get(path, headers=bearer(PATROL))
                assert resp.status == 403, path
            # dispatchers see every unit's and role's tasks; a closed task follows its alert
            resp = await h.client.get("/api/tasks?unit=SÖ-2150", headers=bearer(DISPATCHER))
            assert [t["task_id"] for t in (await resp.json())["tasks"]] == ["t2"]
            h.store.apply_alert(alert("a1", seq=2, state="resolved"))
            resp = await h.client.get("/api/tasks", headers=bearer(PATROL))
            assert [t["closed"] for t in (await resp.json())["tasks"]] == [True]
            assert h.published.records == []  # reading tasks is not an alert consultation

    run(scenario)


def test_the_stream_starts_with_a_snapshot_and_resumes_with_last_event_id() -> None:
    async def scenario() -> None:
        async with console() as h:
            resp = await h.client.get("/api/stream", headers=bearer(DISPATCHER))
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            snap = await read_event(resp)
            assert snap["event"] == "snapshot"
            assert [a["alert_id"] for a in snap["data"]["alerts"]] == ["a1", "a2"]
            assert len(snap["data"]["tasks"]) == 3
            h.store.apply_alert(alert("a7", priority=1))
            ev = await read_event(resp)
            assert (ev["event"], ev["data"]["alert_id"]) == ("alert", "a7")
            last_id = ev["id"]
            resp.close()  # the connection drops ...
            h.store.apply_alert(alert("a7", seq=2, state="escalated"))  # ... and two changes
            h.store.apply_task(task("t9", "SÖ-2140", alert_id="a7"))  # happen meanwhile
            resp = await h.client.get(
                "/api/stream", headers={**bearer(DISPATCHER), "Last-Event-ID": last_id}
            )
            first, second = await read_event(resp), await read_event(resp)
            assert (first["event"], first["data"]["seq"], first["data"]["state"]) == (
                "alert",
                2,
                "escalated",
            )
            assert (second["event"], second["data"]["task_id"]) == ("task", "t9")
            assert int(second["id"].rpartition(".")[2]) == int(last_id.rpartition(".")[2]) + 2
            h.store.apply_alert(alert("a7", seq=3, state="acknowledged"))
            assert (await read_event(resp))["data"]["seq"] == 3  # and it goes on live
            resp.close()
            # an id from another console instance (a restart): a fresh snapshot instead
            resp = await h.client.get(
                "/api/stream", headers={**bearer(DISPATCHER), "Last-Event-ID": "gone.12"}
            )
            snap = await read_event(resp)
            assert snap["event"] == "snapshot"
            assert {a["alert_id"] for a in snap["data"]["alerts"]} == {"a1", "a2", "a7"}
            resp.close()

    run(scenario)


def test_a_patrol_stream_carries_only_its_own_units_tasks() -> None:
    async def scenario() -> None:
        async with console() as h:
            resp = await h.client.get("/api/stream", headers=bearer(PATROL))
            snap = await read_event(resp)
            assert snap["data"]["alerts"] == []
            assert [t["task_id"] for t in snap["data"]["tasks"]] == ["t1"]
            h.store.apply_alert(alert("a8"))
            h.store.apply_task(task("t10", "SÖ-2150", alert_id="a8"))
            h.store.apply_task(
                task("t11", None, kind="interview", role="investigator", alert_id="a8")
            )
            h.store.apply_task(task("t12", "SÖ-2140", alert_id="a8"))
            ev = await read_event(resp)
            assert (ev["event"], ev["data"]["task_id"]) == ("task", "t12")
            resp.close()

    run(scenario)


def test_login_sets_a_strict_httponly_session_cookie() -> None:
    async def scenario() -> None:
        async with console() as h:
            resp = await h.client.post("/login", json={"token": DISPATCHER})
            assert resp.status == 200
            assert (await resp.json())["role"] == "dispatcher"
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            assert "Path=/" in cookie
            assert DISPATCHER not in cookie  # a session id, never the token
            resp = await h.client.get("/api/alerts")  # the client sends the cookie back
            assert resp.status == 200
            [(key, record)] = h.published.on("audit")
            assert (key, record["action"], record["actor"]) == ("user:op-17", "login", "op-17")
            resp = await h.client.post("/logout", json={})
            assert resp.status == 200
            resp = await h.client.get("/api/alerts")
            assert resp.status == 401
            h.client.session.cookie_jar.update_cookies({"banwatch_session": "forged-session-id"})
            resp = await h.client.get("/api/alerts")
            assert resp.status == 401

    run(scenario)


def test_failed_logins_and_bearer_tokens_are_rate_limited() -> None:
    async def scenario() -> None:
        async with console() as h:
            for _ in range(3):
                resp = await h.client.post("/login", json={"token": "wrong-token-123456789"})
                assert resp.status == 401
            for _ in range(2):
                resp = await h.client.get("/api/alerts", headers=bearer("wrong-token-987654321"))
                assert resp.status == 401
            resp = await h.client.post("/login", json={"token": DISPATCHER})
            assert resp.status == 429  # locked out, the right token included
            assert int(resp.headers["Retry-After"]) >= 1
            resp = await h.client.get("/api/alerts", headers=bearer(DISPATCHER))
            assert resp.status == 429
            assert h.published.records == []

    run(scenario)


def test_the_window_passes() -> None:
    from streams.console.auth import Limiter

    t = [0.0]
    limiter = Limiter(per_client=2, overall=3, window_s=60, clock=lambda: t[0])
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") == 60
    assert limiter.retry_after("b") == 0
    limiter.failed("b")
    assert limiter.retry_after("c") > 0  # the overall cap: a spread-out guess is braked too
    t[0] = 61
    assert limiter.retry_after("a") == 0


@pytest.mark.parametrize(
    "path", ["/", "/api/alerts", "/api/alerts/a1", "/static/console.js", "/nope", "/healthz"]
)
@pytest.mark.parametrize("auth", [True, False])
def test_security_headers_on_every_response(path: str, auth: bool) -> None:
    async def scenario() -> None:
        async with console() as h:
            resp = await h.client.get(path, headers=bearer(DISPATCHER) if auth else {})
            csp = resp.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Referrer-Policy"] == "no-referrer"
            if path.startswith("/api/"):
                assert resp.headers["Cache-Control"] == "no-store"

    run(scenario)


def test_logs_carry_no_token_note_or_coordinates(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with console() as h:
            await h.client.post("/login", json={"token": DISPATCHER})
            await h.client.post("/login", json={"token": "wrong-token-123456789"})
            await h.client.get("/api/alerts/a1")
            await h.client.post("/api/alerts/a1/ack", json={"note": "SECRET NOTE about the home"})
            h.published.fail = True
            await h.client.post("/api/alerts/a2/ack", json={"note": "SECRET NOTE"})

    with caplog.at_level(logging.DEBUG, logger="banwatch"):
        run(scenario)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "login" in text and "acknowledge" in text  # it did log
    for secret in (DISPATCHER, "wrong-token", "SECRET", "59.19", "17.62", "banwatch_session"):
        assert secret not in text


def test_the_store_keeps_the_highest_seq_and_tells_what_a_client_missed() -> None:
    from streams.console.store import Store

    s = Store("x")
    assert s.apply_alert(alert("a", seq=2)) is True
    assert s.apply_alert(alert("a", seq=1)) is False  # older: kept as a revision only
    assert [r["seq"] for r in s.revisions("a")] == [1, 2]
    assert s.apply_alert({"alert_id": "b"}) is False  # not an alert revision
    assert s.skipped == 1
    mark = s.last_event_id
    s.apply_alert(alert("a", seq=3, state="updated"))
    assert [e.data["seq"] for e in s.since(mark) or []] == [3]
    assert s.since("y.1") is None and s.since("x.99") is None and s.since("x.abc") is None
    s.apply_ban("KF-1", {**{"ban_id": "KF-1", "version": 2}})
    s.apply_ban("KF-1", {"ban_id": "KF-1", "version": 1})
    assert s.ban("KF-1") == {"ban_id": "KF-1", "version": 2}
    s.apply_ban("KF-1", None)  # a tombstone: the ban is lifted
    assert s.ban("KF-1") is None
    s.apply_unit({"unit_id": "U", "ts": ts(10), "lat": 1.0, "lon": 2.0})
    s.apply_unit({"unit_id": "U", "ts": ts(5), "lat": 3.0, "lon": 4.0})
    assert s.unit("U")["lat"] == 1.0  # type: ignore[index]
    small = Store("z", max_events=2)
    for n in range(1, 5):
        small.apply_alert(alert("a", seq=n))
    assert small.since("z.1") is None  # older than the log keeps: a snapshot instead
    assert [e.n for e in small.since("z.2") or []] == [3, 4]


def test_tokens_are_found_only_when_equal() -> None:
    from config.settings import Principal
    from streams.console.auth import Tokens

    p = Principal(user="u", role="viewer")
    tokens = Tokens({"a" * 32: p, "b" * 32: Principal(user="v", role="dispatcher")})
    assert tokens.find("a" * 32) is p
    assert tokens.find("a" * 31) is None
    assert tokens.find("a" * 32 + " ") is None
    assert tokens.find("") is None
