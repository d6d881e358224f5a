"""The restart test: `banwatch up` killed outright (broker included) comes back with its bans,
and its console with the alerts of before and their audit trail.

The embedded broker keeps nothing across a restart; the record store does. A ban imported into
the first `up` is stored by its in-process sink, a fix raises an alert, a dispatcher consults it
(an audit record); after SIGKILL of the whole service, the second `up` on the same data
directory publishes the ban again before its worker starts, and a fix inside the zone raises
a new alert. Its console shows the alert of before on the board, marked restored (no worker
tracks it: acknowledging is refused), in the history, and the consultation in the audit.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import free_port
from streams.store import schema
from streams.store.db import engine_for
from tests.streams.test_commands import banwatch
from tests.streams.up import Up
from tests.streams.workers import ban, fix, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(300)]

DISPATCHER = "restore-dispatcher-token-0123"
AUDITOR = "restore-auditor-token-012345"
TOKENS = {
    DISPATCHER: {"user": "op-17", "role": "dispatcher"},
    AUDITOR: {"user": "aud-1", "role": "auditor"},
}


def api(base: str, path: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One console API call (GET, or POST with a JSON body): status and decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base.rstrip("/") + path, data=data)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _port_free(port: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"port {port} still taken")


def test_up_killed_with_its_broker_restores_the_bans_and_a_fix_still_alerts(
    tmp_path: Path,
) -> None:
    ports = {k: str(free_port()) for k in ("BROKER", "CONSOLE", "METRICS", "STORE")}
    data = tmp_path / "data"
    env = {
        **os.environ,
        "BANWATCH_EMBEDDED_BROKER_PORT": ports["BROKER"],
        "BANWATCH_CONSOLE_PORT": ports["CONSOLE"],
        "BANWATCH_METRICS_PORT": ports["METRICS"],
        "BANWATCH_STORE_METRICS_PORT": ports["STORE"],
        "BANWATCH_BROKER_SESSION_TIMEOUT_S": "2",
        "BANWATCH_BROKER_HEARTBEAT_S": "0.5",
        "BANWATCH_DATA_DIR": str(data),
        "BANWATCH_CONSOLE_TOKENS": json.dumps(TOKENS),
    }
    env.pop("BANWATCH_KAFKA_BOOTSTRAP", None)
    bootstrap = f"127.0.0.1:{ports['BROKER']}"

    first = Up(env)
    try:
        first.wait_ready()
        assert not any(x.startswith("store: restored") for x in first.lines), first.lines
        bans = tmp_path / "bans.jsonl"
        bans.write_text(json.dumps(ban("KF-R1", "P-R1", "P-R1V", 17.6, 59.2)) + "\n")
        user_env = {k: v for k, v in env.items() if k.startswith("BANWATCH_")}
        assert banwatch("bans", "import", str(bans), env=user_env).returncode == 0
        engine = engine_for(None, str(data))
        deadline = time.monotonic() + 30
        while True:  # the in-process sink stores the ban
            with engine.connect() as conn:
                stored = conn.execute(sa.select(schema.bans.c.ban_id)).scalars().all()
            if stored == ["KF-R1"]:
                break
            assert time.monotonic() < deadline, "\n".join(first.lines[-30:])
            time.sleep(0.2)
        # an alert, consulted by a dispatcher: both stored before the kill
        p = make_producer(bootstrap)
        produce_json(p, "positions", "P-R1", fix("P-R1", "EM-R1", 59.201, 17.601, ts(-60)))
        p.flush()
        p.close()
        before = None
        for r in follow(bootstrap, "alerts", True, idle_timeout_s=15):
            before = json.loads(r.value or b"{}")
            if before.get("ban_id") == "KF-R1":
                break
        assert before is not None and before.get("ban_id") == "KF-R1", first.lines[-30:]
        alert_id = before["alert_id"]
        deadline = time.monotonic() + 15
        while (status := api(first.console, f"/api/alerts/{alert_id}", DISPATCHER)[0]) == 404:
            assert time.monotonic() < deadline, "the console never showed the alert"
            time.sleep(0.2)
        assert status == 200
        deadline = time.monotonic() + 30
        while True:  # the sink stores the alert and the consultation's audit record
            with engine.connect() as conn:
                alerts = conn.execute(sa.select(schema.alerts.c.alert_id)).scalars().all()
                consults = (
                    conn.execute(
                        sa.select(schema.audit.c.actor).where(
                            schema.audit.c.object == f"alert:{alert_id}",
                            schema.audit.c.action == "consult",
                        )
                    )
                    .scalars()
                    .all()
                )
            if alert_id in alerts and consults == ["op-17"]:
                break
            assert time.monotonic() < deadline, "\n".join(first.lines[-30:])
            time.sleep(0.2)
        engine.dispose()
    finally:
        first.kill_everything()
    _port_free(int(ports["BROKER"]))

    second = Up(env)
    try:
        second.wait_ready()
        restored = [x for x in second.lines if x.startswith("store: restored")]
        assert restored and restored[0].startswith("store: restored 1 bans"), second.lines
        assert second.lines.index(restored[0]) < second.lines.index(f"broker: {bootstrap}")
        p = make_producer(bootstrap)
        produce_json(p, "positions", "P-R1", fix("P-R1", "EM-R1", 59.201, 17.601, ts()))
        p.flush()
        p.close()
        got = None
        for r in follow(bootstrap, "alerts", True, idle_timeout_s=15):
            got = json.loads(r.value or b"{}")
            if got.get("ban_id") == "KF-R1":
                break
        assert got is not None and got.get("ban_id") == "KF-R1", second.lines[-30:]
        assert got["kind"] == "zone_breach" and got["priority"] == 1
        assert got["alert_id"] != alert_id

        # the console: the alert of before on the board, restored; in the history; its audit
        status, body = api(second.console, "/api/alerts", DISPATCHER)
        assert status == 200
        board = {a["alert_id"]: a for a in body["alerts"]}
        assert board[alert_id]["restored"] is True, body
        assert board[alert_id]["ban_id"] == "KF-R1"
        status, body = api(second.console, f"/api/alerts/{alert_id}/ack", DISPATCHER, {})
        assert status == 409 and body["restored"] is True
        status, body = api(second.console, "/api/alerts?state=all&ban_id=KF-R1", DISPATCHER)
        assert status == 200 and alert_id in {a["alert_id"] for a in body["alerts"]}, body
        status, body = api(second.console, f"/api/audit?object=alert:{alert_id}", AUDITOR)
        assert status == 200, body
        trail = [(r["actor"], r["action"]) for r in body["records"]]
        assert ("op-17", "consult") in trail, trail
        deadline = time.monotonic() + 15
        while True:  # the restore itself is audited, and stored by the second sink
            status, body = api(second.console, "/api/audit?object=ban:KF-R1", AUDITOR)
            done = {(r["actor"], r["action"]) for r in body["records"]}
            if ("banwatch-store", "import") in done:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.3)
    finally:
        rc = second.stop()
    assert rc == 0, "\n".join(second.lines[-30:])
