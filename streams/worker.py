"""The stream worker: faust agents around the decision core, on any Kafka-protocol broker.

Data flow (every topic has `PARTITIONS` partitions; all keyed topics use Kafka's default
murmur2 partitioner, so topics keyed by the same id are co-partitioned):

    contact-bans ──► check (dead letters) │ every worker: GlobalFeed → engine.registry
    patrol-positions ► check (dead letters) │ every worker: GlobalFeed → engine.fleet
    positions ─────► process ◄── routed ◄── incidents (matched to bans, keyed by restrained person)
                        │           ▲  ◄── alert-acks (alert id → owner via the alert index)
                        │           └─── protected persons' fixes, re-keyed by restrained person
                        ▼
                  alerts, patrol-tasks, dead-letters            alerts ──► alert index table

Decisions for a ban need the restrained person's and the protected persons' fixes in one
place. State lives per restrained person's partition: a restrained person's own fixes already
arrive keyed by that person on `positions` and are decided where they land; everything else
that concerns the person (protected persons' fixes, incidents, acknowledgements) is re-keyed to
the person through the internal `routed` topic, co-partitioned with `positions`. All of one
person's bans are therefore in one place, and so is the `knock` count of approach alerts.

`positions` and `routed` carry almost all the traffic; they are read in batches by the hot
path (streams/hotpath.py: an aiokafka group consumer, outside faust's per-event machinery),
which also runs the engine's timers. Faust runs the other agents.

State (per-ban `BanState`, knock counts, unmatched-incident alerts) lives in a changelog topic
partitioned like `positions`; the engine keeps the live objects and the worker writes the ones
it touched at every commit (`hotpath.COMMIT_S`), with the offsets applied so far, before the
consumer's offsets are committed. A per-partition marker of the last applied offset makes
re-delivery after a crash (at-least-once) a no-op instead of a double update. After every
rebalance the engine drops all ban state and adopts what the changelog holds for the
partitions it now owns, timers included.

Agents catch per record: a bad record becomes a dead letter, a failing detector an `internal`
dead letter, and the stream goes on (faust acks a record whose agent raised). Broker failures
are not swallowed: they stop the worker, which resumes from committed offsets on restart.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.partitioner import DefaultPartitioner
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError, for_code

from alerts.engine import Engine, Incoming, Outcome, dead_letter, incident_scope
from alerts.model import ALERTS, DEAD_LETTERS, TASKS, Output
from alerts.snapshot import (
    dump_alert,
    dump_ban_state,
    dump_knock,
    load_alert,
    load_ban_state,
    load_knock,
)
from config.policy import Policy, load_policy
from config.settings import Settings
from geofence.decoding import (
    ACKS,
    BANS,
    INCIDENTS,
    PATROL_POSITIONS,
    POSITIONS,
    Reason,
    Rejected,
    decode,
)
from geofence.records import AlertAction, Incident, LocationFix
from streams import faust_patches, hotpath
from streams.feeds import GlobalFeed
from streams.kafka_io import encode_json
from streams.topics import PARTITIONS, SPECS, TopicNames, ensure_topics

log = logging.getLogger("banwatch.worker")

#: How long an acknowledgement for an alert the index does not know yet is held back, waiting
#: for the alert itself to be indexed, before it goes to dead-letters as `unknown_alert`.
ACK_WAIT_S = 5.0
#: Every batch with unknown alert ids first waits this long: an alert published a moment
#: before its acknowledgement may not have been fetched yet (fetch wait 100 ms).
ACK_GRACE_S = 0.3
#: How long a batch waits for the ban feed when it has not read what the broker holds.
BAN_FEED_WAIT_S = 1.0
TICK_S = 1.0

_partitioner = DefaultPartitioner()
_ALL = list(range(PARTITIONS))


@functools.lru_cache(maxsize=1 << 16)  # persons report again and again: murmur2 in Python
def partition_for(key: str) -> int:
    """The partition Kafka's default partitioner gives `key` (murmur2, as Java and aiokafka)."""
    return int(_partitioner(key.encode("utf-8"), _ALL, _ALL))


def _now() -> datetime:
    return datetime.now(UTC)


def _route_key(alert: dict[str, Any]) -> str | None:
    """Where an alert's state lives: its restrained person, or its unmatched incident."""
    person = alert.get("restrained_person")
    if isinstance(person, str):
        return person
    inc = alert.get("incident_id")
    return incident_scope(inc) if isinstance(inc, str) else None


