"""The record-store sink against the real embedded broker: every record stored once, what it
cannot store dead-lettered with a reason, offsets committed only after the database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from config.settings import Settings
from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.topics import ensure_topics
from streams.store import schema
from streams.store.bench import measure
from streams.store.db import engine_for
from streams.store.metrics import StoreMetrics
from streams.store.sink import Sink
from tests.streams.workers import ROOT, ban, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(120)]


def settings_for(prefix: str, data: Path, app_id: str = "bw") -> Settings:
    return Settings(
        topic_prefix=prefix,
        app_id=app_id,
        data_dir=str(data),
        broker_session_timeout_s=2,
        broker_heartbeat_s=0.5,
        store_batch_records=7,  # several batches even for a few records
    )


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for name, t in schema.TABLES.items()
        }


async def run_until(sink: Sink, done: Callable[[], bool], timeout_s: float = 40) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    deadline = time.monotonic() + timeout_s
    try:
        while not done():
            assert time.monotonic() < deadline, f"not there in time: {sink.batches} batches"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await task


BAD_DEAD_LETTER = {"reason": "schema", "ts": "yesterday"}


def publish(bootstrap: str, prefix: str) -> None:
    p = make_producer(bootstrap)
    alert: dict[str, Any] = {
        "alert_id": "A1",
        "seq": 1,
        "state": "open",
        "kind": "zone_breach",
        "priority": 1,
        "ban_id": "KF-S1",
        "updated_at": ts(),
    }
    audit = {
        "ts": ts(),
        "actor": "op-1",
        "role": "dispatcher",
        "action": "consult",
        "object": "alert:A1",
        "reason": "check",
    }
    sends = [
        ("contact-bans", "KF-S1", ban("KF-S1", "P-S1", "P-S1V", 17.6, 59.2)),
        ("contact-bans", "KF-S2", ban("KF-S2", "P-S2", "P-S2V", 17.7, 59.3)),
        ("contact-bans", "KF-S2", None),  # lifted
        ("alerts", "A1", alert),
        ("alerts", "A1", alert),  # at-least-once upstream: the same revision twice
        ("alerts", "A1", {**alert, "seq": 2, "state": "acknowledged"}),
        (
            "patrol-tasks",
            "SÖ-1",
            {
                "task_id": "T1",
                "alert_id": "A1",
                "kind": "respond",
                "unit_id": "SÖ-1",
                "created_at": ts(),
            },
        ),
        (
            "task-updates",
            "T1",
            {
                "task_id": "T1",
                "by": "SÖ-1",
                "role": "patrol",
                "ts": ts(),
                "action": "accept",
                "note": "on my way",
            },
        ),
        ("audit", "alert:A1", audit),
        ("audit", "alert:A1", audit),
        (
            "protected-notifications",
            "P-S1V",
            {
                "notification_id": "N1",
                "person_id": "P-S1V",
                "ban_id": "KF-S1",
                "alert_id": "A1",
                "ts": ts(),
                "level": "danger",
                "code": "zone_breach",
            },
        ),
        ("alerts", "A2", {"alert_id": "A2", "seq": "two"}),  # schema drift
        ("alerts", "A3", {"alert_id": "A" * 500, "seq": 1}),  # too large for the column
        ("dead-letters", "x", BAD_DEAD_LETTER),  # not stored, and not fed back to the topic
    ]
    for topic, key, value in sends:
        produce_json(p, prefix + topic, key, value)
    p.send(prefix + "audit", key=b"x", value=b"{not json")  # undecodable
    p.flush()
    p.close()


def test_the_sink_stores_each_record_once_and_dead_letters_what_it_cannot(
    broker: EmbeddedBroker, prefix: str, tmp_path: Path
) -> None:
    ensure_topics(broker.bootstrap, prefix, partitions_override=2)
    publish(broker.bootstrap, prefix)
    settings = settings_for(prefix, tmp_path)
    engine = engine_for(None, str(tmp_path))
    metrics = StoreMetrics()
    sink = Sink(settings, broker.bootstrap, engine, metrics)
    expected = {
        "bans": 2,
        "ban_lifts": 1,
        "alerts": 2,
        "tasks": 1,
        "task_updates": 1,
        "audit": 2,
        "protected_notifications": 1,
        "dead_letters": 3,  # the sink reads back the three it dead-lettered itself
    }  # audit: the consult + the erasure run

    asyncio.run(run_until(sink, lambda: engine_ready(engine) and counts(engine) == expected))
    assert sink.batches >= 2
    lags = {
        (s.labels["topic"], s.labels["partition"]): s.value
        for fam in metrics.registry.collect()
        if fam.name == "banwatch_store_lag"
        for s in fam.samples
    }
    assert ("alerts", "0") in lags and ("alerts", "1") in lags
    assert set(lags.values()) == {0.0}  # caught up

    dead = [
        json.loads(r.value or b"")
        for r in follow(broker.bootstrap, prefix + "dead-letters", True, idle_timeout_s=1)
    ]
    assert [d for d in dead if "source_topic" not in d] == [BAD_DEAD_LETTER]
    dead = [d for d in dead if "source_topic" in d]
    assert metrics.dead_letters.labels("dead-letters", "schema")._value.get() == 1
    assert sorted((d["source_topic"], d["reason"]) for d in dead) == [
        ("alerts", "schema"),
        ("alerts", "too_large"),
        ("audit", "decode"),
    ]
    assert all(d["raw"] and d["error"] for d in dead)
    assert metrics.rows.labels("alerts")._value.get() == 2
    with engine.connect() as conn:
        task = conn.execute(sa.select(schema.tasks)).one()
        states = conn.execute(sa.select(schema.alerts.c.state).order_by("seq")).scalars().all()
    assert (task.task_id, task.seq) == ("T1", 0) and states == ["open", "acknowledged"]

    # the same group again: its offsets were committed, no record is read twice (only the
    # first sink's erasure audit record may come after it stopped)
    again = Sink(settings, broker.bootstrap, engine, StoreMetrics())
    asyncio.run(run_until(again, after(3.0)))
    read = again.metrics.records
    assert [read.labels(t)._value.get() for t in ("contact-bans", "alerts", "patrol-tasks")] == [
        0,
        0,
        0,
    ]
    # another group reads it all again: natural keys store nothing twice
    other = Sink(settings_for(prefix, tmp_path, "bw2"), broker.bootstrap, engine, StoreMetrics())
    asyncio.run(run_until(other, lambda: other.metrics.records.labels("alerts")._value.get() >= 5))
    # (the other group dead-letters the three bad records again, at its own time: new records)
    mine = ("audit", "dead_letters")
    assert (
        sum(other.metrics.rows.labels(t)._value.get() for t in schema.TABLES if t not in mine) == 0
    )
    assert {k: v for k, v in counts(engine).items() if k not in mine} == {
        k: v for k, v in expected.items() if k not in mine
    }


def engine_ready(engine: sa.Engine) -> bool:
    return sa.inspect(engine).has_table("alerts")


def after(seconds: float) -> Callable[[], bool]:
    end = time.monotonic() + seconds
    return lambda: time.monotonic() >= end


def test_the_store_bench_stores_every_record_and_reports_a_rate() -> None:
    out = measure(300, None, 100)
    assert out["records"] == 300 and out["database"] == "sqlite"
    assert isinstance(out["records_per_s"], int) and out["records_per_s"] > 0


def test_banwatch_store_runs_as_a_command_and_stops_cleanly(
    broker: EmbeddedBroker, prefix: str, tmp_path: Path
) -> None:
    ensure_topics(broker.bootstrap, prefix, partitions_override=1)
    p = make_producer(broker.bootstrap)
    produce_json(p, prefix + "alerts", "C1", {"alert_id": "C1", "seq": 1, "updated_at": ts()})
    p.flush()
    p.close()
    port = free_port()
    env = {
        **os.environ,
        "BANWATCH_KAFKA_BOOTSTRAP": broker.bootstrap,
        "BANWATCH_TOPIC_PREFIX": prefix,
        "BANWATCH_DATA_DIR": str(tmp_path),
        "BANWATCH_STORE_METRICS_PORT": str(port),
        "BANWATCH_BROKER_SESSION_TIMEOUT_S": "2",
        "BANWATCH_BROKER_HEARTBEAT_S": "0.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "store"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("store: banwatch-store on "), first
        assert f"metrics: http://127.0.0.1:{port}/metrics" in first
        engine = engine_for(None, str(tmp_path))
        deadline = time.monotonic() + 30
        while not (engine_ready(engine) and counts(engine)["alerts"] == 1):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    assert rc == 0
