"""The stream worker, assembled: the faust side, the hot loop, the global feeds, the engine.

Data flow (every topic has `PARTITIONS` partitions; all keyed topics use Kafka's default
murmur2 partitioner, so topics keyed by the same id are co-partitioned):

    contact-bans ──► check (dead letters) │ every worker: GlobalFeed → engine.registry
    patrol-positions ► check (dead letters) │ every worker: GlobalFeed → engine.fleet
    positions ─────► hot loop ◄── routed ◄── incidents (matched to bans, keyed by restrained person)
                        │           ▲  ◄── alert-acks (alert id → owner via the alert index)
                        │           └─── protected persons' fixes, re-keyed by restrained person
                        ▼
                  alerts, patrol-tasks, dead-letters            alerts ──► alert index table

The parts, each in its own module of this package:

- routing.py: partitions, the `routed` envelope, which persons a fix or an incident concerns;
- hotloop.py: `positions` and `routed` in batches, the engine's timers, rebalances;
- checkpoint.py: the commit protocol (outputs acknowledged → state and markers → offsets);
- changelog.py: the state written at a commit and adopted after a rebalance, its key format;
- agents.py: the faust app's agents (incidents, acknowledgements, the alert index, checks);
- publish.py: how outputs leave, and the one "decode → reject → dead letter + count" step;
- observer.py: the hooks metrics observe (streams/metrics/worker.py), fanned out.

This module only builds them and runs them in order: topics, feeds, faust, the hot loop.
Broker failures are not swallowed: they stop the worker, which resumes from committed offsets
on restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import faust

from alerts.engine import Engine, Incoming, Outcome
from config.policy import Policy, load_policy
from config.settings import Settings
from config.topics import TopicNames
from geofence.decoding import BANS, PATROL_POSITIONS
from streams.kafka import clients, faust_patches
from streams.kafka.feeds import GlobalFeed
from streams.kafka.topics import ensure_internal, ensure_topics
from streams.worker.agents import Agents
from streams.worker.hotloop import HotLoop, Rebalance
from streams.worker.observer import Observers
from streams.worker.outbox import Outbox, owned_partitions, read_state
from streams.worker.publish import utc_now

#: How long a batch waits for the ban feed when it has not read what the broker holds.
BAN_FEED_WAIT_S = 1.0


class Worker:
    """One stream worker. `observers`: add an `Observer` to it to watch the worker run."""

    def __init__(self, settings: Settings, bootstrap: str, policy: Policy | None = None) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.policy = policy or load_policy(settings.policy_file)
        self.names = TopicNames.with_prefix(settings.topic_prefix)
        self.engine = Engine(self.policy, partial=True)
        self.observers = Observers()
        self.ready = asyncio.Event()

        faust_patches.apply(bootstrap, settings.kafka_security())
        self.app = clients.faust_app(settings, bootstrap)
        app_id = self.app.conf.id
        self.routed_name = f"{app_id}-routed"
        self.state_name = f"{app_id}-state-changelog"  # the name faust gave it as a table
        self.hot_group = f"{app_id}-positions"

        self.bans_feed = GlobalFeed(
            bootstrap, self.names.contact_bans, self._feed(BANS), settings.kafka_security()
        )
        self.patrol_feed = GlobalFeed(
            bootstrap,
            self.names.patrol_positions,
            self._feed(PATROL_POSITIONS),
            settings.kafka_security(),
        )
        self.agents = Agents(
            self.app,
            self.names,
            self.routed_name,
            self.engine,
            self.policy,
            self.observers,
            self._wait_for_bans,
            self.bans_feed.ready,
        )
        self.hot = HotLoop(
            self.engine,
            self.policy,
            self.names.deployed(),
            self.routed_name,
            self.state_name,
            self.observers,
            self._read_state,
            self._wait_for_bans,
        )

    # ------------------------------------------------------------- feeds
    def _feed(self, topic: str) -> Callable[[str | None, bytes | None, int, int], None]:
        """Apply a globally fed record to the registry or the fleet. Rejected records are
        dead-lettered by the check agents. A lifted, revoked or shortened ban resolves the open
        alerts of a state held here (only this worker holds it: the engine is partial); those
        revisions leave through the hot loop's outbox (acknowledged before the next commit
        writes the state), or faust's producer while the hot loop is not running. A state
        adopted later resolves them on its next tick."""
        engine = self.engine

        def apply(key: str | None, value: bytes | None, partition: int, offset: int) -> None:
            result = engine.handle(Incoming(topic, key, value, partition, offset), utc_now())
            if result.outcome is not Outcome.accepted:  # a rejected one's dead letter: not ours
                return
            for output in result.outputs:
                if self.hot.outbox is not None:
                    self.hot.publisher.send(output)
                else:
                    self.agents.publisher.send(output)

        return apply

    async def _wait_for_bans(self) -> None:
        """A ban and a fix published together race through different topics; give the ban
        feed a moment to read what the broker already holds."""
        waited = 0.0
        while self.bans_feed.behind() and waited < BAN_FEED_WAIT_S:
            await asyncio.sleep(0.01)
            waited += 0.01

    async def _read_state(self, partitions: set[int]) -> dict[str, Any]:
        return await read_state(
            self.bootstrap, self.state_name, partitions, self.settings.kafka_security()
        )

    # ---------------------------------------------------------- hot path
    async def _hot(self, stop: asyncio.Event) -> None:
        """The hot loop on its own group consumer and producer, until `stop`."""
        await self.bans_feed.ready.wait()
        await self.patrol_feed.ready.wait()
        s, n = self.settings, self.names
        consumer = clients.hot_consumer(s, self.bootstrap, self.hot_group)
        producer = clients.hot_producer(s, self.bootstrap, f"{self.hot_group}-producer")
        await producer.start()
        try:
            outbox = Outbox(producer)
            await outbox.prepare(
                [
                    n.alerts,
                    n.patrol_tasks,
                    n.protected_notifications,
                    n.dead_letters,
                    self.routed_name,
                    self.state_name,
                ]
            )
            state_box = Outbox(producer)
            await state_box.prepare([self.state_name])
            consumer.subscribe([n.positions, self.routed_name], listener=Rebalance(self.hot))
            await consumer.start()
            try:
                await self.hot.run(
                    consumer, outbox, state_box, stop, lambda: owned_partitions(consumer)
                )
            finally:
                await consumer.stop()
        finally:
            await producer.stop()

    # --------------------------------------------------------- lifecycle
    async def run(self, stop: asyncio.Event, ready: Callable[[], None] | None = None) -> None:
        """Run until `stop` is set: topics, feeds, the faust worker, then the hot loop;
        `ready` once consuming."""
        security = self.settings.kafka_security()
        await asyncio.to_thread(
            ensure_topics, self.bootstrap, self.settings.topic_prefix, **security
        )
        await asyncio.to_thread(
            ensure_internal, self.bootstrap, self.routed_name, self.state_name, security
        )
        feeds = [
            asyncio.create_task(self.bans_feed.run(), name="feed-bans"),
            asyncio.create_task(self.patrol_feed.run(), name="feed-patrol"),
        ]
        fw = faust.Worker(
            self.app,
            loglevel=self.settings.log_level.upper(),
            override_logging=False,
            quiet=True,
            daemon=False,
        )
        fw.spinner = None
        hot_stop = asyncio.Event()
        hot: asyncio.Task[None] | None = None
        try:
            waiters = [
                asyncio.create_task(f.ready.wait()) for f in (self.bans_feed, self.patrol_feed)
            ]
            await _first_of(feeds, waiters)
            await fw.start()
            hot = asyncio.create_task(self._hot(hot_stop), name="hot-path")
            tasks = [*feeds, hot]
            await _first_of(tasks, [asyncio.create_task(self.hot.assigned.wait())])
            await _wait_assigned(self.app)
            self.ready.set()
            if ready is not None:
                ready()
            stop_task = asyncio.create_task(stop.wait())
            await asyncio.wait([stop_task, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for f in tasks:
                if f.done() and f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
        finally:
            if hot is not None:
                hot_stop.set()  # a last commit, then the consumer leaves its group
                await asyncio.gather(hot, return_exceptions=True)
            await fw.stop()
            for f in feeds:
                f.cancel()
            await asyncio.gather(*feeds, return_exceptions=True)


async def _first_of(feeds: list[asyncio.Task[None]], waiters: list[asyncio.Task[Any]]) -> None:
    """Wait for every waiter; a task of `feeds` that ends first raises its error."""
    pending = set(waiters)
    while pending:
        done, _ = await asyncio.wait([*pending, *feeds], return_when=asyncio.FIRST_COMPLETED)
        for f in feeds:
            if f.done():
                exc = f.exception()
                raise exc if exc is not None else RuntimeError(f"{f.get_name()} stopped")
        pending -= done


async def _wait_assigned(app: faust.App, timeout_s: float = 60.0) -> None:
    """Wait until the consumer group has given this worker its partitions and recovery ran."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if app.consumer.assignment() and not app.rebalancing:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the worker was given no partitions in time")
