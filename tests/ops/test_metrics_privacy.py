"""No id ever reaches the metrics: every golden scenario, fed to the metrics as a worker would,
then every label value and exemplar in the registry checked against the scenarios' real ids.

The scenarios (tests/scenarios) hold real-looking ids of every kind: persons (P-...), bans
(KF-...), devices (EM-...), units (SÖ-2140), incidents, alerts and tasks (32 hex digits),
operators. They are collected from the files themselves, so a new scenario's ids are covered.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

from alerts.engine import Engine, Incoming
from config.policy import load_policy
from geofence.decoding import BANS, decode
from geofence.records import ContactBan
from streams.cli.replay_files import read_bans, read_events
from streams.metrics.prometheus import (
    ALERT_KINDS,
    OUTCOMES,
    PRIORITIES,
    REASONS,
    STATES,
    TASK_KINDS,
    TOPICS,
    Metrics,
)

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
NAMES = sorted(p.parent.name for p in SCENARIOS.glob("*/events.jsonl"))

ID_FIELDS = {
    "ban_id", "person_id", "device_id", "unit_id", "alert_id", "task_id", "incident_id",
    "restrained_person", "protected_person", "protected_persons", "by", "key",
}  # fmt: skip
ID_PATTERNS = [
    re.compile(r"\bP-\d"),
    re.compile(r"\bKF-\d"),
    re.compile(r"\bEM-\d"),
    re.compile(r"\bI-\d"),
    re.compile(r"\b[A-ZÅÄÖ]{2}-\d{3,}"),  # patrol units: SÖ-2140
    re.compile(r"\b[0-9a-f]{32}\b"),  # alert and task ids
]
CLOSED = {
    "topic": TOPICS,
    "outcome": OUTCOMES,
    "reason": REASONS,
    "kind": ALERT_KINDS | TASK_KINDS,
    "priority": set(PRIORITIES),
    "state": STATES,
    "partition": {str(p) for p in range(1024)},
}


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _walk_ids(obj: Any, key: str | None = None) -> Iterator[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_ids(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_ids(v, key)
    elif isinstance(obj, str) and key in ID_FIELDS and obj:
        yield obj


def scenario_ids() -> set[str]:
    ids: set[str] = set()
    for path in SCENARIOS.glob("*/*.jsonl"):
        for line in path.read_text("utf-8").splitlines():
            try:
                ids.update(_walk_ids(json.loads(line)))
            except json.JSONDecodeError:
                continue
    return ids


def run_scenario(name: str, m: Metrics) -> dict[str, int]:
    """The replay loop of alerts/replay.py, with the worker's metric calls at its seams.
    Returns how many outputs of each topic were published."""
    d = SCENARIOS / name
    args = json.loads((d / "args.json").read_text("utf-8"))
    now = _ts(args["now"])
    until = _ts(args["until"]) if args.get("until") else None
    policy = load_policy(None)
    engine = Engine(policy, event_clock=True)
    published: dict[str, int] = {}

    def handle(msg: Incoming) -> None:
        t0 = time.perf_counter()
        for result in engine.handle_batch([msg], now):
            m.on_event(msg.topic, result.outcome, result.reason)
            for output in result.outputs:
                publish(output)
        m.processing(msg.topic, time.perf_counter() - t0)
        m.set_active_bans(len(engine.registry))
        m.set_consumer_lag(msg.topic, msg.offset % 4, msg.offset)

    def publish(output: Any) -> None:
        published[output[0]] = published.get(output[0], 0) + 1
        m.on_output(output)

    for raw in read_bans(str(d / "bans.jsonl"), policy, now):
        handle(Incoming(BANS, None, raw))
    for msg in read_events(str(d / "events.jsonl")):
        if until is not None:
            dec = decode(msg.topic, msg.key, msg.value, now, policy)
            ts = getattr(dec, "ts", None)
            if not isinstance(dec, ContactBan) and isinstance(ts, datetime) and ts > until:
                continue
        handle(msg)
    end = until if until is not None else engine.clock
    if end is not None:
        for output in engine.tick(end):
            publish(output)
    return published


def offending(registry: CollectorRegistry, ids: set[str]) -> list[str]:
    """Every label value or exemplar label that is an id, looks like one, or is not in its
    label's closed set; and any id anywhere in either exposition format."""
    bad: list[str] = []
    for fam in registry.collect():
        for s in fam.samples:
            labels = dict(s.labels)
            if s.exemplar is not None:
                bad.append(f"{s.name}: exemplar {s.exemplar.labels}")
                labels.update({f"exemplar:{k}": v for k, v in s.exemplar.labels.items()})
            for k, v in labels.items():
                if k == "le":
                    continue
                if v in ids or any(p.search(v) for p in ID_PATTERNS):
                    bad.append(f"{s.name}: {k}={v!r} is an id")
                elif k not in CLOSED or v not in CLOSED[k]:
                    bad.append(f"{s.name}: {k}={v!r} is outside the closed sets")
    texts = [
        openmetrics(registry).decode("utf-8"),
        generate_latest(registry).decode("utf-8"),
    ]
    for i in sorted(ids):
        if any(i in t for t in texts):
            bad.append(f"{i!r} appears in the exposition")
    return bad


