"""The sink's metrics: closed label sets, and an exposition promtool accepts."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import generate_latest

from streams.store.metrics import StoreMetrics


def test_label_values_come_from_closed_sets() -> None:
    m = StoreMetrics()
    m.row("alerts", 3)
    m.set_lag("alerts", 2, 7)
    m.dead_letter("audit", "decode")
    for bad in (
        lambda: m.row("P-7731", 1),  # an id is never a label value
        lambda: m.set_lag("positions", 0, 1),  # not a topic the sink reads
        lambda: m.dead_letter("alerts", "KF-2026-0042"),
        lambda: m.failure("oops"),
    ):
        with pytest.raises(ValueError):
            bad()
    body = generate_latest(m.registry).decode()
    assert 'banwatch_store_rows_total{table="alerts"} 3.0' in body
    assert 'banwatch_store_lag{partition="2",topic="alerts"} 7.0' in body
    assert 'banwatch_store_failures_total{kind="unavailable"} 0.0' in body  # shown from the start


def test_promtool_accepts_the_exposition() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/system-deps.sh)")
    m = StoreMetrics()
    m.row("bans", 1)
    m.last_erasure.set(1.7e9)
    check = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(m.registry),
        capture_output=True,
        timeout=30,
    )
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr
