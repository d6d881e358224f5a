"""The dispatch console's Kafka side: feed the console's store, publish what operators do.

The console reads, from the beginning and without a consumer group (every partition assigned,
nothing committed, no partitions taken from anyone, no join delay on Tansu), four topics:
`alerts` (the board), `patrol-tasks` (task boards), `contact-bans` (zones for the map) and
`patrol-positions` (where recommended units are). It is ready (`ready(url)`, `/healthz` 200)
once it is listening and has read up to the log end each partition had at start, so the first
page an operator sees is complete. It publishes AlertActions to `alert-acks` (key alert_id),
TaskUpdates to `task-updates` (key task_id) and AuditRecords to `audit` (key: the object
consulted or changed), waiting for the broker's acknowledgement
before the HTTP request succeeds: a consultation that could not be audited shows nothing.

The web application itself (`streams/console/`) never sees Kafka. Logs here carry topic names,
counts and error types, never a record's content.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from config.settings import Principal, Settings
from config.topics import ALERT_ACKS, AUDIT, TASK_UPDATES, TopicNames
from streams.console.app import AccessLog, make_app, new_instance_name
from streams.console.store import Store, Value
from streams.kafka.blocking import encode_json
from streams.kafka.clients import groupless_consumer, record_producer
from streams.kafka.faust_patches import exact_ends
from streams.kafka.feeds import rewind_if_truncated
from streams.metrics.prometheus import Metrics
from streams.store.queries import Records

log = logging.getLogger("banwatch.console")

TOPIC_WAIT_LOG_S = 10.0


class ConsoleFeed:
    """Reads the console's topics into `store`; `ready` once caught up with the start's ends."""

    def __init__(
        self,
        bootstrap: str,
        names: TopicNames,
        store: Store,
        security: Mapping[str, Any] | None = None,
        on_alert: Callable[[Value], None] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.store = store
        self.kafka_security = dict(security or {})
        self.on_alert = on_alert
        self.ready = asyncio.Event()
        self.running = False
        #: the broker must have answered within `stale_s` for the feed to count as consuming
        self.probe_s = 5.0
        self.stale_s = 20.0
        self._last_ok = 0.0
        self.records = 0
        self.undecodable = 0
        self._apply: dict[str, Callable[[str | None, Any], object]] = {
            names.alerts: self._alert,
            names.patrol_tasks: lambda _k, v: self.store.apply_task(v),
            names.contact_bans: self.store.apply_ban,
            names.patrol_positions: lambda _k, v: self.store.apply_unit(v),
        }

    def healthy(self) -> bool:
        """Caught up, still reading, and the broker answered recently (a fetch that returns
        nothing cannot tell an idle topic from a dead broker; a metadata probe can)."""
        fresh = time.monotonic() - self._last_ok < self.stale_s
        return self.running and self.ready.is_set() and fresh

    async def _probe(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                ok = await asyncio.wait_for(consumer._client.force_metadata_update(), self.probe_s)
            except (TimeoutError, OSError, KafkaError):
                ok = False
            if ok:
                self._last_ok = time.monotonic()
            else:
                log.warning("the broker did not answer a metadata request")
            await asyncio.sleep(self.probe_s)

    def _alert(self, _key: str | None, value: Any) -> None:
        if self.store.apply_alert(value) and self.on_alert is not None:
            try:
                self.on_alert(value)
            except Exception as exc:  # metrics must never stop the board
                log.error("alert hook failed: %s", type(exc).__name__)

    async def run(self) -> None:
        consumer = groupless_consumer(self.bootstrap, "banwatch-console", self.kafka_security)
        await consumer.start()
        self.running = True
        self._last_ok = time.monotonic()
        probe = asyncio.create_task(self._probe(consumer), name="console-probe")
        try:
            tps = await self._partitions(consumer)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            pos = {tp: await consumer.position(tp) for tp in tps}
            ends = await asyncio.to_thread(exact_ends, self.bootstrap, self.kafka_security, tps)
            while True:
                if not self.ready.is_set() and all(pos[tp] >= ends[tp] for tp in tps):
                    log.info("caught up: %d records, %s", self.records, self.store.counts())
                    self.ready.set()
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, records in batches.items():
                    apply = self._apply[tp.topic]
                    for r in records:
                        self._one(apply, r.key, r.value)
                    if records:
                        pos[tp] = records[-1].offset + 1
                await rewind_if_truncated(consumer, pos, "console")
        finally:
            self.running = False
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
            await consumer.stop()

    def _one(
        self, apply: Callable[[str | None, Any], object], key: bytes | None, raw: bytes | None
    ) -> None:
        self.records += 1
        try:
            k = None if key is None else key.decode("utf-8")
            value = None if raw is None else json.loads(raw)
            apply(k, value)
        except (UnicodeDecodeError, ValueError) as exc:
            self.undecodable += 1
            log.warning("record skipped: %s", type(exc).__name__)

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """Every partition of the console's topics, waiting for topics not created yet."""
        last_log = 0.0
        while True:
            await consumer._client.force_metadata_update()
            found = {t: consumer.partitions_for_topic(t) for t in self._apply}
            missing = sorted(t for t, parts in found.items() if not parts)
            if not missing:
                return [
                    TopicPartition(t, p)
                    for t, parts in sorted(found.items())
                    for p in sorted(parts or ())
                ]
            if time.monotonic() - last_log > TOPIC_WAIT_LOG_S:
                log.warning("waiting for topics to exist: %s", ", ".join(missing))
                last_log = time.monotonic()
            await asyncio.sleep(0.5)


