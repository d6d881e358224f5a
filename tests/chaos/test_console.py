"""`banwatch console` through a burst, a client that drops and resumes in the middle of it, and
a broker restart: the operator's stream shows every alert revision, the console stays up,
serves its board while the broker is gone, and acknowledges and audits on the new broker.

The embedded broker keeps nothing across a restart (Tansu in memory): the new one starts with
empty topics. Tansu then answers a fetch beyond the new log's end with an empty response, not
OFFSET_OUT_OF_RANGE as Kafka does, so a reader positioned where the old log ended would wait
until the new log passed that offset and skip what came before. The console (and the worker's
global feeds) read a partition again from its start when its end falls below their position
(`streams.kafka.feeds.rewind_if_truncated`); the last test checks alerts published after the restart
all reach the operator.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import aiohttp
import pytest

from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.topics import ensure_topics
from tests.chaos.harness import Row
from tests.streams.workers import ROOT, ts

pytestmark = [pytest.mark.chaos, pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]

TOKEN = "chaos-dispatcher-token-0123456789"
BURST_1, BURST_2 = 200, 100
DROP_AFTER = 60  # the client drops its stream after this many alert events


class ConsoleProc:
    """`banwatch console` in its own process, as deployed."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        tokens = {TOKEN: {"user": "op-17", "role": "dispatcher"}}
        self.env = {
            **os.environ,
            "BANWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "BANWATCH_TOPIC_PREFIX": prefix,
            "BANWATCH_CONSOLE_TOKENS": json.dumps(tokens),
            "BANWATCH_CONSOLE_PORT": "0",
            "BANWATCH_METRICS_PORT": "0",
            "BANWATCH_LOG_LEVEL": "warn",
        }
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "console"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(60):
            self.proc.kill()
            raise AssertionError("console not ready:\n" + "\n".join(self.lines[-30:]))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("console: "):
                self.url = line.split(" ", 1)[1].strip().rstrip("/")
                self._ready.set()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        return self.proc.returncode


def _alert(alert_id: str, n: int) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "seq": 1,
        "state": "open",
        "kind": "zone_breach",
        "priority": 1 + n % 2,
        "confidence": "confirmed",
        "ban_id": f"KF-C{n}",
        "ban_version": 1,
        "restrained_person": f"P-C{n}",
        "zone_id": "home",
        "position": {"lat": 59.3, "lon": 18.05, "accuracy_m": 5.0, "ts": ts(-5)},
        "distance_m": 0.0,
        "opened_at": ts(-5),
        "updated_at": ts(-5),
        "reason": "fix inside zone 'home'",
        "recommended_units": [],
        "contract_version": 2,
    }


def _burst(bootstrap: str, topic: str, ids: list[str], per_s: float) -> None:
    producer = make_producer(bootstrap)
    try:
        for n, aid in enumerate(ids):
            produce_json(producer, topic, aid, _alert(aid, n))
            if n % 10 == 9:
                producer.flush(10)
                time.sleep(10 / per_s)
        producer.flush(10)
    finally:
        producer.close(5)


