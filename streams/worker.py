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

State (per-ban `BanState`, knock counts, unmatched-incident alerts) lives in one changelogged
faust table; the engine keeps the live objects and the worker writes the ones a batch touched,
once per batch, with the partition they belong to. A per-partition marker of the last applied
offset makes re-delivery after a crash (at-least-once) a no-op instead of a double update.
After every rebalance the engine drops all ban state and adopts what the table recovered for
the partitions it now owns, timers included.

Agents catch per record: a bad record becomes a dead letter, a failing detector an `internal`
dead letter, and the stream goes on (faust acks a record whose agent raised). Broker failures
are not swallowed: they stop the worker, which resumes from committed offsets on restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import faust
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
from streams import faust_patches
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
BATCH_MAX = 1000
BATCH_WITHIN_S = 0.005
TICK_S = 1.0

_partitioner = DefaultPartitioner()
_ALL = list(range(PARTITIONS))


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
        self.on_event: Callable[[str, Outcome, Reason | None], None] | None = None
        self.on_processed: Callable[[str, float], None] | None = None  # topic, seconds
        self.on_adopted: Callable[[], None] | None = None
        self.applied: dict[str, int] = {}  # "src:partition" -> last applied offset
        self.indexed: dict[int, int] = {}  # alerts partition -> last offset the index read
        self._knock_written: dict[str, list[str] | None] = {}  # person -> last knock written
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
        self.t_bans = raw(n.contact_bans)
        self.t_patrol = raw(n.patrol_positions)
        self.t_incidents = raw(n.incidents)
        self.t_acks = raw(n.alert_acks)
        self.t_alerts = raw(n.alerts)
        self.t_routed = raw(self.routed_name, internal=True)
        self.t_main = app.topic(
            n.positions,
            self.routed_name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.out = {
            ALERTS: raw(n.alerts),
            TASKS: raw(n.patrol_tasks),
            DEAD_LETTERS: raw(n.dead_letters),
        }
        self.state = app.Table("state", default=None, help="ban states, knock counts, markers")
        self.index = app.Table("alert-index", default=None, help="alert id -> routing key")
        worker = self

        orig_rebalance = self.state.on_rebalance
        orig_recovered = self.state.on_recovery_completed

        async def on_rebalance(assigned: Any, revoked: Any, new: Any, gen: int = 0) -> None:
            worker.engine.reset_routed()  # nothing is ours until recovery says so
            worker.applied.clear()
            worker.indexed.clear()
            await orig_rebalance(assigned, revoked, new, gen)

        async def on_recovery_completed(active: Any, standby: Any) -> None:
            await orig_recovered(active, standby)
            worker._adopt({tp.partition for tp in active})

        self.state.on_rebalance = on_rebalance  # type: ignore[method-assign,assignment]
        self.state.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign,assignment]

        self.bans_feed = GlobalFeed(bootstrap, n.contact_bans, self._feed_ban, self.security)
        self.patrol_feed = GlobalFeed(
            bootstrap, n.patrol_positions, self._feed_patrol, self.security
        )

        app.agent(self.t_main, name="process")(self._process)
        app.agent(self.t_incidents, name="incidents")(self._incidents)
        app.agent(self.t_acks, name="acks")(self._acks)
        app.agent(self.t_alerts, name="index")(self._index)
        app.agent(self.t_bans, name="check-bans")(self._check(BANS))
        app.agent(self.t_patrol, name="check-patrol")(self._check(PATROL_POSITIONS))
        app.timer(TICK_S)(self._tick)

    # ------------------------------------------------------------- feeds
    def _feed_ban(self, key: str | None, value: bytes | None, partition: int, offset: int) -> None:
        msg = Incoming(BANS, key, value, partition, offset)
        self.engine.handle(msg, _now())  # rejected records: dead-lettered by check-bans
        self._persist()  # a lifted ban ends monitoring timers of a state held here

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

    async def _process(self, stream: Any) -> None:
        await self.bans_feed.ready.wait()
        await self.patrol_feed.ready.wait()
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            await self._wait_for_bans()
            try:
                self._process_batch(events)
            except Exception as exc:  # the batch failed as a whole: retry one by one
                log.error("batch failed (%s); processing records one by one", type(exc).__name__)
                for ev in events:
                    try:
                        self._process_batch([ev])
                    except Exception as exc1:
                        log.error("record failed: %s", type(exc1).__name__)
                        self._internal_error(ev)

    def _process_batch(self, events: list[Any]) -> None:
        now = _now()
        batch: list[Incoming] = []
        marks: dict[str, int] = {}
        for ev in events:
            m = ev.message
            src = "r" if m.topic == self.routed_name else "f"
            mark = f"{src}:{m.partition}"
            if m.offset <= self.applied.get(mark, -1):
                continue  # applied before a crash; its changes are in the table already
            marks[mark] = max(marks.get(mark, -1), m.offset)
            key = _key(m.key)
            if src == "r":
                env = json.loads(m.value)
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
        for msg, res in zip(batch, results, strict=True):
            self._count(msg.topic, res.outcome, res.reason)
            for output in res.outputs:
                self._send(output)
        self.applied.update(marks)
        self._persist(marks)
        if self.on_processed is not None:
            done = time.monotonic()
            for ev in events:  # from faust's receipt of the record to its outputs queued
                m = ev.message
                t_in = getattr(m, "time_in", None)
                src = "routed" if m.topic == self.routed_name else POSITIONS
                self.on_processed(src, done - t_in if t_in is not None else 0.0)

    def _route_fix(
        self, key: str | None, raw: bytes | None, partition: int, offset: int, now: datetime
    ) -> list[Incoming]:
        """Decide a restrained person's fix here; re-key a protected person's fix to each of
        the restrained persons of their bans. Invalid fixes become dead letters here."""
        d = decode(POSITIONS, key, raw, now, self.policy)
        msg = Incoming(POSITIONS, key, raw, partition, offset)
        if isinstance(d, Rejected):
            self._send(dead_letter(msg, d, now, self.policy.max_ban_record_bytes))
            self._count(POSITIONS, Outcome.rejected, d.reason)
            return []
        assert isinstance(d, LocationFix)
        reg = self.engine.registry
        person = d.person_id
        local: list[Incoming] = []
        targets: set[str] = set()
        if reg.restraining(person):
            if partition_for(person) == partition:
                local.append(Incoming(POSITIONS, key, raw, partition, offset, scope=person))
            else:  # produced with another partitioner: send it where the person's state is
                targets.add(person)
        for ban_id in reg.protecting(person):
            held = reg.get(ban_id)
            if held is not None:
                targets.add(held.record.restrained_person)
        for target in sorted(targets):
            self._forward(target, msg)
        if not local:
            self._count(POSITIONS, Outcome.accepted, None)
        return local

    def _forward(self, target: str, msg: Incoming, matched: Iterable[Any] | None = None) -> None:
        env: dict[str, Any] = {
            "t": msg.topic,
            "k": msg.key,
            "v": (msg.value or b"").decode("utf-8"),
            "p": msg.partition,
            "o": msg.offset,
        }
        if matched is not None:
            env["m"] = [list(x) for x in matched]
        self.t_routed.send_soon(
            key=target.encode("utf-8"), value=encode_json(env), partition=partition_for(target)
        )

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
                by_person: dict[str, list[tuple[str, str]]] = {}
                for ban_id, how in self.engine.match_incident(d):
                    held = self.engine.registry.get(ban_id)
                    if held is not None:
                        by_person.setdefault(held.record.restrained_person, []).append(
                            (ban_id, how)
                        )
                if not by_person:
                    self._forward(incident_scope(d.incident_id), msg, [])
                for person, matched in sorted(by_person.items()):
                    self._forward(person, msg, matched)
            except Exception as exc:
                log.error("incident not routed: %s", type(exc).__name__)
                self._internal_error(event)

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
                    self._internal_error(event)
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

    async def _tick(self) -> None:
        if not self.ready.is_set():
            return
        for output in self.engine.tick(_now()):
            self._send(output)
        self._persist()

    async def _wait_for_bans(self) -> None:
        """A ban and a fix published together race through different topics; give the ban
        feed a moment to read what the broker already holds."""
        waited = 0.0
        while self.bans_feed.behind() and waited < BAN_FEED_WAIT_S:
            await asyncio.sleep(0.01)
            waited += 0.01

    # ----------------------------------------------------------- outputs
    def _send(self, output: Output) -> None:
        topic, key, value = output
        self.out[topic].send_soon(
            key=None if key is None else key.encode("utf-8"), value=encode_json(value)
        )
        if self.on_output is not None:
            self.on_output(output)

    def _count(self, topic: str, outcome: Outcome, reason: Reason | None) -> None:
        if self.on_event is not None:
            self.on_event(topic, outcome, reason)

    def _internal_error(self, event: Any) -> None:
        m = event.message
        src = "routed" if m.topic == self.routed_name else m.topic
        msg = Incoming(src, _key(m.key), m.value, m.partition, m.offset)
        rej = Rejected(Reason.internal, "record could not be processed (see worker log)")
        self._send(dead_letter(msg, rej, _now(), self.policy.max_ban_record_bytes))

    # ------------------------------------------------------------- state
    def _persist(self, marks: dict[str, int] | None = None) -> None:
        """Write what the engine touched to the state table, each key to its partition."""
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
        for mark, offset in (marks or {}).items():
            self._write(f"offset:{mark}", int(mark.split(":")[1]), offset)

    def _write(self, key: str, partition: int, data: Any) -> None:
        value = {"p": partition, "d": data}
        self.state.data[key] = value
        self.state.send_changelog(partition, key, value)

    def _adopt(self, partitions: set[int]) -> None:
        """After recovery: take over the state of the partitions this worker now owns."""
        e = self.engine
        e.reset_routed()
        self.applied.clear()
        self._knock_written.clear()
        bans = 0
        for key, value in list(self.state.data.items()):
            if not isinstance(value, dict) or value.get("p") not in partitions:
                continue
            kind, _, ident = str(key).partition(":")
            data = value["d"]
            if kind == "ban":
                e.adopt(load_ban_state(data))
                bans += 1
            elif kind == "knock":
                load_knock(e.knock, ident, data)
                self._knock_written[ident] = data
            elif kind == "unmatched":
                e.adopt_unmatched(load_alert(data))
            elif kind == "offset":
                self.applied[ident] = int(data)
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
        await asyncio.to_thread(_ensure_routed, self.bootstrap, self.routed_name, self.security)
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
        try:
            waiters = [
                asyncio.create_task(f.ready.wait()) for f in (self.bans_feed, self.patrol_feed)
            ]
            await _first_of(feeds, waiters)
            await fw.start()
            await _wait_assigned(self.app)
            self.ready.set()
            if ready is not None:
                ready()
            stop_task = asyncio.create_task(stop.wait())
            await asyncio.wait([stop_task, *feeds], return_when=asyncio.FIRST_COMPLETED)
            for f in feeds:
                if f.done() and f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
        finally:
            await fw.stop()
            for f in feeds:
                f.cancel()
            await asyncio.gather(*feeds, return_exceptions=True)


