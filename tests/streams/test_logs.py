"""What a run exposes: nothing personal in its logs or metrics, no socket beyond loopback.

A full run: the embedded broker, `banwatch bans import`, `banwatch worker` and `banwatch
console` as separate processes at the log level production uses, fed breaches, a protected
person's phone, incidents with free text, patrol cars, hostile records carrying the same data,
and console traffic with good and bad tokens, an acknowledgement with a note and a
consultation. Everything every process printed (and the broker's own log) is then searched for
the coordinates, free texts and tokens that went in; the worker's and the console's metrics for
every id, coordinate and token.

Markers are unusual on purpose (coordinates with seven decimals, texts no code would write), so
a hit is a leak, not a coincidence; `test_the_search_finds_what_it_looks_for` shows it would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker, free_port
from tests.streams.workers import ROOT, WorkerProc, fix, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]

TOKEN = "log-test-dispatcher-TOKEN-5b1e9c"
WRONG_TOKEN = "log-test-WRONG-token-77aa31c0"
HOME = (59.3123457, 18.0712347)  # corner of the home zone (lat, lon)
INSIDE = (59.3133457, 18.0722347)
VICTIM = (59.3134561, 18.0723451)
PATROL = (59.3151234, 18.0698765)
INCIDENT = (59.3129876, 18.0718765)
NOTE_INCIDENT = "Grannen PRIVATE-NOTE-inc-4471 såg honom vid porten"
NOTE_ACK = "PRIVATE-NOTE-ack-9913 på väg"
LABEL = "Bostad PRIVATE-LABEL-3320"
PERSON, VICTIM_ID, BAN = "P-LOG7731", "P-LOG1102", "KF-LOG0042"


def _ban() -> dict[str, Any]:
    lat, lon = HOME
    d = 0.002
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    return {
        "ban_id": BAN,
        "version": 1,
        "kind": "extended",
        "status": "active",
        "restrained_person": PERSON,
        "protected_persons": [VICTIM_ID],
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": "2028-01-01T00:00:00Z",
        "electronic_monitoring": True,
        "proximity_m": 300,
        "zones": {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"zone_id": "home", "label": LABEL, "buffer_m": 20},
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            ],
        },
    }


def secrets_in(text: str, secrets: Iterable[str]) -> list[str]:
    return sorted({s for s in secrets if s in text})


def coordinate_forms(*points: tuple[float, float]) -> list[str]:
    """How a coordinate could be printed: in full, or cut to five or four decimals."""
    out = []
    for point in points:
        for v in point:
            out += [repr(v), f"{v:.5f}", f"{v:.4f}"]
    return out


SECRETS = [
    *coordinate_forms(HOME, INSIDE, VICTIM, PATROL, INCIDENT),
    NOTE_INCIDENT,
    "PRIVATE-NOTE-inc-4471",
    NOTE_ACK,
    "PRIVATE-NOTE-ack-9913",
    LABEL,
    "PRIVATE-LABEL-3320",
    TOKEN,
    WRONG_TOKEN,
]


def test_the_search_finds_what_it_looks_for() -> None:
    line = f"2026-11-22 INFO banwatch.worker: fix at {INSIDE[0]:.4f}, note {NOTE_ACK!r}"
    assert secrets_in(line, SECRETS) == sorted(["59.3133", NOTE_ACK, "PRIVATE-NOTE-ack-9913"])


class Proc:
    """A `banwatch` command in its own process, its output collected."""

    def __init__(self, args: list[str], env: dict[str, str], ready: str) -> None:
        self.lines: list[str] = []
        self.ready_line = ""
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        if not self._ready.wait(60):
            self.proc.kill()
            raise AssertionError(f"{args} not ready:\n" + "\n".join(self.lines[-30:]))

    def _read(self, ready: str) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith(ready) and not self._ready.is_set():
                self.ready_line = line.strip()
                self._ready.set()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(20)
        return self.proc.returncode


def _http(method: str, url: str, token: str | None = None, body: Any = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_alerts(bootstrap: str, topic: str, want: Any, timeout_s: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    got: list[Any] = []
    while time.monotonic() < deadline:
        got = [
            json.loads(r.value)
            for r in follow(bootstrap, topic, True, idle_timeout_s=0.5)
            if r.value is not None
        ]
        if want(got):
            return got
    raise AssertionError(f"timed out on {topic}: {got[-3:]}")


@pytest.mark.parametrize("level", ["info", "debug"])
def test_a_full_run_logs_no_coordinates_free_text_or_tokens(tmp_path: Path, level: str) -> None:
    broker_log = tmp_path / "tansu.log"
    with EmbeddedBroker(free_port(), log_path=broker_log) as broker:
        _full_run(broker, tmp_path, level, broker_log)


def _full_run(broker: EmbeddedBroker, tmp_path: Path, level: str, broker_log: Path) -> None:
    bootstrap = broker.bootstrap
    prefix = f"log{time.monotonic_ns() % 10**6}."
    env = {
        "BANWATCH_KAFKA_BOOTSTRAP": bootstrap,
        "BANWATCH_TOPIC_PREFIX": prefix,
        "BANWATCH_LOG_LEVEL": level,
        "BANWATCH_CONSOLE_TOKENS": json.dumps({TOKEN: {"user": "op-17", "role": "dispatcher"}}),
        "BANWATCH_CONSOLE_PORT": "0",
        "BANWATCH_METRICS_PORT": "0",
        "BANWATCH_BROKER_SESSION_TIMEOUT_S": "2",
        "BANWATCH_BROKER_HEARTBEAT_S": "0.5",
    }
    bans = tmp_path / "bans.jsonl"
    bans.write_text(json.dumps(_ban(), ensure_ascii=False) + "\n")
    outputs: list[str] = []
    r = subprocess.run(
        [sys.executable, "-m", "streams.cli", "bans", "import", str(bans), "--by", "op-17"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    outputs += [r.stdout, r.stderr]
    worker = WorkerProc(bootstrap, prefix, **env).start(timeout_s=90)
    console = Proc(["console"], env, "console: ")
    metrics: dict[str, str] = {}
    try:
        producer = make_producer(bootstrap)
        send = lambda topic, key, value: produce_json(producer, prefix + topic, key, value)  # noqa: E731
        send("patrol-positions", "SÖ-LOG1", {
            "unit_id": "SÖ-LOG1", "ts": ts(), "lat": PATROL[0], "lon": PATROL[1],
            "status": "available", "capabilities": ["patrol"],
        })  # fmt: skip
        send("positions", VICTIM_ID, fix(VICTIM_ID, "PH-LOG1", *VICTIM, ts(), source="phone"))
        producer.flush(10)
        time.sleep(0.5)
        send("positions", PERSON, fix(PERSON, "EM-LOG1", *INSIDE, ts()))
        send("incidents", "I-LOG1", {
            "incident_id": "I-LOG1", "ts": ts(), "kind": "tip", "ban_id": None,
            "person_id": None, "lat": INCIDENT[0], "lon": INCIDENT[1], "source": "112",
            "note": NOTE_INCIDENT,
        })  # fmt: skip
        # the same data in records that are rejected: dead letters, never log lines
        bad_fix = fix(PERSON, "EM-LOG1", *INSIDE, "2026-11-22T10:00:00") | {"note": NOTE_ACK}
        send("positions", PERSON, bad_fix)
        producer.send(prefix + "incidents", key=b"I-LOG2", value=NOTE_INCIDENT.encode())
        producer.send(
            prefix + "contact-bans", key=BAN.encode(), value=b'{"zones": "' + LABEL.encode() + b'"'
        )
        producer.flush(10)

        alerts = _wait_alerts(
            bootstrap,
            prefix + "alerts",
            lambda a: {"zone_breach", "tip"} <= {x["kind"] for x in a},
        )
        breach = next(a for a in alerts if a["kind"] == "zone_breach")
        base = console.ready_line.split(" ", 1)[1].rstrip("/")
        aid = breach["alert_id"]
        for method, path, token, body in [
            ("GET", "/api/alerts", TOKEN, None),
            ("GET", f"/api/alerts/{aid}?reason=handling", TOKEN, None),
            ("POST", f"/api/alerts/{aid}/ack", TOKEN, {"note": NOTE_ACK}),
            ("GET", "/api/alerts", WRONG_TOKEN, None),
            ("GET", f"/api/alerts?token={WRONG_TOKEN}", None, None),
            ("POST", "/login", None, {"token": WRONG_TOKEN}),
            ("POST", "/login", None, {"token": TOKEN}),
            ("GET", "/api/tasks?unit=S%C3%96-LOG1", TOKEN, None),
        ]:
            status, _ = _http(method, base + path, token, body)
            assert status < 500, (method, path, status)
        _wait_alerts(
            bootstrap,
            prefix + "alerts",
            lambda a: any(x["alert_id"] == aid and x["state"] == "acknowledged" for x in a),
        )
        worker_metrics = next(
            line.rsplit("metrics: ", 1)[1]
            for line in worker.lines
            if line.startswith("worker: ready")
        )
        console_metrics = next(
            line.split(" ", 1)[1] for line in console.lines if line.startswith("metrics: http")
        )
        for name, url in (("worker", worker_metrics), ("console", console_metrics)):
            metrics[name] = urllib.request.urlopen(url, timeout=10).read().decode()
        producer.close(5)
    finally:
        assert worker.stop() == 0
        assert console.stop() == 0
    outputs += worker.lines + console.lines
    logs = "\n".join(outputs)
    assert "banwatch.console" in logs or "console:" in logs  # the logs were captured at all
    assert "adopted" in logs  # the worker's own INFO lines are in there
    leaked = secrets_in(logs, SECRETS)
    loggers = {(line.split() + ["?"] * 4)[3] for s in leaked for line in outputs if s in line}
    assert leaked == [], f"{leaked[:5]} printed by {sorted(loggers)}"
    assert secrets_in(broker_log.read_text(errors="replace"), SECRETS) == []

    ids = [PERSON, VICTIM_ID, BAN, "SÖ-LOG1", "EM-LOG1", "PH-LOG1", "I-LOG1", aid, "op-17"]
    for name, text in metrics.items():
        assert "banwatch_events_total" in text, name
        assert secrets_in(text, [*SECRETS, *ids]) == [], name


# ------------------------------------------------------------------------- sockets
def _listening(pids: Iterable[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that one of `pids` holds."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    out: set[tuple[str, int]] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            if width == 8:
                addr = ".".join(str(b) for b in reversed(bytes.fromhex(addr_hex)))
            else:
                addr = "::" if set(addr_hex) == {"0"} else addr_hex
            out.add((addr, int(port_hex, 16)))
    return out


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_banwatch_up_listens_on_loopback_only_and_nowhere_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Broker, console and metrics on 127.0.0.1 (the defaults), faust's web server off: the
    process tree listens on exactly those three sockets."""
    broker, console, metrics = free_port(), free_port(), free_port()
    env = {
        "BANWATCH_EMBEDDED_BROKER_PORT": str(broker),
        "BANWATCH_CONSOLE_PORT": str(console),
        "BANWATCH_METRICS_PORT": str(metrics),
        "BANWATCH_CONSOLE_TOKENS": json.dumps({TOKEN: {"user": "op-17", "role": "dispatcher"}}),
        "BANWATCH_BROKER_SESSION_TIMEOUT_S": "2",
        "BANWATCH_BROKER_HEARTBEAT_S": "0.5",
    }
    for var in ("BANWATCH_KAFKA_BOOTSTRAP", "BANWATCH_CONSOLE_HOST", "BANWATCH_METRICS_HOST"):
        monkeypatch.delenv(var, raising=False)
    up = Proc(["up"], env, "ready in")
    try:
        pids = [up.proc.pid, *_children(up.proc.pid)]
        sockets = _listening(pids)
    finally:
        up.proc.send_signal(signal.SIGINT)
        up.proc.wait(30)
    assert len(pids) >= 2, "the embedded broker is a child process"
    assert sockets == {("127.0.0.1", broker), ("127.0.0.1", console), ("127.0.0.1", metrics)}