def test_the_scenarios_hold_ids_of_every_kind() -> None:
    ids = scenario_ids()
    for pattern in ID_PATTERNS:
        assert any(pattern.search(i) for i in ids), pattern.pattern
    assert {"P-7731", "KF-2026-0042", "EM-0091", "SÖ-2140"} <= ids


def test_no_id_reaches_a_label_or_an_exemplar_after_every_scenario(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock_at = [0.0]
    m = Metrics(clock=lambda: clock_at[0])
    totals: dict[str, int] = {}
    for name in NAMES:
        clock_at[0] = 1_795_000_000.0  # 2026-11-18: every scenario's alerts are later
        published = run_scenario(name, m)
        golden: dict[str, int] = {}
        for line in (SCENARIOS / name / "expected.jsonl").read_text("utf-8").splitlines():
            topic = json.loads(line)["topic"]
            golden[topic] = golden.get(topic, 0) + 1
        assert published == golden, f"{name}: not the golden run"
        for topic, n in published.items():
            totals[topic] = totals.get(topic, 0) + n
    assert not caplog.records, [r.getMessage() for r in caplog.records]  # nothing refused

    reg = m.registry
    counted = {
        "alerts": "banwatch_alerts_total",
        "patrol-tasks": "banwatch_tasks_total",
        "dead-letters": "banwatch_dead_letters_total",
    }
    for topic, metric in counted.items():
        total = sum(s.value for f in reg.collect() for s in f.samples if s.name == metric)
        assert total == totals.get(topic, 0), topic
    assert totals["alerts"] > 100 and totals["patrol-tasks"] > 5 and totals["dead-letters"] > 5
    assert offending(reg, scenario_ids()) == []


def test_the_check_finds_an_id_in_a_label() -> None:
    """The walk above can fail: a registry with an id in a label does not pass it."""
    reg = CollectorRegistry()
    c = Counter("banwatch_bad_total", "a metric labelled by person", ["person"], registry=reg)
    c.labels("P-7731").inc()
    e = Counter("banwatch_worse_total", "an exemplar naming an alert", ["kind"], registry=reg)
    e.labels("zone_breach").inc(exemplar={"alert": "eaaf12c456d2e62f21fafbf7550e6cbb"})
    found = offending(reg, {"P-7731", "eaaf12c456d2e62f21fafbf7550e6cbb"})
    assert any("person='P-7731' is an id" in f for f in found)
    assert any("exemplar" in f for f in found)
    assert any("'P-7731' appears in the exposition" in f for f in found)


def test_faust_web_views_stay_off() -> None:
    """Faust's web server would serve table contents (ban states: person ids, positions)
    without authentication (FACTS.md): the worker turns it off entirely."""
    from config.settings import load_settings
    from streams.worker import Worker

    worker = Worker(load_settings({"BANWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1"}), "127.0.0.1:1")
    conf = worker.app.conf
    assert (conf.web_enabled, conf.web_tables_enabled, conf.web_router_enabled) == (
        False,
        False,
        False,
    )