async def serve_console(
    settings: Settings,
    bootstrap: str,
    *,
    tokens: dict[str, Principal],
    stop: asyncio.Event,
    ready: Callable[[str], None] | None = None,
    metrics: Metrics | None = None,
) -> None:
    """Run the console until `stop` is set; `ready(url)` once listening and caught up.

    Raises if the feed dies (a broker failure is not swallowed) or the port cannot be bound.
    """
    if not tokens:
        raise ValueError("the console needs at least one token (BANWATCH_CONSOLE_TOKENS)")
    names = TopicNames.with_prefix(settings.topic_prefix)
    security = settings.kafka_security()
    store = Store(new_instance_name())
    feed = ConsoleFeed(
        bootstrap,
        names,
        store,
        security,
        on_alert=None if metrics is None else metrics.track_alert,
    )
    producer = record_producer(bootstrap, "banwatch-console", security)
    topics = {ALERT_ACKS: names.alert_acks, AUDIT: names.audit, TASK_UPDATES: names.task_updates}

    async def publish(topic: str, key: str, value: Value) -> None:
        await producer.send_and_wait(
            topics[topic], key=key.encode("utf-8"), value=encode_json(value)
        )

    records = Records.open(settings.database_url, settings.data_dir)
    app = make_app(
        store,
        publish,
        tokens,
        health=feed.healthy,
        records=records,
        map_tiles=settings.map_tiles,
    )
    runner = web.AppRunner(
        app,
        access_log_class=AccessLog,
        access_log=logging.getLogger("banwatch.console.access"),
        shutdown_timeout=2.0,
    )
    await producer.start()
    feed_task: asyncio.Task[None] | None = None
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.console_host, settings.console_port)
        await site.start()
        url = _url(site, settings.console_host)
        feed_task = asyncio.create_task(feed.run(), name="console-feed")
        stopper = asyncio.create_task(stop.wait())
        caught_up = asyncio.create_task(feed.ready.wait())
        await asyncio.wait([feed_task, stopper, caught_up], return_when=asyncio.FIRST_COMPLETED)
        if feed_task.done():
            stopper.cancel()
            caught_up.cancel()
            feed_task.result()  # raises what stopped it
            raise RuntimeError("the console's feed stopped")
        if caught_up.done():
            if settings.kafka_bootstrap is None:  # the embedded broker: it kept nothing
                await restore_alerts(store, records)
            log.info("console on %s", url)
            if ready is not None:
                ready(url)
            await asyncio.wait([feed_task, stopper], return_when=asyncio.FIRST_COMPLETED)
        caught_up.cancel()
        stopper.cancel()
        if feed_task.done() and not stop.is_set():
            feed_task.result()
            raise RuntimeError("the console's feed stopped")
    finally:
        if feed_task is not None:
            feed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feed_task
        await runner.cleanup()
        await producer.stop()
        records.close()


async def restore_alerts(store: Store, records: Records) -> int:
    """Put on the board, marked `restored`, the alerts the record store holds as not resolved
    that the topics do not (called once the feed has caught up, and only on the embedded
    broker, which keeps nothing across a restart: on Kafka the topics are the board, and an
    alert older than their retention may still be tracked by a worker). After `banwatch up`
    restarts these are the alerts that were open before. A store that cannot be read leaves
    the board as the topics make it, with a warning."""
    try:
        alerts = await asyncio.to_thread(records.restorable_alerts)
    except Exception as exc:
        log.warning(
            "open alerts not restored: the record store did not answer (%s)", type(exc).__name__
        )
        return 0
    n = sum(1 for a in alerts if store.restore_alert(a))
    if n:
        log.warning("%d open alerts restored from the record store (no worker tracks them)", n)
    return n


def _url(site: web.TCPSite, host: str) -> str:
    """The URL a person opens: the bound port (also when 0 was asked for), and loopback
    for a wildcard bind."""
    server: Any = site._server
    port = int(server.sockets[0].getsockname()[1])
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"