# ------------------------------------------------------------------------ retention
HOUR_MS = 3_600_000
#: topics that keep personal data only as long as needed, and how long at most (ms)
AGES_OUT = {
    "positions": 3 * 24 * HOUR_MS,
    "patrol-positions": 24 * HOUR_MS,
    "incidents": 7 * 24 * HOUR_MS,
    "alert-acks": 30 * 24 * HOUR_MS,
    "alerts": 30 * 24 * HOUR_MS,
    "patrol-tasks": 7 * 24 * HOUR_MS,
    "dead-letters": 7 * 24 * HOUR_MS,
    "banwatch-routed": 3 * 24 * HOUR_MS,  # the worker's re-keyed copies of the above
    "task-updates": 7 * 24 * HOUR_MS,  # free-text notes, kept like the tasks they answer
    "banwatch-task-route": 3 * 24 * HOUR_MS,  # task updates on their way to the alert index
}


def _ages_out(configs: dict[str, str], most_ms: int, name: str) -> None:
    """Deleted by age, within `most_ms`, in segments far shorter than that: Kafka deletes
    whole segments, so a record can outlive `retention.ms` by up to `segment.ms`."""
    assert "delete" in configs.get("cleanup.policy", ""), (name, configs)
    retention, segment = int(configs["retention.ms"]), int(configs["segment.ms"])
    assert 0 < retention <= most_ms, (name, retention)
    assert 0 < segment <= retention // 20, (name, segment, retention)


def test_personal_data_ages_out_in_segments_far_shorter_than_its_retention() -> None:
    """As a worker creates them on a broker: the contract's topics and its own."""
    from kafka.admin import ConfigResource, ConfigResourceType

    with EmbeddedBroker(free_port()) as broker:
        prefix = "ret."
        w = WorkerProc(broker.bootstrap, prefix).start(timeout_s=90)
        try:
            admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
            try:
                names = sorted(t for t in admin.list_topics() if t.startswith(prefix))
                described = admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, t, None) for t in names],
                    config_filter="all",
                )["topic"]
            finally:
                admin.close()
        finally:
            assert w.stop() == 0
    configs = {
        t[len(prefix) :]: {k: v["value"] for k, v in c.items()} for t, c in described.items()
    }
    for name, most_ms in AGES_OUT.items():
        assert name in configs, f"{name} not created: {sorted(configs)}"
        _ages_out(configs[name], most_ms, name)
    # the registry is compacted (a ban lives as long as it is in force; a tombstone lifts it),
    # the audit trail is kept (it holds no coordinates and no free text)
    assert configs["contact-bans"]["cleanup.policy"] == "compact"
    assert configs["audit"]["retention.ms"] == "-1"