class Worker:
    """One stream worker: the faust app, its agents, the global feeds and the engine."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        policy: Policy | None = None,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.policy = policy or load_policy(settings.policy_file)
        self.names = TopicNames.with_prefix(settings.topic_prefix)
        self.security = settings.kafka_security()
        self.engine = Engine(self.policy, partial=True)
        self.on_output: Callable[[Output], None] | None = None  # for metrics
        # per decided input record: topic, outcome, reason, how many records
        self.on_event: Callable[[str, Outcome, Reason | None, int], None] | None = None
        # per batch and topic: topic, seconds from fetch to outputs queued, how many records
        self.on_processed: Callable[[str, float, int], None] | None = None
        self.on_adopted: Callable[[], None] | None = None
        self.applied: dict[str, int] = {}  # "src:partition" -> last applied offset
        self.indexed: dict[int, int] = {}  # alerts partition -> last offset the index read
        self._knock_written: dict[str, Any] = {}  # person -> last knock count written
        self._marks_written: dict[str, int] = {}  # "src:partition" -> offset in the changelog
        self.done: dict[TopicPartition, int] = {}  # hot partition -> next offset to process
        self.hot_consumer: AIOKafkaConsumer | None = None
        self.outbox: hotpath.Outbox | None = None
        self._hot_lock = asyncio.Lock()
        self._generation = 0  # bumped at every revocation and assignment of hot partitions
        self._committing: asyncio.Task[None] | None = None
        # an error in a rebalance hook (aiokafka would only log it): the hot loop raises it
        self.fatal: BaseException | None = None
        self.state_box: hotpath.Outbox | None = None
        self._tally: Counter[tuple[str, Outcome, Reason | None]] = Counter()
        self.hot_assigned = asyncio.Event()
        self.ready = asyncio.Event()

        faust_patches.apply(bootstrap, self.security)
        app_id = f"{settings.topic_prefix}{settings.app_id}"
        self.app = faust.App(
            app_id,
            broker=f"kafka://{bootstrap}",
            store="memory://",
            processing_guarantee="at_least_once",
            broker_session_timeout=settings.broker_session_timeout_s,
            broker_heartbeat_interval=settings.broker_heartbeat_s,
            topic_partitions=PARTITIONS,
            topic_replication_factor=1,
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",
            key_serializer="json",
            value_serializer="json",
            web_enabled=False,
            web_tables_enabled=False,
            web_router_enabled=False,
            broker_credentials=_faust_credentials(settings),
        )
        app = self.app

        def raw(name: str, internal: bool = False) -> faust.TopicT:
            return app.topic(
                name,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=PARTITIONS if internal else None,
                internal=internal,
            )

        n = self.names
        self.routed_name = f"{app_id}-routed"
        self.state_name = f"{app_id}-state-changelog"  # the name faust gave it as a table
        self.hot_group = f"{app_id}-positions"
        self.t_bans = raw(n.contact_bans)
        self.t_patrol = raw(n.patrol_positions)
        self.t_incidents = raw(n.incidents)
        self.t_acks = raw(n.alert_acks)
        self.t_alerts = raw(n.alerts)
        self.t_routed = raw(self.routed_name, internal=True)
        self.out = {
            ALERTS: raw(n.alerts),
            TASKS: raw(n.patrol_tasks),
            DEAD_LETTERS: raw(n.dead_letters),
        }
        self.index = app.Table("alert-index", default=None, help="alert id -> routing key")
        worker = self
        orig_rebalance = self.index.on_rebalance

        async def on_rebalance(assigned: Any, revoked: Any, new: Any, gen: int = 0) -> None:
            worker.indexed.clear()
            await orig_rebalance(assigned, revoked, new, gen)

        self.index.on_rebalance = on_rebalance  # type: ignore[method-assign,assignment]

        self.bans_feed = GlobalFeed(bootstrap, n.contact_bans, self._feed_ban, self.security)
        self.patrol_feed = GlobalFeed(
            bootstrap, n.patrol_positions, self._feed_patrol, self.security
        )

        app.agent(self.t_incidents, name="incidents")(self._incidents)
        app.agent(self.t_acks, name="acks")(self._acks)
        app.agent(self.t_alerts, name="index")(self._index)
        app.agent(self.t_bans, name="check-bans")(self._check(BANS))
        app.agent(self.t_patrol, name="check-patrol")(self._check(PATROL_POSITIONS))

    # ------------------------------------------------------------- feeds
    def _feed_ban(self, key: str | None, value: bytes | None, partition: int, offset: int) -> None:
        msg = Incoming(BANS, key, value, partition, offset)
        # rejected records: dead-lettered by check-bans. A lifted, revoked or shortened ban
        # resolves the open alerts of a state held here (only this worker holds it: the
        # engine is partial), written at the next commit; a state adopted later resolves
        # them on the next tick
        result = self.engine.handle(msg, _now())
        if result.outcome is Outcome.accepted:  # a rejected one's dead letter is not ours
            for output in result.outputs:
                self._send(output, hot=True)

    def _feed_patrol(
        self, key: str | None, value: bytes | None, partition: int, offset: int
    ) -> None:
        self.engine.handle(Incoming(PATROL_POSITIONS, key, value, partition, offset), _now())

    # ------------------------------------------------------------ agents
    def _check(self, topic: str) -> Callable[[Any], Any]:
        """Validate a globally fed topic once (in its partition owner) and dead-letter."""

        async def check(stream: Any) -> None:
            async for event in stream.events():
                m = event.message
                key = _key(m.key)
                d = decode(topic, key, m.value, _now(), self.policy)
                if isinstance(d, Rejected):
                    msg = Incoming(topic, key, m.value, m.partition, m.offset)
                    self._send(dead_letter(msg, d, _now(), self.policy.max_ban_record_bytes))
                    self._count(topic, Outcome.rejected, d.reason)
                else:
                    self._count(topic, Outcome.accepted, None)

        return check

    # ---------------------------------------------------------- hot path
    async def _hot(self, stop: asyncio.Event) -> None:
        """Read `positions` and `routed` in batches until `stop`; commit every COMMIT_S."""
        await self.bans_feed.ready.wait()
        await self.patrol_feed.ready.wait()
        s = self.settings
        consumer = hotpath.group_consumer(
            self.bootstrap,
            self.hot_group,
            self.security,
            s.broker_session_timeout_s,
            s.broker_heartbeat_s,
        )
        producer = hotpath.producer(self.bootstrap, f"{self.hot_group}-producer", self.security)
        await producer.start()
        try:
            outbox = hotpath.Outbox(producer)
            n = self.names
            await outbox.prepare(
                [n.alerts, n.patrol_tasks, n.dead_letters, self.routed_name, self.state_name]
            )
            self.outbox = outbox
            self.state_box = hotpath.Outbox(producer)
            await self.state_box.prepare([self.state_name])
            consumer.subscribe([n.positions, self.routed_name], listener=_Rebalance(self))
            await consumer.start()
            self.hot_consumer = consumer
            try:
                await self._hot_loop(consumer, outbox, stop)
            finally:
                self.hot_consumer = None
                await consumer.stop()
        finally:
            self.outbox = self.state_box = None
            await producer.stop()

    async def _hot_loop(
        self, consumer: AIOKafkaConsumer, outbox: hotpath.Outbox, stop: asyncio.Event
    ) -> None:
        loop = asyncio.get_running_loop()
        next_commit = loop.time() + hotpath.COMMIT_S
        next_tick = loop.time() + TICK_S
        while not stop.is_set():
            generation = self._generation
            batches = await consumer.getmany(
                timeout_ms=hotpath.FETCH_WAIT_MS * 5, max_records=hotpath.BATCH_MAX
            )
            received = time.monotonic()
            async with self._hot_lock:
                if self.fatal is not None:  # never decide on state a failed hook left behind
                    raise self.fatal
                if batches and generation != self._generation:
                    # fetched across a rebalance: not decided against the state adopted since.
                    # A partition still ours is read again from here; the new owner of one
                    # that is not reads it from the last commit
                    assigned = consumer.assignment()
                    for tp, rs in batches.items():
                        if tp in assigned:
                            consumer.seek(tp, rs[0].offset)
                elif batches:
                    await self._wait_for_bans()
                    records = [r for rs in batches.values() for r in rs]
                    self._process_records(records, received)
                    for tp, rs in batches.items():
                        self.done[tp] = rs[-1].offset + 1
                now = loop.time()
                if now >= next_tick:
                    next_tick = now + TICK_S
                    if self.hot_assigned.is_set():
                        for output in self.engine.tick(_now()):
                            self._send(output, hot=True)
                await outbox.ship()
                committing = self._committing
                if committing is not None and committing.done():
                    self._committing = None
                    committing.result()  # a failed send or commit stops the worker
                if now >= next_commit and self._committing is None:
                    next_commit = now + hotpath.COMMIT_S
                    # the broker's acknowledgements and the offset commit take 10 to 200 ms
                    # on Tansu: the loop goes on deciding meanwhile
                    finish = await self._start_commit(consumer)
                    self._committing = asyncio.create_task(finish)
        async with self._hot_lock:
            if self.fatal is None:
                await self._commit_now(consumer)

    async def _start_commit(self, consumer: AIOKafkaConsumer) -> Coroutine[Any, Any, None]:
        """Commit what was decided up to now. Here (under the hot path's lock): the outputs
        sent so far are shipped and the state and offset markers of this moment are encoded
        into the state outbox, unsent. The coroutine returned waits until the broker has
        acknowledged those outputs, only then writes the state and markers (a marker tells the
        next owner to skip records: it must never be durable before their outputs are), waits
        for their acknowledgement, and commits the consumer's offsets."""
        outbox, state_box = self.outbox, self.state_box
        assert outbox is not None and state_box is not None
        self._persist()
        await outbox.ship()
        sent = outbox.take_sent()
        assigned = consumer.assignment()
        offsets = {tp: off for tp, off in self.done.items() if tp in assigned}
        return self._finish_commit(consumer, state_box, sent, offsets, self._generation)

    async def _finish_commit(
        self,
        consumer: AIOKafkaConsumer,
        state_box: hotpath.Outbox,
        sent: list[asyncio.Future[Any]],
        offsets: dict[TopicPartition, int],
        generation: int,
    ) -> None:
        if sent:
            await asyncio.gather(*sent)
        await state_box.flush()
        if not offsets or generation != self._generation:
            return  # a rebalance came first: its own commit covers these
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # the group moved on (the partitions are someone else's now): their new owner
            # replays from the last commit, and the markers written above skip what we applied
            log.warning("offsets not committed: %s", type(exc).__name__)

    async def _commit_now(self, consumer: AIOKafkaConsumer) -> None:
        """Commit at once, after the commit in flight (before a rebalance, at shutdown).
        Called under the hot path's lock."""
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing
        if self.outbox is not None:
            await (await self._start_commit(consumer))

    async def on_revoked(self) -> None:
        async with self._hot_lock:
            self._generation += 1
            try:
                if self.hot_consumer is not None and self.fatal is None:
                    await self._commit_now(self.hot_consumer)
            finally:
                self.engine.reset_routed()  # nothing is ours until an assignment says so
                self.applied.clear()
                self.done.clear()

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._hot_lock:
            self._generation += 1
            by_topic: dict[str, set[int]] = {}
            for tp in assigned:
                by_topic.setdefault(tp.topic, set()).add(tp.partition)
            parts = by_topic.get(self.names.positions, set())
            if by_topic.get(self.routed_name, set()) != parts:  # the range assignor's promise
                log.error("positions and routed assigned unlike: %s", sorted(by_topic.items()))
            parts |= by_topic.get(self.routed_name, set())
            data = await hotpath.read_state(self.bootstrap, self.state_name, parts, self.security)
            self._adopt(parts, data)
            del data
            # The registry, the zone index and the adopted states are long-lived: hundreds of
            # thousands of objects that every full collection would walk again (~0.25 s per
            # 10,000 bans, a pause in the middle of the stream). Collect once now and move
            # them out of the collector's sight; what they leave behind later is freed by
            # reference counting, and the next assignment collects it.
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self.hot_assigned.set()

    def _process_records(self, records: list[Any], received: float) -> None:
        try:
            self._process_batch(records, received)
        except Exception as exc:  # the batch failed as a whole: retry one by one
            log.error("batch failed (%s); processing records one by one", type(exc).__name__)
            for r in records:
                try:
                    self._process_batch([r], received)
                except Exception as exc1:
                    log.error("record failed: %s", type(exc1).__name__)
                    self._internal_error(r, hot=True)

    def _process_batch(self, records: list[Any], received: float) -> None:
        now = _now()
        self._tally.clear()  # (what a failed attempt counted: its records are decided again)
        batch: list[Incoming] = []
        marks: dict[str, int] = {}
        for m in records:
            src = "r" if m.topic == self.routed_name else "f"
            mark = f"{src}:{m.partition}"
            if m.offset <= self.applied.get(mark, -1):
                continue  # applied before a crash; its changes are in the changelog already
            marks[mark] = max(marks.get(mark, -1), m.offset)
            key = _key(m.key)
            if src == "r":
                env = orjson.loads(m.value)
                matched = env.get("m")
                batch.append(
                    Incoming(
                        env["t"],
                        env["k"],
                        env["v"].encode("utf-8"),
                        env["p"],
                        env["o"],
                        scope=key,
                        matched=None if matched is None else tuple((b, h) for b, h in matched),
                    )
                )
            else:
                batch.extend(self._route_fix(key, m.value, m.partition, m.offset, now))
        results = self.engine.handle_batch(batch, now) if batch else []
        tally = self._tally
        for msg, res in zip(batch, results, strict=True):
            tally[(msg.topic, res.outcome, res.reason)] += 1
            for output in res.outputs:
                self._send(output, hot=True)
        self.applied.update(marks)
        self._flush_tally()
        if self.on_processed is not None:
            took = time.monotonic() - received  # from the fetch to the outputs queued
            routed = sum(1 for m in records if m.topic == self.routed_name)
            if routed:
                self.on_processed("routed", took, routed)
            if len(records) > routed:
                self.on_processed(POSITIONS, took, len(records) - routed)

    def _route_fix(
        self, key: str | None, raw: bytes | None, partition: int, offset: int, now: datetime
    ) -> list[Incoming]:
        """Decide a restrained person's fix here; re-key a protected person's fix to each of
        the restrained persons of their bans. Invalid fixes become dead letters here."""
        d = decode(POSITIONS, key, raw, now, self.policy)
        if isinstance(d, Rejected):
            msg = Incoming(POSITIONS, key, raw, partition, offset)
            self._send(dead_letter(msg, d, now, self.policy.max_ban_record_bytes), hot=True)
            self._tally[(POSITIONS, Outcome.rejected, d.reason)] += 1
            return []
        assert isinstance(d, LocationFix)
        reg = self.engine.registry
        person = d.person_id
        local: list[Incoming] = []
        targets: set[str] = set()
        if reg.restraining_ids(person):
            if partition_for(person) == partition:
                local.append(
                    Incoming(POSITIONS, key, raw, partition, offset, scope=person, decoded=d)
                )
            else:  # produced with another partitioner: send it where the person's state is
                targets.add(person)
        for ban_id in reg.protecting_ids(person):
            held = reg.get(ban_id)
            if held is not None:
                targets.add(held.record.restrained_person)
        if targets:
            msg = Incoming(POSITIONS, key, raw, partition, offset)
            for target in sorted(targets):
                self._forward(target, msg, hot=True)
        if not local:
            self._tally[(POSITIONS, Outcome.accepted, None)] += 1
        return local

    def _forward(
        self,
        target: str,
        msg: Incoming,
        matched: Iterable[Any] | None = None,
        hot: bool = False,
    ) -> None:
        """Re-key `msg` to `target` through `routed` (from the hot path or a faust agent)."""
        env: dict[str, Any] = {
            "t": msg.topic,
            "k": msg.key,
            "v": (msg.value or b"").decode("utf-8"),
            "p": msg.partition,
            "o": msg.offset,
        }
        if matched is not None:
            env["m"] = [list(x) for x in matched]
        key, value, p = target.encode("utf-8"), orjson.dumps(env), partition_for(target)
        if hot and self.outbox is not None:
            self.outbox.add(self.routed_name, key, value, p)
        else:
            self.t_routed.send_soon(key=key, value=value, partition=p)

    async def _incidents(self, stream: Any) -> None:
        await self.bans_feed.ready.wait()
        async for event in stream.events():
            m = event.message
            key = _key(m.key)
            msg = Incoming(INCIDENTS, key, m.value, m.partition, m.offset)
            try:
                await self._wait_for_bans()
                now = _now()
                d = decode(INCIDENTS, key, m.value, now, self.policy)
                if isinstance(d, Rejected):
                    self._send(dead_letter(msg, d, now, self.policy.max_ban_record_bytes))
                    self._count(INCIDENTS, Outcome.rejected, d.reason)
                    continue
                assert isinstance(d, Incident)
                # every restrained person concerned gets the whole match list: each
                # applies it to its own bans, and the list's first ban alone sends the
                # incident's respond and protect tasks (one response per incident)
                matched = self.engine.match_incident(d)
                persons: set[str] = set()
                for ban_id, _how in matched:
                    held = self.engine.registry.get(ban_id)
                    if held is not None:
                        persons.add(held.record.restrained_person)
                if not persons:
                    self._forward(incident_scope(d.incident_id), msg, [])
                for person in sorted(persons):
                    self._forward(person, msg, matched)
            except Exception as exc:
                log.error("incident not routed: %s", type(exc).__name__)
                self._internal_error(event.message)

    async def _acks(self, stream: Any) -> None:
        """Route each acknowledgement to where its alert's state lives. An alert the index does
        not know yet may have been published a moment ago: unknown ids of a batch wait together
        while the index is behind on `alerts`, at most ACK_WAIT_S; once the index has read all
        of `alerts` an unknown id is a dead letter at once, so a flood of acks for unknown
        alerts cannot hold back real ones."""
        async for events in stream.take_events(500, within=0.01):
            unknown: list[tuple[Any, Incoming, AlertAction]] = []
            for event in events:
                m = event.message
                key = _key(m.key)
                msg = Incoming(ACKS, key, m.value, m.partition, m.offset)
                try:
                    d = decode(ACKS, key, m.value, _now(), self.policy)
                    if isinstance(d, Rejected):
                        self._send(dead_letter(msg, d, _now(), 4096))
                        self._count(ACKS, Outcome.rejected, d.reason)
                        continue
                    assert isinstance(d, AlertAction)
                    target = self.index.get(d.alert_id)
                    if target is None:
                        unknown.append((event, msg, d))
                    else:
                        self._forward(str(target), msg)
                except Exception as exc:
                    log.error("acknowledgement not routed: %s", type(exc).__name__)
                    self._internal_error(event.message)
            if unknown:
                await self._resolve_unknown_acks(unknown)

    async def _resolve_unknown_acks(self, unknown: list[tuple[Any, Incoming, AlertAction]]) -> None:
        deadline = time.monotonic() + ACK_WAIT_S
        await asyncio.sleep(ACK_GRACE_S)  # alerts published just before: one fetch away
        while True:
            still = []
            for event, msg, d in unknown:
                target = self.index.get(d.alert_id)
                if target is None:
                    still.append((event, msg, d))
                else:
                    self._forward(str(target), msg)
            unknown = still
            if not unknown or self._index_caught_up() or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        for _event, msg, d in unknown:
            rej = Rejected(Reason.unknown_alert, f"alert_id: no alert {d.alert_id!r}")
            self._send(dead_letter(msg, rej, _now(), 4096))
            self._count(ACKS, Outcome.rejected, rej.reason)

    def _index_caught_up(self) -> bool:
        """The index agent has processed every record `alerts` held at the last fetch, on every
        partition of it this worker owns."""
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic != self.names.alerts:
                continue
            hw = consumer.highwater(tp)
            if hw is None or self.indexed.get(tp.partition, -1) + 1 < hw:
                return False
        return True

    async def _index(self, stream: Any) -> None:
        """alert id → where its state lives, for routing acknowledgements (co-partitioned:
        `alerts` and `alert-acks` are both keyed by alert id)."""
        async for event in stream.events():
            m = event.message
            try:
                key = _key(m.key)
                if key is not None and self.index.get(key) is None:
                    target = _route_key(json.loads(m.value))
                    if target is not None:
                        self.index[key] = target
            except Exception as exc:  # not ours to dead-letter: `alerts` is our own output
                log.warning("alert record not indexed: %s", type(exc).__name__)
            self.indexed[m.partition] = m.offset

    async def _wait_for_bans(self) -> None:
        """A ban and a fix published together race through different topics; give the ban
        feed a moment to read what the broker already holds."""
        waited = 0.0
        while self.bans_feed.behind() and waited < BAN_FEED_WAIT_S:
            await asyncio.sleep(0.01)
            waited += 0.01

    # ----------------------------------------------------------- outputs
    def _send(self, output: Output, hot: bool = False) -> None:
        """Publish an output: through the hot path's outbox (acknowledged before the next
        commit) or, from a faust agent, through faust's producer."""
        topic, key, value = output
        raw_key = None if key is None else key.encode("utf-8")
        if hot and self.outbox is not None:
            self.outbox.add(self.out[topic].get_topic_name(), raw_key, encode_json(value))
        else:
            self.out[topic].send_soon(key=raw_key, value=encode_json(value))
        if self.on_output is not None:
            self.on_output(output)

    def _count(self, topic: str, outcome: Outcome, reason: Reason | None) -> None:
        if self.on_event is not None:
            self.on_event(topic, outcome, reason, 1)

    def _flush_tally(self) -> None:
        """Hand the hot path's per-batch counts to `on_event`, one call per kind."""
        if self.on_event is not None:
            for (topic, outcome, reason), n in self._tally.items():
                self.on_event(topic, outcome, reason, n)
        self._tally.clear()

    def _internal_error(self, m: Any, hot: bool = False) -> None:
        """Dead-letter a record (faust's message or aiokafka's record) that made code fail."""
        src = "routed" if m.topic == self.routed_name else m.topic
        msg = Incoming(src, _key(m.key), m.value, m.partition, m.offset)
        rej = Rejected(Reason.internal, "record could not be processed (see worker log)")
        self._send(dead_letter(msg, rej, _now(), self.policy.max_ban_record_bytes), hot=hot)

    # ------------------------------------------------------------- state
    def _persist(self) -> None:
        """Write what the engine touched, and the offsets applied, to the state changelog, each
        key to its partition (at commit time: a ban touched by many fixes is written once)."""
        e = self.engine
        for ban_id in sorted(e.touched):
            st = e.states.get(ban_id)
            held = e.registry.get(ban_id)
            if st is None:
                continue
            person = held.record.restrained_person if held is not None else None
            if person is None:
                person = next(
                    (a.restrained_person for a in st.alerts.values() if a.restrained_person),
                    None,
                )
            if person is None:
                continue
            p = partition_for(person)
            self._write(f"ban:{ban_id}", p, dump_ban_state(st))
            knock = dump_knock(e.knock, person)
            if self._knock_written.get(person) != knock:  # changes only with approach alerts
                self._knock_written[person] = knock
                self._write(f"knock:{person}", p, knock)
        for aid in sorted(e.touched_unmatched):
            a = e.unmatched.get(aid)
            if a is not None and a.incident_id is not None:
                p = partition_for(incident_scope(a.incident_id))
                self._write(f"unmatched:{aid}", p, dump_alert(a))
        e.touched.clear()
        e.touched_unmatched.clear()
        for mark, offset in self.applied.items():
            if self._marks_written.get(mark) != offset:
                self._marks_written[mark] = offset
                self._write(f"offset:{mark}", int(mark.split(":")[1]), offset)

    def _write(self, key: str, partition: int, data: Any) -> None:
        """Encode a state record into the state outbox (sent by the commit, after the outputs
        it covers are acknowledged)."""
        assert self.state_box is not None, "state is written by the hot path only"
        # orjson: the state is our own JSON (no NaN can reach it: inputs with NaN are
        # rejected), and it is most of what the worker writes; ~7x faster than json.dumps
        value = orjson.dumps({"p": partition, "d": data})
        self.state_box.add(self.state_name, orjson.dumps(key), value, partition)

    def _adopt(self, partitions: set[int], data: dict[str, Any]) -> None:
        """After an assignment: take over the state of the partitions this worker now owns,
        as read back from the changelog."""
        e = self.engine
        e.reset_routed()
        self.applied.clear()
        self._knock_written.clear()
        self._marks_written.clear()
        bans = 0
        for key, value in data.items():
            if not isinstance(value, dict) or value.get("p") not in partitions:
                continue
            kind, _, ident = str(key).partition(":")
            d = value["d"]
            if kind == "ban":
                e.adopt(load_ban_state(d))
                bans += 1
            elif kind == "knock":
                load_knock(e.knock, ident, d)
                self._knock_written[ident] = d
            elif kind == "unmatched":
                e.adopt_unmatched(load_alert(d))
            elif kind == "offset":
                self.applied[ident] = self._marks_written[ident] = int(d)
        e.touched.clear()
        e.touched_unmatched.clear()
        log.info("partitions %s adopted: %d ban states", sorted(partitions), bans)
        if self.on_adopted is not None:
            self.on_adopted()

    # --------------------------------------------------------- lifecycle
    async def run(self, stop: asyncio.Event, ready: Callable[[], None] | None = None) -> None:
        """Run until `stop` is set: feeds, then the faust worker; `ready` once consuming."""
        await asyncio.to_thread(
            ensure_topics, self.bootstrap, self.settings.topic_prefix, **self.security
        )
        await asyncio.to_thread(
            _ensure_internal, self.bootstrap, self.routed_name, self.state_name, self.security
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
            await _first_of(tasks, [asyncio.create_task(self.hot_assigned.wait())])
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


def _ensure_internal(bootstrap: str, routed: str, state: str, security: dict[str, Any]) -> None:
    """Create the worker's internal topics like contract topics (a broker would otherwise
    auto-create them with its defaults, on Kafka one partition, or with auto-creation off not
    at all). `routed` holds copies of fixes, incidents and acks: it ages out like `positions`.
    The state changelog keeps the latest value per key (compacted), like faust's tables."""
    configs = dict(next(spec for spec in SPECS if spec.name == POSITIONS).configs)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="banwatch-topics", **security)
    try:
        response = admin.create_topics(
            [
                NewTopic(routed, PARTITIONS, -1, topic_configs=configs),
                NewTopic(state, PARTITIONS, -1, topic_configs={"cleanup.policy": "compact"}),
            ],
            raise_errors=False,
        )
    finally:
        admin.close()
    for result in response["topics"]:
        error = for_code(result["error_code"])
        if result["error_code"] and error is not TopicAlreadyExistsError:
            raise error(f"cannot create topic {result['name']}: {result['error_message']}")


def _key(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def _faust_credentials(settings: Settings) -> Any:
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    import ssl

    ctx = None
    if proto.endswith("SSL"):
        ctx = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile:
            ctx.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    if proto.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=ctx,
        )
    return faust.SSLCredentials(ctx)


async def run_worker(
    settings: Settings,
    bootstrap: str,
    stop: asyncio.Event,
    ready: Callable[[], None] | None = None,
    **kwargs: Any,
) -> Worker:
    worker = Worker(settings, bootstrap, **kwargs)
    await worker.run(stop, ready)
    return worker


_LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "error": "ERROR",
    "crit": "CRITICAL",
}


