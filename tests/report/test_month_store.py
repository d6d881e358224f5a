"""`banwatch report` on a simulated month in the record store: a simulated quarter
(`streams.report.simulate`, 1,500 bans) written through the sink's row builder into SQLite; the
report for November from the store, as a user runs it, in under 30 s, with the same figures as
a records file holding the same records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.kafka.broker import free_port
from streams.report import simulate
from streams.store.db import engine_for
from tests.report.store import fill, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 30.0


def test_month_report_from_the_store(tmp_path: Path) -> None:
    kept = [
        r
        for r in simulate.Simulation(1500, 17).run()
        if r[0] in ("alerts", "patrol-tasks", "task-updates", "dead-letters")
    ]
    data = tmp_path / "data"
    engine = engine_for(None, str(data))
    n, _ = fill(engine, kept)
    engine.dispose()
    assert n > 50_000
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANWATCH_")}
    env |= {"BANWATCH_DATA_DIR": str(data), "BANWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    month = ["report", "--from", "2026-11-01", "--to", "2026-11-30", "--quiet"]
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "streams.cli", *month, "--out", str(tmp_path / "s.html"),
         "--json", str(tmp_path / "s.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    assert wall < BUDGET_S, f"{wall:.1f} s"
    assert (tmp_path / "s.html").read_text("utf-8").startswith("<!DOCTYPE html>")
    from_store = json.loads((tmp_path / "s.json").read_text("utf-8"))
    assert from_store["source"]["records"] == n

    log = write_jsonl(tmp_path / "same.jsonl", kept)
    r = subprocess.run(
        [sys.executable, "-m", "streams.cli", *month, "--records", str(log),
         "--out", str(tmp_path / "f.html"), "--json", str(tmp_path / "f.json"),
         "--audit", str(tmp_path / "a.jsonl")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "f.json").read_text("utf-8")) == from_store
