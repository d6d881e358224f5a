"""The console on a real Kafka-protocol broker: it catches up before it says it is ready, shows
alerts produced live, and what operators do arrives on `alert-acks` and `audit`; what units
report arrives on `task-updates`, and the worker's next task revision reaches the unit live."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp
import pytest

from config.settings import load_settings
from config.topics import TopicNames
from streams.console.service import ConsoleFeed, serve_console
from streams.console.store import Store
from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker
from streams.kafka.topics import ensure_topics
from tests.streams.consolekit import (
    BAN,
    DISPATCHER,
    PATROL,
    TOKENS,
    alert,
    bearer,
    read_event,
    revision,
    task,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _read(bootstrap: str, topic: str, want: int, timeout_s: float = 10.0) -> list[tuple[str, Any]]:
    out = []
    deadline = time.monotonic() + timeout_s
    for rec in follow(bootstrap, topic, True, idle_timeout_s=2.0):
        out.append((rec.key.decode() if rec.key else None, json.loads(rec.value or b"null")))
        if len(out) >= want or time.monotonic() > deadline:
            break
    return out


def test_console_on_the_broker(broker: EmbeddedBroker, prefix: str) -> None:
    bootstrap = broker.bootstrap
    ensure_topics(bootstrap, prefix)
    names = TopicNames.with_prefix(prefix)
    producer = make_producer(bootstrap)
    # history the console must have read before it says it is ready
    produce_json(producer, names.contact_bans, BAN["ban_id"], BAN)
    for n in range(1, 4):
        produce_json(
            producer, names.alerts, "a1", alert("a1", seq=n, state="updated" if n > 1 else "open")
        )
    produce_json(producer, names.alerts, "a2", alert("a2", priority=2, kind="approach"))
    produce_json(producer, names.patrol_tasks, "SÖ-2140", task("t1", "SÖ-2140"))
    produce_json(producer, names.patrol_tasks, "SÖ-2150", task("t2", "SÖ-2150", kind="protect"))
    producer.flush()
    settings = load_settings({"BANWATCH_TOPIC_PREFIX": prefix, "BANWATCH_CONSOLE_PORT": "0"})

    async def scenario() -> None:
        stop = asyncio.Event()
        urls: list[str] = []
        t0 = time.monotonic()
        served = asyncio.create_task(
            serve_console(settings, bootstrap, tokens=TOKENS, stop=stop, ready=urls.append)
        )
        while not urls:
            assert not served.done(), served
            await asyncio.sleep(0.05)
        ready_s = time.monotonic() - t0
        url = urls[0]
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession(url) as http:
            resp = await http.get("/healthz")
            assert resp.status == 200
            resp = await http.get("/api/alerts", headers=bearer(DISPATCHER))
            body = await resp.json()
            assert [(a["alert_id"], a["seq"]) for a in body["alerts"]] == [("a1", 3), ("a2", 1)]
            resp = await http.get("/api/tasks", headers=bearer(PATROL))
            assert [t["task_id"] for t in (await resp.json())["tasks"]] == ["t1"]

            # live: a new alert reaches an open event stream
            stream = await http.get("/api/stream", headers=bearer(DISPATCHER))
            snap = await read_event(stream)
            assert snap["event"] == "snapshot"
            t_sent = time.monotonic()
            await asyncio.to_thread(
                lambda: produce_json(producer, names.alerts, "a9", alert("a9")).get(10)
            )
            ev = await read_event(stream, timeout=10)
            live_s = time.monotonic() - t_sent
            assert (ev["event"], ev["data"]["alert_id"]) == ("alert", "a9")
            stream.close()

            # consult and acknowledge: both recorded on the broker
            resp = await http.get("/api/alerts/a1?reason=handling", headers=bearer(DISPATCHER))
            assert resp.status == 200
            detail = await resp.json()
            assert [r["seq"] for r in detail["revisions"]] == [1, 2, 3]
            assert detail["ban"]["ban_id"] == BAN["ban_id"]
            resp = await http.post(
                "/api/alerts/a1/ack", json={"note": "Patrull på väg"}, headers=bearer(DISPATCHER)
            )
            assert resp.status == 202
        acks = await asyncio.to_thread(_read, bootstrap, names.alert_acks, 1)
        assert acks[0][0] == "a1"
        assert {k: acks[0][1][k] for k in ("alert_id", "action", "by", "note")} == {
            "alert_id": "a1",
            "action": "acknowledge",
            "by": "op-17",
            "note": "Patrull på väg",
        }
        audits = await asyncio.to_thread(_read, bootstrap, names.audit, 2)
        assert [(k, v["action"]) for k, v in audits] == [
            ("alert:a1", "consult"),
            ("alert:a1", "acknowledge"),
        ]
        stop.set()
        await asyncio.wait_for(served, 10)
        print(f"console ready in {ready_s:.2f} s; a new alert reached the stream in {live_s:.3f} s")

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        producer.close()


def test_a_units_task_update_goes_to_task_updates_and_the_revision_comes_back_live(
    broker: EmbeddedBroker, prefix: str
) -> None:
    bootstrap = broker.bootstrap
    ensure_topics(bootstrap, prefix)
    names = TopicNames.with_prefix(prefix)
    producer = make_producer(bootstrap)
    # as the worker publishes them: the first revision, then a redelivered older one
    produce_json(producer, names.patrol_tasks, "SÖ-2140", revision("r1", "SÖ-2140", seq=1))
    produce_json(producer, names.patrol_tasks, "SÖ-2150", revision("r2", "SÖ-2150", seq=1))
    producer.flush()
    settings = load_settings({"BANWATCH_TOPIC_PREFIX": prefix, "BANWATCH_CONSOLE_PORT": "0"})

    async def scenario() -> None:
        stop = asyncio.Event()
        urls: list[str] = []
        served = asyncio.create_task(
            serve_console(settings, bootstrap, tokens=TOKENS, stop=stop, ready=urls.append)
        )
        while not urls:
            assert not served.done(), served
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession(urls[0]) as http:
            stream = await http.get("/api/stream", headers=bearer(PATROL))
            snap = await read_event(stream)
            assert [(t["task_id"], t["state"]) for t in snap["data"]["tasks"]] == [
                ("r1", "assigned")
            ]
            resp = await http.post(
                "/api/tasks/r1/accept", json={"note": "från Ronna"}, headers=bearer(PATROL)
            )
            assert resp.status == 202, await resp.text()
            [(key, update)] = await asyncio.to_thread(_read, bootstrap, names.task_updates, 1)
            assert key == "r1"
            assert {k: update[k] for k in ("task_id", "by", "role", "action", "note")} == {
                "task_id": "r1",
                "by": "SÖ-2140",
                "role": "patrol",
                "action": "accept",
                "note": "från Ronna",
            }
            [(akey, audit)] = await asyncio.to_thread(_read, bootstrap, names.audit, 1)
            assert (akey, audit["action"], audit["actor"]) == ("task:r1", "task_accept", "pat-2140")
            # the worker's next revision (and a redelivery of the old one) on patrol-tasks
            await asyncio.to_thread(
                lambda: produce_json(
                    producer,
                    names.patrol_tasks,
                    "SÖ-2140",
                    revision("r1", "SÖ-2140", seq=2, state="accepted"),
                ).get(10)
            )
            await asyncio.to_thread(
                lambda: produce_json(
                    producer, names.patrol_tasks, "SÖ-2140", revision("r1", "SÖ-2140", seq=1)
                ).get(10)
            )
            ev = await read_event(stream, timeout=10)
            assert (ev["data"]["task_id"], ev["data"]["seq"], ev["data"]["state"]) == (
                "r1",
                2,
                "accepted",
            )
            stream.close()
            resp = await http.get("/api/tasks", headers=bearer(PATROL))
            [held] = (await resp.json())["tasks"]
            assert (held["seq"], held["state"]) == (2, "accepted")
        stop.set()
        await asyncio.wait_for(served, 10)

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        producer.close()


def test_console_waits_for_topics_that_do_not_exist_yet(
    broker: EmbeddedBroker, prefix: str
) -> None:
    settings = load_settings({"BANWATCH_TOPIC_PREFIX": prefix, "BANWATCH_CONSOLE_PORT": "0"})

    async def scenario() -> None:
        stop = asyncio.Event()
        urls: list[str] = []
        served = asyncio.create_task(
            serve_console(settings, broker.bootstrap, tokens=TOKENS, stop=stop, ready=urls.append)
        )
        await asyncio.sleep(1.0)
        assert urls == [] and not served.done()  # not ready: nothing to read yet
        await asyncio.to_thread(ensure_topics, broker.bootstrap, prefix)
        for _ in range(200):
            if urls:
                break
            await asyncio.sleep(0.05)
        assert urls
        stop.set()
        await asyncio.wait_for(served, 10)

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_health_follows_the_broker(broker: EmbeddedBroker, prefix: str) -> None:
    """/healthz is 200 only while the console is consuming: a broker that stops answering
    makes it 503 within `stale_s`, and it recovers when the broker does."""
    ensure_topics(broker.bootstrap, prefix, partitions_override=1)
    feed = ConsoleFeed(broker.bootstrap, TopicNames.with_prefix(prefix), Store("h"))
    feed.probe_s, feed.stale_s = 0.3, 1.5

    async def until(want: bool, timeout_s: float) -> float:
        t0 = time.monotonic()
        while feed.healthy() is not want:
            assert time.monotonic() - t0 < timeout_s, f"healthy() stayed {not want}"
            await asyncio.sleep(0.1)
        return time.monotonic() - t0

    async def scenario() -> None:
        running = asyncio.create_task(feed.run())
        await until(True, 20)
        broker.pause()
        try:
            await until(False, 10)
        finally:
            broker.resume()
        await until(True, 20)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    asyncio.run(asyncio.wait_for(scenario(), 60))
