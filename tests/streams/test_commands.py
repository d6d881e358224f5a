"""`banwatch bans import`, `banwatch tail` and `banwatch up`, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.topics import ensure_topics
from tests.streams.workers import ROOT, ban, fix, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(120)]


def banwatch(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_all(bootstrap: str, topic: str) -> list[tuple[str | None, dict[str, object]]]:
    return [
        (None if r.key is None else r.key.decode(), json.loads(r.value))
        for r in follow(bootstrap, topic, True, idle_timeout_s=0.5)
        if r.value is not None
    ]


def test_bans_import_validates_everything_first_and_names_line_and_field(
    broker: EmbeddedBroker, prefix: str, tmp_path: Path
) -> None:
    ensure_topics(broker.bootstrap, prefix)
    good = ban("KF-I1", "P-I1", "P-I1V", 17.6, 59.2)
    bad = ban("KF-I2", "P-I2", "P-I2V", 17.6, 59.2)
    bad["zones"]["features"][0]["geometry"]["coordinates"] = [
        [[17.6, 59.2], [17.61, 59.21], [17.61, 59.2], [17.6, 59.21], [17.6, 59.2]]
    ]  # a bow tie: self-intersecting
    path = tmp_path / "bans.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    env = {"BANWATCH_KAFKA_BOOTSTRAP": broker.bootstrap, "BANWATCH_TOPIC_PREFIX": prefix}
    r = banwatch("bans", "import", str(path), env=env)
    assert r.returncode == 2
    assert "line 2" in r.stderr and "KF-I2" in r.stderr and "zones" in r.stderr, r.stderr
    assert read_all(broker.bootstrap, prefix + "contact-bans") == []  # nothing half-applied

    path.write_text(json.dumps([good, {**bad, "zones": good["zones"]}]))
    r = banwatch("bans", "import", str(path), "--by", "op-17", env=env)
    assert r.returncode == 0, r.stderr
    assert "imported 2 bans" in r.stdout
    published = read_all(broker.bootstrap, prefix + "contact-bans")
    assert sorted(k for k, _ in published) == ["KF-I1", "KF-I2"]
    audit = [v for _, v in read_all(broker.bootstrap, prefix + "audit")]
    assert sorted(a["object"] for a in audit) == ["ban:KF-I1", "ban:KF-I2"]
    assert {(a["actor"], a["action"]) for a in audit} == {("op-17", "import")}


#: an alert revision as the worker writes it (what `tail alerts` prints a line of)
ALERT = {
    "alert_id": "a1",
    "seq": 1,
    "state": "open",
    "kind": "zone_breach",
    "priority": 1,
    "confidence": "confirmed",
    "ban_id": "KF-T1",
    "restrained_person": "P-T1",
    "zone_id": "home",
    "opened_at": ts(),
    "updated_at": ts(),
    "distance_m": 0.0,
    "recommended_units": [{"unit_id": "SÖ-1", "distance_m": 300.0}],
}


def test_tail_follows_alerts_and_one_units_tasks(broker: EmbeddedBroker, prefix: str) -> None:
    ensure_topics(broker.bootstrap, prefix)
    env = {"BANWATCH_KAFKA_BOOTSTRAP": broker.bootstrap, "BANWATCH_TOPIC_PREFIX": prefix}
    p = make_producer(broker.bootstrap)
    produce_json(p, prefix + "alerts", "a1", {**ALERT, "opened_at": ts(), "updated_at": ts()})
    for unit in ("SÖ-1", "SÖ-2"):
        produce_json(
            p,
            prefix + "patrol-tasks",
            unit,
            {
                "task_id": f"t-{unit}",
                "alert_id": "a1",
                "kind": "respond",
                "priority": 1,
                "unit_id": unit,
                "role": None,
                "ban_id": "KF-T1",
                "created_at": ts(),
                "due_by": ts(600),
                "instructions": "go",
            },
        )
    p.flush()
    p.close()
    out = banwatch_tail(env, "alerts", "--from-beginning")
    assert "zone_breach" in out and "KF-T1" in out and "P1" in out and "SÖ-1" in out
    out = banwatch_tail(env, "tasks", "--from-beginning", "--unit", "SÖ-2", "--json")
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert [t["unit_id"] for t in rows] == ["SÖ-2"]
    audit = [v for _, v in read_all(broker.bootstrap, prefix + "audit")]
    assert sorted((a["action"], a["object"]) for a in audit) == [
        ("consult", "topic:alerts"),
        ("consult", "topic:tasks"),
    ]


def banwatch_tail(env: dict[str, str], *args: str) -> str:
    """Run `banwatch tail` for a few seconds (it follows forever), then interrupt it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "tail", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return out


def test_up_runs_the_service_and_an_imported_ban_plus_a_fix_alert(tmp_path: Path) -> None:
    ports = {k: str(free_port()) for k in ("BROKER", "CONSOLE", "METRICS")}
    env = {
        **os.environ,
        "BANWATCH_EMBEDDED_BROKER_PORT": ports["BROKER"],
        "BANWATCH_CONSOLE_PORT": ports["CONSOLE"],
        "BANWATCH_METRICS_PORT": ports["METRICS"],
        "BANWATCH_BROKER_SESSION_TIMEOUT_S": "2",
        "BANWATCH_BROKER_HEARTBEAT_S": "0.5",
    }
    env.pop("BANWATCH_KAFKA_BOOTSTRAP", None)
    t0 = time.monotonic()
    up = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert up.stdout is not None
        for line in up.stdout:
            lines.append(line.rstrip())
            if line.startswith("ready in"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(60), "\n".join(lines)
        bootstrap = f"127.0.0.1:{ports['BROKER']}"
        assert f"broker: {bootstrap}" in lines
        assert any(x.startswith("console: http://127.0.0.1:") for x in lines), lines
        assert f"metrics: http://127.0.0.1:{ports['METRICS']}/metrics" in lines
        assert any(x.startswith("console token (dispatcher): ") for x in lines)
        assert not any(x.startswith("console token (patrol") for x in lines), lines  # demo only
        assert time.monotonic() - t0 < 30

        bans = tmp_path / "bans.jsonl"
        bans.write_text(json.dumps(ban("KF-U1", "P-U1", "P-U1V", 17.6, 59.2)) + "\n")
        user_env = {k: v for k, v in env.items() if k.startswith("BANWATCH_")}
        assert banwatch("bans", "import", str(bans), env=user_env).returncode == 0
        time.sleep(0.5)
        p = make_producer(bootstrap)
        sent = time.monotonic()
        produce_json(p, "positions", "P-U1", fix("P-U1", "EM-U1", 59.201, 17.601, ts()))
        p.flush()
        p.close()
        got = None
        for r in follow(bootstrap, "alerts", True, idle_timeout_s=10):
            got = json.loads(r.value or b"{}")
            if got.get("ban_id") == "KF-U1":
                break
        took = time.monotonic() - sent
        assert got is not None and got["kind"] == "zone_breach" and got["priority"] == 1
        assert took < 2.0, f"alert after {took:.2f} s"
    finally:
        up.send_signal(signal.SIGINT)
        rc = up.wait(30)
    assert rc == 0, "\n".join(lines[-30:])
    with socket.socket() as s:  # the broker is gone with it
        assert s.connect_ex(("127.0.0.1", int(ports["BROKER"]))) != 0
