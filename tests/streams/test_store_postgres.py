"""The record store on a real PostgreSQL server that the test starts (tests/store/postgres.py):
the same schema and writes as on SQLite, and a database stopped mid-stream and started again
loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from config.settings import Settings
from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker
from streams.kafka.topics import ensure_topics
from streams.store import schema
from streams.store.db import engine_for, migrate, write_rows
from streams.store.metrics import StoreMetrics
from streams.store.records import Row, to_row
from streams.store.restore import bans_in_force
from streams.store.retention import erase
from streams.store.sink import Sink
from tests.store.helpers import ban_value, iso, store
from tests.store.postgres import PostgresServer

NAIVE = datetime(2026, 12, 3)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def engine(pg: PostgresServer) -> Iterator[sa.Engine]:
    e = engine_for(pg.url, "/nonexistent")
    with e.begin() as conn:  # each test starts from an empty schema
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    migrate(e)
    yield e
    e.dispose()


def test_postgres_gets_the_same_schema_writes_and_erasure(engine: sa.Engine) -> None:
    assert engine.dialect.name == "postgresql"
    migrate(engine)  # again: harmless
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
    t0 = datetime(2026, 8, 1, tzinfo=UTC)
    store(engine, "contact-bans", "K1", ban_value("K1", 1), t0)
    store(engine, "contact-bans", "K1", ban_value("K1", 2), t0 + timedelta(minutes=1))
    store(engine, "contact-bans", "K2", ban_value("K2", 1), t0)
    store(engine, "contact-bans", "K2", None, t0 + timedelta(minutes=1))
    with engine.begin() as conn:  # the same version twice in one batch (at-least-once)
        rows = [
            to_row("contact-bans", b"K3", json.dumps(ban_value("K3", 1)).encode(), ms, NAIVE)
            for ms in (1, 2)
        ]
        assert write_rows(conn, [(r.table, r.values) for r in rows if isinstance(r, Row)]) == {
            "bans": 1
        }
    alert = {"alert_id": "A1", "seq": 1, "updated_at": iso(t0), "position": {"lat": 1, "lon": 2}}
    assert store(engine, "alerts", "A1", alert, t0) == {"alerts": 1}
    assert store(engine, "alerts", "A1", alert, t0) == {"alerts": 0}
    now = t0 + timedelta(days=100)
    assert [b["ban_id"] for b in bans_in_force(engine, now)] == ["K1", "K3"]
    run = erase(engine, now, 90, actor="test")
    assert run.rows["alerts"] == 1 and run.rows["bans"] == 2  # K1 v1 superseded, K2 lifted
    with engine.connect() as conn:
        payload = conn.execute(sa.select(schema.alerts.c.payload)).scalar_one()
    assert "position" not in payload
    assert bans_in_force(engine, now)[0]["zones"]["features"]  # in force: zones kept


@pytest.mark.broker
def test_postgres_stopped_mid_stream_loses_nothing_and_stores_nothing_twice(
    broker: EmbeddedBroker, prefix: str, pg: PostgresServer, engine: sa.Engine, tmp_path: Path
) -> None:
    n = 400
    ensure_topics(broker.bootstrap, prefix, partitions_override=2)
    settings = Settings(
        topic_prefix=prefix,
        app_id="pgsink",
        database_url=pg.url,
        data_dir=str(tmp_path),
        broker_session_timeout_s=2,
        broker_heartbeat_s=0.5,
        store_batch_records=25,
    )
    metrics = StoreMetrics()
    sink = Sink(settings, broker.bootstrap, engine, metrics)

    def produce(first: int, last: int) -> None:  # every tenth revision is sent twice
        p = make_producer(broker.bootstrap)
        for i in range(first, last):
            value = {
                "alert_id": f"A{i % 40}",
                "seq": i // 40,
                "state": "open",
                "kind": "zone_breach",
                "priority": 1,
                "updated_at": iso(datetime.now(UTC)),
            }
            produce_json(p, prefix + "alerts", value["alert_id"], value)
            if i % 10 == 0:
                produce_json(p, prefix + "alerts", value["alert_id"], value)
        p.flush()
        p.close()

    def stored() -> int:
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(sa.select(sa.func.count()).select_from(schema.alerts)).scalar_one()
                )
        except sa.exc.OperationalError:
            return -1

    async def until(condition: Callable[[], bool], task: asyncio.Task[None], what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, what
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        try:
            await asyncio.to_thread(produce, 0, n // 2)
            await until(lambda: stored() >= 60, task, "first records stored")
            await asyncio.to_thread(pg.stop, "fast")  # mid-stream
            await asyncio.to_thread(produce, n // 2, n)  # the producers go on
            unavailable = metrics.failures.labels("unavailable")
            await until(lambda: unavailable._value.get() > 0, task, "the sink saw the outage")
            await asyncio.sleep(2)  # it waits and retries
            await asyncio.to_thread(pg.start)
            await until(lambda: stored() == n, task, f"{stored()} of {n} stored")
            await asyncio.sleep(1)  # anything more would be a duplicate
        finally:
            stop.set()
            await task

    asyncio.run(scenario())
    assert stored() == n
    with engine.connect() as conn:
        keys = conn.execute(sa.select(schema.alerts.c.alert_id, schema.alerts.c.seq)).all()
    assert sorted(keys) == sorted((f"A{i % 40}", i // 40) for i in range(n))
    assert metrics.rows.labels("alerts")._value.get() == n  # each new row counted once
    dead = list(follow(broker.bootstrap, prefix + "dead-letters", True, idle_timeout_s=0.5))
    assert [json.loads(r.value or b"") for r in dead] == []


@pytest.mark.broker
def test_a_record_postgres_refuses_is_dead_lettered_and_the_batch_is_stored(
    broker: EmbeddedBroker, prefix: str, pg: PostgresServer, engine: sa.Engine, tmp_path: Path
) -> None:
    ensure_topics(broker.bootstrap, prefix, partitions_override=1)
    p = make_producer(broker.bootstrap)
    good = {"alert_id": "G1", "seq": 1, "updated_at": iso(datetime.now(UTC))}
    produce_json(p, prefix + "alerts", "G1", good)
    # valid for Python's json (and SQLite), not for PostgreSQL's json type
    p.send(prefix + "alerts", key=b"N1", value=b'{"alert_id": "N1", "seq": 1, "x": NaN}')
    produce_json(p, prefix + "alerts", "G2", {**good, "alert_id": "G2"})
    p.flush()
    p.close()
    settings = Settings(
        topic_prefix=prefix,
        app_id="pgrefuse",
        database_url=pg.url,
        data_dir=str(tmp_path),
        broker_session_timeout_s=2,
        broker_heartbeat_s=0.5,
    )
    sink = Sink(settings, broker.bootstrap, engine, StoreMetrics())

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        deadline = time.monotonic() + 30
        while sink.committed < 3:
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.1)
        stop.set()
        await task

    asyncio.run(scenario())
    with engine.connect() as conn:
        ids = conn.execute(sa.select(schema.alerts.c.alert_id)).scalars().all()
    assert sorted(ids) == ["G1", "G2"]
    assert sink.metrics.failures.labels("row")._value.get() == 1
    dead = [
        json.loads(r.value or b"")
        for r in follow(broker.bootstrap, prefix + "dead-letters", True, idle_timeout_s=1)
    ]
    assert [(d["key"], d["reason"]) for d in dead] == [("N1", "schema")]
    assert "refused by the database" in dead[0]["error"]