def setup_logging(settings: Settings) -> None:
    """Plain lines on stderr. Our own messages never carry coordinates, free text or tokens."""
    logging.basicConfig(
        level=_LEVELS[settings.log_level],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The Kafka clients and faust print whole records at DEBUG (tests/streams/test_logs.py):
    # never below INFO for them, whatever BANWATCH_LOG_LEVEL says.
    for client in ("kafka", "aiokafka", "faust"):
        logging.getLogger(client).setLevel(max(logging.INFO, logging.getLogger().level))


def main(settings: Settings) -> int:
    """`banwatch worker`: one worker against the configured broker, until SIGINT/SIGTERM."""
    if settings.kafka_bootstrap is None:
        raise SystemExit(
            "banwatch: BANWATCH_KAFKA_BOOTSTRAP is not set (`banwatch up` runs an embedded broker)"
        )
    bootstrap = settings.kafka_bootstrap
    setup_logging(settings)

    async def go() -> None:
        from streams.observe import serve_worker_metrics

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        worker = Worker(settings, bootstrap)
        server = serve_worker_metrics(settings, worker)

        def on_ready() -> None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            print(f"worker: ready on {bootstrap}; metrics: {server.url}", flush=True)

        try:
            await worker.run(stop, on_ready)
        finally:
            server.close()

    asyncio.run(go())
    return 0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """The hot path's rebalance hooks: commit before partitions go, adopt when they come."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.worker.on_revoked()
        except Exception as exc:  # aiokafka would log it and go on: stop the worker instead
            log.error("commit before a rebalance failed: %s", type(exc).__name__)
            self.worker.fatal = self.worker.fatal or exc

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self.worker.on_assigned(set(assigned))
        except Exception as exc:  # deciding on a half-adopted state would overwrite it
            log.error("state recovery failed: %s", type(exc).__name__)
            self.worker.fatal = self.worker.fatal or exc
