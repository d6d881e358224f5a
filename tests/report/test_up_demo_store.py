"""`banwatch report` on the store of a real `banwatch up --demo` (embedded broker, worker,
in-process sink, SQLite under a data directory): once the demo's breaches are stored, the report
on that store, run while `up` still runs, writes HTML and JSON naming nobody, and its audit
record is published to the `audit` topic (the broker answers) and stored once.

The same `up --demo` closes the loop through the console with the tokens it prints: a
negotiator records a talk held with consent and a referral appears in the social-services
queue; the patrol token of a unit no actor drives sees its own tasks and nothing else."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from streams.kafka.blocking import follow
from streams.kafka.broker import free_port
from streams.store import schema
from streams.store.db import SQLITE_FILE, engine_for
from streams.store.export import export
from tests.report.store import write_jsonl
from tests.report.test_demo_store import check_private
from tests.streams.test_commands import banwatch
from tests.streams.up import Up

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(300)]


def test_report_on_the_store_of_up_demo(tmp_path: Path) -> None:
    ports = {k: str(free_port()) for k in ("BROKER", "CONSOLE", "METRICS", "STORE", "WEB")}
    data = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BANWATCH_")},
        "BANWATCH_EMBEDDED_BROKER_PORT": ports["BROKER"],
        "BANWATCH_CONSOLE_PORT": ports["CONSOLE"],
        "BANWATCH_METRICS_PORT": ports["METRICS"],
        "BANWATCH_STORE_METRICS_PORT": ports["STORE"],
        "BANWATCH_WORKER_WEB_PORT": ports["WEB"],
        "BANWATCH_BROKER_SESSION_TIMEOUT_S": "2",
        "BANWATCH_BROKER_HEARTBEAT_S": "0.5",
        "BANWATCH_DATA_DIR": str(data),
    }
    bootstrap = f"127.0.0.1:{ports['BROKER']}"
    up = Up(env, "--demo")
    try:
        up.wait_ready(120)
        engine = engine_for(None, str(data))
        deadline = time.monotonic() + 150
        a = schema.alerts
        while True:  # the demo's zone breach (about 40 s in) is stored by the sink
            with engine.connect() as conn:
                n = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(a)
                    .where(a.c.kind == "zone_breach", a.c.priority == 1)
                ).scalar_one()
            if n:
                break
            assert time.monotonic() < deadline and up.proc.poll() is None, up.tail()
            time.sleep(1)

        today = datetime.now(ZoneInfo("Europe/Stockholm")).date()
        first, last = str(today - timedelta(days=1)), str(today)
        out, js = tmp_path / "demo.html", tmp_path / "demo.json"
        user_env = {k: v for k, v in env.items() if k.startswith("BANWATCH_")}
        r = banwatch(
            "report", "--from", first, "--to", last, "--out", str(out), "--json", str(js),
            "--by", "analyst-up", "--quiet", env=user_env, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert f"published to audit on {bootstrap}" in r.stdout, r.stdout
        fig = json.loads(js.read_text("utf-8"))
        assert fig["schema_version"] == 1 and fig["alerts"]["total"] == "<5"
        html = out.read_text("utf-8")
        assert html.startswith("<!DOCTYPE html>") and "<svg" in html
        rows = export(engine, datetime(2000, 1, 1), datetime(2100, 1, 1))
        check_private(html, write_jsonl(tmp_path / "stored.jsonl", rows.records()))

        obj = f"report:{first}..{last}"
        on_topic = [
            json.loads(rec.value or b"")
            for rec in follow(bootstrap, "audit", True, idle_timeout_s=2)
            if rec.key == obj.encode()
        ]
        assert [(v["actor"], v["action"]) for v in on_topic] == [("analyst-up", "consult")]
        time.sleep(3)  # the sink has read the published copy by now: still one row
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(schema.audit.c.payload).where(schema.audit.c.object == obj)
            ).scalars()
            assert list(stored) == on_topic
        engine.dispose()
        _close_the_loop_in_the_console(up)
    finally:
        up.stop(40, group=True)
    assert (data / SQLITE_FILE).is_file()


def _api(base: str, token: str, path: str, body: object = None) -> tuple[int, object]:
    req = urllib.request.Request(
        base.rstrip("/") + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def _close_the_loop_in_the_console(up: Up) -> None:
    tokens = {
        line.split("(", 1)[1].split(")", 1)[0]: line.rsplit(" ", 1)[1]
        for line in up.lines
        if line.startswith("console token (")
    }
    assert {"dispatcher", "patrol SÖ-2150", "negotiator", "social_services"} <= set(tokens), tokens
    base = up.console
    patrol = tokens["patrol SÖ-2150"]
    assert _api(base, patrol, "/api/tasks?unit=" + urllib.parse.quote("SÖ-2150"))[0] == 200
    assert _api(base, patrol, "/api/alerts")[0] == 403
    assert _api(base, patrol, "/api/tasks?unit=" + urllib.parse.quote("SÖ-2140"))[0] == 403

    negotiator = tokens["negotiator"]
    deadline = time.monotonic() + 60
    talk = None
    while talk is None:  # the demo leaves P-7731's talk for a person (streams/demo/actors.py)
        status, got = _api(base, negotiator, "/api/tasks?role=negotiator")
        assert status == 200 and isinstance(got, dict)
        talk = next(
            (
                t
                for t in got["tasks"]
                if t["kind"] == "motivational_talk"
                and t.get("state") == "assigned"
                and t.get("restrained_person") == "P-7731"
            ),
            None,
        )
        assert talk is not None or time.monotonic() < deadline, got
        time.sleep(1)
    body = {"outcome": "held_accepts_help", "consent_to_share": True, "note": "demo"}
    status, _ = _api(base, negotiator, f"/api/tasks/{talk['task_id']}/done", body)
    assert status == 202
    social = tokens["social_services"]
    deadline = time.monotonic() + 30
    while True:  # the worker closes the talk and the referral reaches social services
        status, got = _api(base, social, "/api/tasks?role=social_services")
        assert status == 200 and isinstance(got, dict)
        referrals = [
            t
            for t in got["tasks"]
            if t["kind"] == "referral" and t.get("restrained_person") == "P-7731"
        ]
        if referrals:
            break
        assert time.monotonic() < deadline, got
        time.sleep(1)
    referral = referrals[0]
    assert talk["task_id"] in referral["chain"]
    assert referral.get("target") is None and referral.get("alert_id") is None
