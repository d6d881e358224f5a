"""`banwatch report` on the demo's store, without a broker: the demo script (`banwatch up --demo`'s
records, streams/demo/scenario.py) replayed through the decision core, its outputs and its
bans written through the store's write path (what the in-process sink would have stored), then
the report read from that data directory: HTML and JSON, and nobody named in the page.

(The same with the real `banwatch up --demo`, broker and sink included, is
tests/report/test_up_demo_store.py.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.engine import Incoming
from alerts.replay import replay
from config.policy import load_policy
from streams.cli import main
from streams.demo.scenario import SCRIPT_S, script, stamp
from streams.kafka.broker import free_port
from streams.store.db import engine_for
from tests.report.store import fill, write_jsonl
from tests.report.test_browser import IDS, PRECISE, _values

pytestmark = [pytest.mark.slow]

T0 = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)  # 22:00 in Stockholm


def demo_records() -> list[tuple[str, str | None, Any]]:
    """What the store of a demo run holds: the bans, and the worker's outputs."""
    records = script(T0)
    bans = [r for r in records if r.topic == "contact-bans"]
    events = [
        Incoming(r.topic, r.key, json.dumps(stamp(r, T0 + timedelta(seconds=r.at_s))).encode())
        for r in records
        if r.topic != "contact-bans"
    ]
    out = replay(
        [json.dumps(r.value).encode() for r in bans],
        events,
        load_policy(None),
        T0 + timedelta(hours=1),
        T0 + timedelta(seconds=SCRIPT_S),
    )
    stored: list[tuple[str, str | None, Any]] = [("contact-bans", r.key, r.value) for r in bans]
    stored += [(t, k, v) for t, k, v in out if v is not None]
    stored += [(r.topic, r.key, r.value) for r in records if r.topic == "task-updates"]
    return stored


def check_private(html: str, records: Path) -> None:
    """No id, no coordinate-precise number, no id or coordinate of the store's records."""
    assert not IDS.search(html), IDS.search(html)
    assert not PRECISE.search(html), PRECISE.search(html)
    values = _values(records)
    assert values  # the check can see what it looks for
    assert set(re.findall(r"[\w.:-]+", html)) & values == set()


def test_report_on_the_demos_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = demo_records()
    kinds = {v["kind"] for t, _, v in records if t == "alerts"}
    assert {"zone_breach", "proximity_breach", "tamper"} <= kinds  # the demo's story
    data = tmp_path / "data"
    engine = engine_for(None, str(data))
    n, skipped = fill(engine, records)
    engine.dispose()
    assert n > 0 and skipped == []
    for k in ("BANWATCH_DATABASE_URL", "BANWATCH_CONFIG", "BANWATCH_TOPIC_PREFIX"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("BANWATCH_DATA_DIR", str(data))
    monkeypatch.setenv("BANWATCH_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    out, js = tmp_path / "demo.html", tmp_path / "demo.json"
    args = ["report", "--from", "2026-11-22", "--to", "2026-11-22", "--out", str(out)]
    assert main([*args, "--json", str(js), "--quiet"]) == 0
    fig = json.loads(js.read_text("utf-8"))
    assert fig["schema_version"] == 1
    # three restrained persons in the demo: every count about persons is suppressed, and said
    assert fig["alerts"]["total"] == "<5"
    assert fig["privacy"]["suppressed_cells"] == json.dumps(fig).count('"<5"') > 0
    html = out.read_text("utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    check_private(html, write_jsonl(tmp_path / "stored.jsonl", records))
