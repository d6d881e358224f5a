"""`banwatch bench` runs end to end and writes complete JSON (a smoke run, not a timed test).

CI runs `banwatch bench --quick` (about 3.5 minutes here), as the issue asks: it starts the
embedded broker, real `banwatch worker` processes and the baseline apps, so every figure is
measured for real; the numbers themselves are not checked: CI machines vary and benchmarks are
not pass/fail tests. (`--smoke`, tinier sizes, is for trying the code paths by hand.)

In a whole-suite run the quick bench starts beside the first tests and this test, run last,
waits for it (tests/order.py); run alone, the test starts it itself.
"""

from __future__ import annotations

import json
import math

import pytest

from streams.bench.suite import REQUIRED
from streams.cli import build_parser
from tests import order

pytestmark = [pytest.mark.bench, pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(720)]


def test_the_cli_wires_bench_to_the_suite() -> None:
    args = build_parser().parse_args(["bench", "--quick", "--json", "out.json"])
    assert args.quick and args.json == "out.json"


def test_a_quick_run_writes_every_figure(request: pytest.FixtureRequest) -> None:
    run = order.started(request.config) or order.QuickBench.start()
    rc, stdout, stderr = run.wait(timeout_s=700)
    out = run.json
    assert out.exists(), stdout[-3000:] + stderr[-3000:]
    doc = json.loads(out.read_text())
    results = doc["results"]
    for key in REQUIRED:
        value = results.get(key)
        assert isinstance(value, int | float) and math.isfinite(value), (key, value)
        assert value > 0, (key, value)
    assert doc["errors"] == {} and doc["missing"] == [], doc["errors"]
    # the record-store sink during the stream step: it stored something and caught up
    assert results["store_records_per_s"] > 0
    assert isinstance(results["store_max_lag"], int) and results["store_max_lag"] >= 0
    assert 0 <= results["store_catch_up_s"] < 120
    # context for the latency figures: what the worker (or relay) and the broker used meanwhile
    for step in ("latency", "latency_relay"):
        for proc_name in ("worker", "broker"):
            share = results.get(f"{step}_{proc_name}_cpu_share")
            assert isinstance(share, float) and 0 < share < 64, (step, proc_name, share)
    assert rc == 0, stderr[-3000:]
    machine = doc["machine"]
    assert machine["cores"] >= 1 and machine["cpu_model"] and machine["python"]
    assert doc["workload"]["bans"] > 0 and doc["workload"]["patrol_cars"] > 0
    assert set(doc["targets"]) >= {"engine_speedup", "stream_speedup", "latency_p99_ms"}
    assert "banwatch bench" in stdout  # the results table