class Client:
    """An operator's browser: reads /api/stream, remembers the last event id, resumes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {TOKEN}"}
        self.last_id: str | None = None
        self.delivered: list[tuple[str, int]] = []  # (alert_id, seq) as events arrived
        self.snapshots: list[set[str]] = []
        self.connections = 0

    def seen(self) -> set[str]:
        return {a for a, _ in self.delivered}.union(*self.snapshots)

    async def read(self, session: aiohttp.ClientSession, stop_after: int | None = None) -> None:
        """Read until `stop_after` alert events arrived on this connection (then drop it), or
        until cancelled."""
        headers = dict(self.headers)
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        self.connections += 1
        got = 0
        async with session.get(f"{self.url}/api/stream", headers=headers) as resp:
            assert resp.status == 200
            event, data, eid = "", "", None
            async for raw in resp.content:
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("id: "):
                    eid = line[4:]
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "":
                    if event == "alert":
                        value = json.loads(data)
                        self.delivered.append((value["alert_id"], value["seq"]))
                        got += 1
                    elif event == "snapshot":
                        self.snapshots.append({a["alert_id"] for a in json.loads(data)["alerts"]})
                    if eid is not None:
                        self.last_id = eid
                    event, data, eid = "", "", None
                    if stop_after is not None and got >= stop_after:
                        return  # the connection drops mid-burst


async def _until(cond: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def test_the_console_survives_a_broker_restart_and_a_client_resuming_mid_burst(
    report: list[Row],
) -> None:
    port = free_port()
    prefix = f"c{uuid.uuid4().hex[:6]}."
    broker = EmbeddedBroker(port).start()
    ensure_topics(broker.bootstrap, prefix)
    console = ConsoleProc(broker.bootstrap, prefix)
    first = [uuid.uuid4().hex for _ in range(BURST_1)]
    second = [uuid.uuid4().hex for _ in range(BURST_2)]
    client = Client(console.url)
    acked: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    health: list[int] = []

    async def scenario() -> None:
        nonlocal broker
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            burst = asyncio.create_task(
                asyncio.to_thread(_burst, broker.bootstrap, prefix + "alerts", first, 100)
            )
            await client.read(session, stop_after=DROP_AFTER)  # then the connection drops
            await asyncio.sleep(0.5)
            reading = asyncio.create_task(client.read(session))  # resumes with Last-Event-ID
            await burst
            await _until(lambda: set(first) <= client.seen(), 30, "the first burst")

            broker.stop()  # everything the broker held is gone
            async with session.get(f"{console.url}/api/alerts", headers=client.headers) as r:
                assert r.status == 200  # the board is still served from memory
                assert {a["alert_id"] for a in (await r.json())["alerts"]} >= set(first)
            await asyncio.sleep(3.0)
            assert console.proc.poll() is None, "the console died with the broker"
            broker = EmbeddedBroker(port).start()
            ensure_topics(broker.bootstrap, prefix)
            await asyncio.to_thread(_burst, broker.bootstrap, prefix + "alerts", second, 100)
            await asyncio.sleep(2.0)
            async with session.get(f"{console.url}/healthz") as r:
                health.append(r.status)

            aid = first[-1]  # an alert on the board, acknowledged through the new broker
            url = f"{console.url}/api/alerts/{aid}"
            async with session.post(f"{url}/ack", headers=client.headers, json={"note": "x"}) as r:
                assert r.status == 202, await r.text()  # published; the worker applies it
                assert (await r.json())["published"] is True
            async with session.get(url, headers=client.headers) as r:
                assert r.status == 200, await r.text()
            reading.cancel()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 180))
        for topic, out in (("alert-acks", acked), ("audit", audit)):
            out.extend(
                json.loads(rec.value)
                for rec in follow(broker.bootstrap, prefix + topic, True, idle_timeout_s=1.0)
                if rec.value is not None
            )
        alive = console.proc.poll() is None
        rc = console.stop()
    finally:
        if console.proc.poll() is None:
            console.proc.kill()
        broker.stop()

    lost = len(set(first) - client.seen())
    duplicated = len(client.delivered) - len(set(client.delivered))
    after = len(set(second) & client.seen())
    report.append(
        Row(
            f"console: operator stream dropped after {DROP_AFTER} alerts and resumed "
            "(Last-Event-ID) mid-burst; then the broker stopped for 3 s and restarted empty",
            BURST_1 + BURST_2,
            BURST_1,
            lost,
            duplicated,
            f"{client.connections} connections, {len(client.snapshots)} snapshot; console up "
            f"throughout, /healthz {health} after; ack and audit on the new broker; "
            f"{after} of {BURST_2} alerts published after the restart shown",
        )
    )
    assert alive and rc == 0, "\n".join(console.lines[-30:])
    assert lost == 0 and duplicated == 0
    assert client.connections == 2 and len(client.snapshots) == 1  # resumed: no new snapshot
    assert health == [200]
    assert [(a["alert_id"], a["action"], a["by"]) for a in acked] == [
        (first[-1], "acknowledge", "op-17")
    ]
    # who, what, when, why: a change and a consultation, each audited on the new broker
    assert [(a["actor"], a["action"], a["object"]) for a in audit] == [
        ("op-17", "acknowledge", f"alert:{first[-1]}"),
        ("op-17", "consult", f"alert:{first[-1]}"),
    ]
    assert all(a["ts"] and a["role"] == "dispatcher" and a["reason"] for a in audit)


def test_alerts_published_after_an_embedded_broker_restart_reach_the_console() -> None:
    port = free_port()
    prefix = f"c{uuid.uuid4().hex[:6]}."
    broker = EmbeddedBroker(port).start()
    ensure_topics(broker.bootstrap, prefix)
    console = ConsoleProc(broker.bootstrap, prefix)
    client = Client(console.url)
    first = [uuid.uuid4().hex for _ in range(80)]
    second = [uuid.uuid4().hex for _ in range(40)]

    async def scenario() -> None:
        nonlocal broker
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            reading = asyncio.create_task(client.read(session))
            await asyncio.to_thread(_burst, broker.bootstrap, prefix + "alerts", first, 200)
            await _until(lambda: set(first) <= client.seen(), 30, "the first burst")
            broker.stop()
            broker = EmbeddedBroker(port).start()
            ensure_topics(broker.bootstrap, prefix)
            await asyncio.to_thread(_burst, broker.bootstrap, prefix + "alerts", second, 200)
            try:
                await _until(lambda: set(second) <= client.seen(), 15, "the second burst")
            finally:
                reading.cancel()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        console.stop()
        broker.stop()
