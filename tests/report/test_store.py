"""`banwatch report` on the record store (SQLite): the golden log written through the store's
own write path gives exactly the figures the records file gives, the report's audit record
lands in the store, and an empty store or a bad range exits 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alerts.report import compute
from config.policy import load_policy
from streams.cli import main
from streams.kafka.broker import free_port
from streams.report.command import MARGIN
from streams.report.sources import StoreSource
from streams.store import schema
from streams.store.db import SQLITE_FILE, engine_for
from tests.report import golden
from tests.report.store import PERIOD, figures_of, file_figures, fill, stored_golden
from tests.unit.test_report import raw


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    engine = engine_for(None, str(d))
    n, skipped = fill(engine, golden.records())
    engine.dispose()
    assert n == len(stored_golden())  # every record stored, once
    assert set(skipped) == {"positions"}  # the store keeps no input positions
    return d


@pytest.fixture
def env(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The store of `data_dir`; a broker address where nothing listens (never the machine's
    default 9092, where someone's `banwatch up` may run)."""
    for k in ("BANWATCH_DATABASE_URL", "BANWATCH_CONFIG", "BANWATCH_TOPIC_PREFIX"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("BANWATCH_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BANWATCH_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    return data_dir


def _url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / SQLITE_FILE}"


def test_store_figures_are_the_file_figures(data_dir: Path, tmp_path: Path) -> None:
    fig, n = figures_of(StoreSource(_url(data_dir), progress=False))
    assert n == len(stored_golden())
    assert fig == file_figures(tmp_path, stored_golden())
    # hand-computed (tests/unit/test_report.py): 6 persons behind the P1 alerts, W45's 3
    # suppressed; dead letters in the period: schema by P-A1 and P-A2, decode by P-A3
    assert fig["response"]["total"]["p1_alerts"] == 6
    assert fig["response"]["weeks"][0]["p1_alerts"] == "<5"
    assert fig["data_quality"] == file_figures(tmp_path, golden.records())["data_quality"] | {
        "implausible_fixes": fig["data_quality"]["implausible_fixes"]
    }


def test_raw_figures_through_the_store_are_the_hand_computed_ones(data_dir: Path) -> None:
    """Before suppression (tests/unit/test_report.py's hand-computed values): the store's
    records give the same cells as the golden log, but for the fixes recomputed from input
    positions, which the store does not keep."""
    source = StoreSource(_url(data_dir), progress=False)
    from_store = raw(
        compute(source.records(PERIOD.start - MARGIN, PERIOD.end + MARGIN), PERIOD, load_policy())
    )
    from_log = raw(compute(golden.records(), PERIOD, load_policy()))
    q = from_store["data_quality"]
    assert q["dead_letters"] == {"decode": [1, 1], "schema": [2, 2]}
    assert q["signal_loss"] == {"hours": [3.0, 2], "episodes": [2, 2]}
    assert q["implausible_fixes"] == {"in_alerts": [1, 1], "in_positions": None}
    from_log["data_quality"]["implausible_fixes"]["in_positions"] = None
    from_log["source"]["records"] -= 3  # the three input positions
    assert from_store == from_log


def test_the_store_reads_the_period_widened_by_90_days(data_dir: Path) -> None:
    """Records more than 90 days outside the period are not read: a far-away alert changes
    nothing."""
    engine = engine_for(None, str(data_dir))
    far = golden.alert(
        "far",
        1,
        "open",
        "zone_breach",
        1,
        "confirmed",
        "P-A1",
        "2027-03-01T10:00:00Z",
        "2027-03-01T10:00:00Z",
    )
    fill(engine, [far])
    engine.dispose()
    before = len(stored_golden())
    _, n = figures_of(StoreSource(_url(data_dir), progress=False))
    assert n == before


@pytest.mark.slow  # renders the page twice: ~2 s
def test_report_command_on_the_store(env: Path, tmp_path: Path, capsys: Any) -> None:
    out, js = tmp_path / "r.html", tmp_path / "r.json"
    args = ["report", "--from", golden.FIRST, "--to", golden.LAST, "--out", str(out)]
    assert main([*args, "--json", str(js), "--by", "analyst-3", "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "audit record: the store's audit table; not published: no broker answers" in said
    fig = json.loads(js.read_text("utf-8"))
    assert fig == file_figures(tmp_path, stored_golden())
    page = out.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "P-A1" not in page and "59.196" not in page
    engine = engine_for(None, str(env))
    with engine.connect() as conn:
        audits = conn.execute(
            sa.select(schema.audit.c.payload).where(schema.audit.c.action == "consult")
        ).scalars()
        mine = [a for a in audits if a["object"] == "report:2026-11-02..2026-11-15"]
    engine.dispose()
    assert [(a["actor"], a["role"], a["reason"]) for a in mine] == [
        ("analyst-3", "viewer", "programme report (aggregates only)")
    ]
    # the audit record is read back as one more record, and changes no figure
    assert main([*args, "--json", str(js), "--by", "analyst-3", "--quiet"]) == 0
    again = json.loads(js.read_text("utf-8"))
    assert again["source"]["records"] == fig["source"]["records"] + 1
    again["source"]["records"] -= 1
    assert again == fig


def test_empty_store_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.delenv("BANWATCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("BANWATCH_DATA_DIR", str(tmp_path / "none"))
    args = ["report", "--from", golden.FIRST, "--to", golden.LAST, "--quiet"]
    assert main([*args, "--out", str(tmp_path / "r.html")]) == 2
    assert "an empty store: no record store at" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # a report creates no store
    # a store with its tables and nothing in them
    engine = engine_for(None, str(tmp_path / "none"))
    fill(engine, [])
    engine.dispose()
    assert main([*args, "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert (
        "record store sqlite:///" in err and "no records between 2026-11-02 and 2026-11-15" in err
    )
    assert not (tmp_path / "r.html").exists()


def test_a_store_without_tables_or_unreachable_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.delenv("BANWATCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("BANWATCH_DATA_DIR", str(tmp_path))
    sqlite3_file = tmp_path / SQLITE_FILE
    sqlite3_file.touch()  # a file, never migrated
    args = ["report", "--from", golden.FIRST, "--to", golden.LAST, "--quiet"]
    assert main([*args, "--out", str(tmp_path / "r.html")]) == 2
    assert "an empty store (no tables" in capsys.readouterr().err
    monkeypatch.setenv("BANWATCH_DATABASE_URL", f"postgresql://u@127.0.0.1:{free_port()}/db")
    assert main([*args, "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "record store postgresql+psycopg://u@127.0.0.1:" in err and "cannot connect" in err
    assert "Traceback" not in err and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-15", "--to", "2026-11-02"], "is before --from"),
        (["--from", "2025-01-01", "--to", "2025-01-31"], "no records between 2025-01-01"),
        (["--from", "2026-11-02", "--to", "2026-11-15", "--audit", "a.jsonl"], "--audit is for"),
    ],
)
def test_bad_range_on_the_store_exit_2(
    env: Path, tmp_path: Path, capsys: Any, args: list[str], message: str
) -> None:
    assert main(["report", *args, "--out", str(tmp_path / "r.html"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
