"""`banwatch report` as a user runs it: exit codes, the JSON, the audit record, the locale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main
from tests.report import golden

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return golden.write(tmp_path_factory.mktemp("report") / "records.jsonl")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "report", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_report_writes_html_json_and_audit(log: Path, tmp_path: Path) -> None:
    out, js, audit = tmp_path / "r.html", tmp_path / "r.json", tmp_path / "audit.jsonl"
    rc = main(
        [
            "report",
            "--from",
            golden.FIRST,
            "--to",
            golden.LAST,
            "--records",
            str(log),
            "--out",
            str(out),
            "--json",
            str(js),
            "--audit",
            str(audit),
            "--by",
            "analyst-3",
            "--quiet",
        ]
    )
    assert rc == 0
    fig = json.loads(js.read_text("utf-8"))
    assert fig["schema_version"] == 1
    assert fig["period"] == {
        "from": "2026-11-02",
        "to": "2026-11-15",
        "time_zone": "Europe/Stockholm",
    }
    # 6 persons behind the P1 alerts: shown; 3 behind W45's: suppressed
    assert fig["response"]["total"]["p1_alerts"] == 6
    assert fig["response"]["weeks"][0]["p1_alerts"] == "<5"
    assert fig["privacy"]["min_persons"] == 5
    n = fig["privacy"]["suppressed_cells"]
    assert n == json.dumps(fig).count('"<5"')
    page = out.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert f"<b>{n}</b> figures were suppressed" in page
    (line,) = audit.read_text("utf-8").splitlines()
    rec = json.loads(line)
    assert rec["topic"] == "audit"
    assert rec["key"] == "report:2026-11-02..2026-11-15"
    v = rec["value"]
    assert (v["actor"], v["action"], v["object"]) == (
        "analyst-3",
        "consult",
        "report:2026-11-02..2026-11-15",
    )
    assert v["ts"].endswith("Z")


def test_swedish_numbers(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "sv.html"
    args = ["--from", golden.FIRST, "--to", golden.LAST, "--records", str(log), "--quiet"]
    assert (
        main(["report", *args, "--out", str(out), "--locale", "sv", "--audit", str(tmp_path / "a")])
        == 0
    )
    page = out.read_text("utf-8")
    # p90 of the time to acknowledge: 120 s, shown in minutes (5 persons: not suppressed)
    assert "2,0\u00a0min" in page
    en = tmp_path / "en.html"
    assert main(["report", *args, "--out", str(en), "--audit", str(tmp_path / "a")]) == 0
    assert "2.0\u00a0min" in en.read_text("utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-15", "--to", "2026-11-02"], "is before --from"),
        (["--from", "2026-13-01", "--to", "2026-12-02"], "--from: not a date"),
        (["--from", "2026-11-02", "--to", "yesterday"], "--to: not a date"),
        (["--from", "2025-01-01", "--to", "2025-01-31"], "no records between 2025-01-01"),
        (["--from", "2026-11-02", "--to", "2026-11-15", "--tz", "Mars/Olympus"], "time zone"),
    ],
)
def test_bad_range_or_empty_source_exit_2(log: Path, args: list[str], message: str) -> None:
    r = _run(*args, "--records", str(log), "--quiet")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_no_source_exit_2(tmp_path: Path) -> None:
    # without --records: the record store, here one that does not exist
    env = {k: v for k, v in os.environ.items() if k != "BANWATCH_DATABASE_URL"}
    env["BANWATCH_DATA_DIR"] = str(tmp_path / "no-store")
    r = _run("--from", "2026-11-02", "--to", "2026-11-15", env=env)
    assert r.returncode == 2
    assert "an empty store: no record store at" in r.stderr and "--records" in r.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", "utf-8")
    r = _run("--from", "2026-11-02", "--to", "2026-11-15", "--records", str(empty))
    assert r.returncode == 2
    assert "no records between" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"topic": "alerts", "key": null, "value": {}}\nnot json\n', "utf-8")
    r = _run("--from", "2026-11-02", "--to", "2026-11-15", "--records", str(bad))
    assert r.returncode == 2
    assert "line 2: invalid JSON" in r.stderr


def test_replay_output_is_a_source(tmp_path: Path) -> None:
    """Today's source: `banwatch replay` output concatenated with its input log."""
    scenario = ROOT / "tests" / "scenarios" / "sodertalje_breach"
    args = json.loads((scenario / "args.json").read_text("utf-8"))
    replay = [
        sys.executable,
        "-m",
        "streams.cli",
        "replay",
        "--bans",
        str(scenario / "bans.jsonl"),
        "--events",
        str(scenario / "events.jsonl"),
        *[x for k, v in args.items() if v is not None for x in (f"--{k}", v)],
    ]
    out = subprocess.run(replay, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    log = tmp_path / "log.jsonl"
    log.write_text(out.stdout + (scenario / "events.jsonl").read_text("utf-8"), "utf-8")
    js = tmp_path / "r.json"
    r = _run(
        "--from",
        "2026-11-22",
        "--to",
        "2026-11-22",
        "--records",
        str(log),
        "--json",
        str(js),
        "--out",
        str(tmp_path / "r.html"),
        "--audit",
        str(tmp_path / "a.jsonl"),
    )
    assert r.returncode == 0, r.stderr
    fig = json.loads(js.read_text("utf-8"))
    # one person in the story: every non-empty figure about persons is suppressed
    assert fig["response"]["total"]["p1_alerts"] == "<5"
    assert fig["alerts"]["total"] == "<5"
    assert fig["privacy"]["suppressed_cells"] > 0
