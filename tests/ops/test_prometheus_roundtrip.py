"""A real Prometheus (the Debian package) scrapes a live worker's metrics endpoint and answers,
through its HTTP API, with what the worker counted; `promtool check metrics` accepts the
endpoint. The worker runs against a real Kafka-protocol broker (embedded Tansu)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.broker import EmbeddedBroker, free_port
from tests.ops.conftest import tool
from tests.streams.workers import Feed, WorkerProc, ban, fix, patrol, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(180)]

LAT, LON = 59.1950, 17.6280  # a home in Södertälje
INSIDE = (LAT + 0.001, LON + 0.001)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def query(api: str, promql: str) -> list[dict[str, Any]]:
    answer = get_json(f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def wait_for(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            last = check()
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout_s} s (last: {last!r})")


@contextlib.contextmanager
def prometheus(target: str, tmp_path: Path) -> Any:
    """`prometheus` scraping `target` (host:port) every second; yields its API URL."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: banwatch-worker\n"
        f"    static_configs: [{{targets: [{target!r}]}}]\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}"
    try:
        wait_for("prometheus ready", lambda: get_json(f"{api}/api/v1/status/buildinfo"), 30)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextlib.contextmanager
def live_worker(bootstrap: str, prefix: str) -> Iterator[str]:
    """`banwatch worker` in its own process, as production runs it, its metrics endpoint on a
    free port (`BANWATCH_METRICS_PORT=0`); yields the URL the worker announces when ready."""
    worker = WorkerProc(bootstrap, prefix).start()
    try:
        ready = next(line for line in worker.lines if line.startswith("worker: ready"))
        url = re.search(r"metrics: (http://\S+/metrics)", ready)
        assert url, ready
        yield url.group(1)
    finally:
        assert worker.stop() == 0, "\n".join(worker.lines[-30:])


def test_prometheus_reads_a_live_workers_counts(ops_broker: EmbeddedBroker, tmp_path: Path) -> None:
    promtool = tool("promtool")
    prefix = f"ops{time.monotonic_ns() % 10**8}."
    with live_worker(ops_broker.bootstrap, prefix) as url:
        feed = Feed(ops_broker.bootstrap, prefix)
        try:
            feed.send("contact-bans", "KF-OPS1", ban("KF-OPS1", "P-OPS1", "P-OPS1V", LON, LAT))
            feed.send("patrol-positions", "SÖ-9001", patrol("SÖ-9001", LAT + 0.003, LON, ts()))
            feed.flush()
            time.sleep(0.5)
            feed.send("positions", "P-OPS1", fix("P-OPS1", "EM-OPS1", *INSIDE, ts()))
            feed.send_raw("positions", "P-OPS1", b"{not json")
            feed.flush()
        finally:
            feed.close()
        check_through_prometheus(urllib.parse.urlsplit(url).netloc, url, tmp_path, promtool)


def check_through_prometheus(target: str, url: str, tmp_path: Path, promtool: str) -> None:
    with prometheus(target, tmp_path) as api:
        breach = 'banwatch_alerts_total{kind="zone_breach",priority="1",state="open"}'
        result = wait_for(
            "the breach alert, via Prometheus", lambda: query(api, f"{breach} > 0"), 60
        )
        (series,) = result
        assert series["metric"]["job"] == "banwatch-worker"
        assert series["metric"]["instance"] == target
        assert float(series["value"][1]) == 1.0
        fixes = query(api, 'banwatch_events_total{topic="positions",outcome="accepted"}')
        assert [float(s["value"][1]) for s in fixes] == [1.0]
        rejected = wait_for(
            "the dead letter",
            lambda: query(
                api, 'banwatch_dead_letters_total{topic="positions",reason="decode"} > 0'
            ),
            30,
        )
        assert float(rejected[0]["value"][1]) == 1.0
        respond = query(api, 'banwatch_tasks_total{kind="respond"}')
        assert [float(s["value"][1]) for s in respond] == [1.0]
        assert query(api, 'up{job="banwatch-worker"} == 1')
        latency = query(api, 'banwatch_event_to_alert_seconds_count{kind="zone_breach"}')
        assert [float(s["value"][1]) for s in latency] == [1.0]
        assert query(api, 'banwatch_processing_seconds_count{topic="positions"} > 0')
        # gauges the worker refreshes on a timer
        wait_for("active bans", lambda: query(api, "banwatch_active_bans == 1"), 30)
        lag = wait_for(
            "consumer lag", lambda: query(api, 'banwatch_consumer_lag{topic="positions"}'), 30
        )
        assert {s["metric"]["partition"] for s in lag} <= {"0", "1", "2", "3"}
        open_p1 = query(api, 'banwatch_open_alerts{priority="1"}')
        assert [float(s["value"][1]) for s in open_p1] == [1.0]
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = resp.read()
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30
    )
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr
