"""`banwatch report` on a simulated month at the bench's scale, in under 30 s.

The source holds a simulated quarter (1 Oct - 31 Dec 2026, 10,000 bans from the bench's workload
generator plus task outcomes, `streams.report.simulate`: ~800,000 records, ~340 MB) so that the
effect's 30-day windows around November's talks are complete; the report is for November. The
whole command is timed as a user runs it (a fresh interpreter, reading, computing, plotting,
writing). Also checks that the figures hang together: they cannot be hand-computed at this size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streams.report import simulate

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 30.0


def _numbers(x: Any) -> bool:
    return isinstance(x, int | float)


def test_month_report_under_30_s(tmp_path: Path) -> None:
    records = tmp_path / "quarter.jsonl"
    n = simulate.write(records, bans=10_000, seed=17)
    assert n > 500_000
    js = tmp_path / "month.json"
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "report",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--records",
            str(records),
            "--out",
            str(tmp_path / "month.html"),
            "--json",
            str(js),
            "--audit",
            str(tmp_path / "audit.jsonl"),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - t0
    records.unlink()  # 340 MB: not kept among pytest's last temporary directories
    print(f"report on {n:,} records: {elapsed:.1f} s")
    assert r.returncode == 0, r.stderr
    assert elapsed < BUDGET_S
    f = json.loads(js.read_text("utf-8"))

    resp = f["response"]["total"]
    assert resp["p1_alerts"] > 1000
    for block in (resp["acknowledge"], resp["unit_accepted"], resp["on_scene"]):
        assert 0 < block["p50_s"] <= block["p90_s"]
    assert 0 < resp["acknowledge"]["share_within_sla"] < 1
    weeks = f["response"]["weeks"]
    assert sum(w["p1_alerts"] for w in weeks) == resp["p1_alerts"]

    alerts = f["alerts"]
    assert sum(alerts["by_kind"].values()) == alerts["total"]
    assert sum(h["alerts"] for h in alerts["by_hour"]) == alerts["total"]
    for k, c in alerts["false_alarms"].items():
        assert c["alerts"] == alerts["by_kind"][k]
        if _numbers(c["share"]):
            assert 0 <= c["share"] <= 1

    steps = [s["persons"] for s in f["funnel"]["steps"]]
    assert all(_numbers(s) for s in steps)
    assert steps == sorted(steps, reverse=True) and steps[-1] > 0

    w30 = f["effect"]["windows"][0]
    assert w30["days"] == 30 and w30["incomplete_follow_up"] == 0
    assert w30["all"]["persons"] == w30["accepts"]["persons"] + w30["declines"]["persons"]
    assert w30["all"]["persons"] == f["effect"]["talks_held"]

    dq = f["data_quality"]
    assert dq["signal_loss"]["hours"] > 0
    assert set(dq["dead_letters"]) == {"decode", "future", "schema", "too_large"}
    assert dq["implausible_fixes"]["in_positions"] > 0