async def _first_of(feeds: list[asyncio.Task[None]], waiters: list[asyncio.Task[Any]]) -> None:
    """Wait for every feed to be ready; a feed that dies first raises its error."""
    pending = set(waiters)
    while pending:
        done, _ = await asyncio.wait([*pending, *feeds], return_when=asyncio.FIRST_COMPLETED)
        for f in feeds:
            if f.done():
                exc = f.exception()
                raise exc if exc is not None else RuntimeError("a feed stopped")
        pending -= done


async def _wait_assigned(app: faust.App, timeout_s: float = 60.0) -> None:
    """Wait until the consumer group has given this worker its partitions and recovery ran."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if app.consumer.assignment() and not app.rebalancing:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the worker was given no partitions in time")


def _ensure_routed(bootstrap: str, name: str, security: dict[str, Any]) -> None:
    """Create the internal `routed` topic like a contract topic: faust declares only the
    internal topics it consumes through their own channel, and `routed` is consumed through
    `positions`' one, so a broker would auto-create it with its defaults (on Kafka: one
    partition, kept 7 days in 7-day segments) or, with auto-creation off, not at all. It holds
    copies of fixes, incidents and acks: it ages out like `positions`."""
    configs = dict(next(spec for spec in SPECS if spec.name == POSITIONS).configs)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="banwatch-topics", **security)
    try:
        response = admin.create_topics(
            [NewTopic(name, PARTITIONS, -1, topic_configs=configs)], raise_errors=False
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
