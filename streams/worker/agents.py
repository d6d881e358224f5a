"""The faust side of the worker: the app, its topics, the alert index table and the agents.

Faust runs the low-volume topics (the hot ones are read by streams/worker/hotloop.py):
`incidents` and `alert-acks` are routed to the restrained person (or incident scope) whose
state they concern, `alerts` feeds the alert index (alert id -> where its state lives), and the
globally fed topics (`contact-bans`, `patrol-positions`) are validated once, in their
partition's owner, so a bad record becomes one dead letter, not one per worker.

`task-updates` go to the state that owns the task: through the task index (task id -> its
restrained person or its alert; every worker holds it whole, streams/worker/routing.py
`TaskIndex`) straight to the person, or, for a task known by its alert, first to the owner of
the alert's partition of the alert index (the internal topic `<app>-task-route`, keyed by alert
id and so co-partitioned with `alerts`), which resolves the alert like an acknowledgement's.

Every agent catches per record (faust acks a record whose agent raised): a bad record becomes
a dead letter, a failure of our own code an `internal` dead letter, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import faust

from alerts.engine import UNKNOWN_ALERT_DEAD_LETTER_BYTES, Engine, Incoming, Outcome
from alerts.routing import alert_route_key, incident_targets
from config.policy import Policy
from config.topics import PARTITIONS, TASK_UPDATES, TopicNames
from geofence.decoding import (
    ACKS,
    BANS,
    INCIDENTS,
    PATROL_POSITIONS,
    Reason,
    Rejected,
    without_note,
)
from geofence.records import AlertAction, Incident, TaskUpdate
from streams.worker.observer import Observer
from streams.worker.publish import Publisher, utc_now
from streams.worker.routing import TaskIndex, envelope, partition_for, record_key, unwrap

log = logging.getLogger("banwatch.worker")

#: How long an acknowledgement for an alert the index does not know yet is held back, waiting
#: for the alert itself to be indexed, before it goes to dead-letters as `unknown_alert`.
ACK_WAIT_S = 5.0
#: Every batch with unknown alert ids first waits this long: an alert published a moment
#: before its acknowledgement may not have been fetched yet (fetch wait 100 ms).
ACK_GRACE_S = 0.3
#: How much of an acknowledgement (or a task update) a dead letter keeps.
ACK_DEAD_LETTER_BYTES = UNKNOWN_ALERT_DEAD_LETTER_BYTES
#: How long a task update for a task the index does not know yet waits for the task's
#: revision to be read from `patrol-tasks` before it goes to dead-letters as `unknown_task`.
TASK_WAIT_S = ACK_WAIT_S

T = TypeVar("T")


class Agents:
    """The faust app of one worker and what runs in it."""

    def __init__(
        self,
        app: faust.App,
        names: TopicNames,
        routed_name: str,
        engine: Engine,
        policy: Policy,
        observer: Observer,
        wait_for_bans: Callable[[], Awaitable[None]],
        bans_ready: asyncio.Event,
        tasks: TaskIndex,
        tasks_behind: Callable[[], bool],
        task_route_name: str,
    ) -> None:
        self.app = app
        self.names = names
        self.engine = engine
        self.policy = policy
        self.observer = observer
        self.wait_for_bans = wait_for_bans
        self.bans_ready = bans_ready
        self.tasks = tasks  # task id -> where its state lives (fed by the worker's task feed)
        self.tasks_behind = tasks_behind  # the task feed has not read all of `patrol-tasks`
        self.indexed: dict[int, int] = {}  # alerts partition -> last offset the index read
        self._next_prune: dict[int, float] = {}  # alerts partition -> next look for the due

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

        n = names
        self.t_routed = raw(routed_name, internal=True)
        self.task_route_name = task_route_name
        self.t_task_route = raw(task_route_name, internal=True)
        self._topics: dict[str, Any] = {
            n.alerts: raw(n.alerts),
            n.patrol_tasks: raw(n.patrol_tasks),
            n.protected_notifications: raw(n.protected_notifications),
            n.dead_letters: raw(n.dead_letters),
            routed_name: self.t_routed,
            task_route_name: self.t_task_route,
        }
        self.publisher = Publisher(
            self._put, n.deployed(), routed_name, policy, observer, self._count
        )
        self.index = app.Table("alert-index", default=None, help="alert id -> routing key")
        _clear_on_rebalance(self.index, self.indexed)

        app.agent(raw(n.incidents), name="incidents")(self._incidents)
        app.agent(raw(n.alert_acks), name="acks")(self._acks)
        app.agent(raw(n.alerts), name="index")(self._index)
        app.agent(raw(n.task_updates), name="task-updates")(self._task_updates)
        app.agent(self.t_task_route, name="task-route")(self._task_route)
        app.agent(raw(n.contact_bans), name="check-bans")(self._check(BANS))
        app.agent(raw(n.patrol_positions), name="check-patrol")(self._check(PATROL_POSITIONS))

    def _put(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        self._topics[topic].send_soon(key=key, value=value, partition=partition)

    def _count(self, topic: str, outcome: Outcome, reason: Reason | None) -> None:
        self.observer.on_record(topic, outcome, reason, 1)

    def _check(self, topic: str) -> Callable[[Any], Any]:
        """Validate a globally fed topic once (in its partition owner) and dead-letter."""

        async def check(stream: Any) -> None:
            async for event in stream.events():
                m = event.message
                msg = Incoming(topic, record_key(m.key), m.value, m.partition, m.offset)
                d = self.publisher.decide_or_reject(
                    msg, utc_now(), self.policy.max_ban_record_bytes
                )
                if d is not None:
                    self._count(topic, Outcome.accepted, None)

        return check

    async def _incidents(self, stream: Any) -> None:
        await self.bans_ready.wait()
        async for event in stream.events():
            m = event.message
            msg = Incoming(INCIDENTS, record_key(m.key), m.value, m.partition, m.offset)
            try:
                await self.wait_for_bans()
                d = self.publisher.decide_or_reject(
                    msg, utc_now(), self.policy.max_ban_record_bytes
                )
                if d is None:
                    continue
                assert isinstance(d, Incident)
                matches = self.engine.match_incident(d)
                for target, matched in incident_targets(
                    self.engine.registry, matches, d.incident_id
                ):
                    self.publisher.forward(target, msg, matched)
            except Exception as exc:
                log.error("incident not routed: %s", type(exc).__name__)
                self.publisher.internal_error(event.message)

    async def _acks(self, stream: Any) -> None:
        """Route each acknowledgement to where its alert's state lives. An alert the index does
        not know yet may have been published a moment ago: unknown ids of a batch wait together
        while the index is behind on `alerts`, at most ACK_WAIT_S; once the index has read all
        of `alerts` an unknown id is a dead letter at once, so a flood of acks for unknown
        alerts cannot hold back real ones."""
        async for events in stream.take_events(500, within=0.01):
            unknown: list[tuple[Incoming, AlertAction]] = []
            for event in events:
                m = event.message
                msg = Incoming(ACKS, record_key(m.key), m.value, m.partition, m.offset)
                try:
                    d = self.publisher.decide_or_reject(msg, utc_now(), ACK_DEAD_LETTER_BYTES)
                    if d is None:
                        continue
                    assert isinstance(d, AlertAction)
                    target = index_target(self.index.get(d.alert_id))
                    if target is None:
                        unknown.append((msg, d))
                    else:
                        self.publisher.forward(str(target), msg)
                except Exception as exc:
                    log.error("acknowledgement not routed: %s", type(exc).__name__)
                    self.publisher.internal_error(event.message)
            if unknown:
                await self._resolve_unknown_acks(unknown)

    async def _resolve_unknown_acks(self, unknown: list[tuple[Incoming, AlertAction]]) -> None:
        def route(item: tuple[Incoming, AlertAction]) -> bool:
            target = index_target(self.index.get(item[1].alert_id))
            if target is not None:
                self.publisher.forward(str(target), item[0])
            return target is not None

        for msg, d in await wait_for_routes(unknown, route, self._index_caught_up, ACK_WAIT_S):
            rej = Rejected(Reason.unknown_alert, f"alert_id: no alert {d.alert_id!r}")
            self.publisher.reject(msg, rej, utc_now(), ACK_DEAD_LETTER_BYTES)

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
                key = record_key(m.key)
                if key is not None:
                    entry = index_entry(self.index.get(key), json.loads(m.value), time.time())
                    if entry is not None:
                        self.index[key] = entry
                now = time.time()
                if now >= self._next_prune.get(m.partition, 0.0):
                    # tombstones in the table's changelog, on this event's partition: only
                    # the keys of this partition
                    self._next_prune[m.partition] = now + INDEX_PRUNE_S
                    retention = self.policy.resolved_retention_s
                    for k in index_due(list(self.index.items()), m.partition, now, retention):
                        del self.index[k]
            except Exception as exc:  # not ours to dead-letter: `alerts` is our own output
                log.warning("alert record not indexed: %s", type(exc).__name__)
            self.indexed[m.partition] = m.offset

    async def _task_updates(self, stream: Any) -> None:
        """Route each task update to where its task's state lives (module docstring). A task
        the index does not know yet may have been published a moment ago: unknown ids of a
        batch wait together while the task feed is behind `patrol-tasks`, at most
        TASK_WAIT_S; once it has read all of it, an unknown task is a dead letter at once."""
        async for events in stream.take_events(500, within=0.01):
            unknown: list[tuple[Incoming, TaskUpdate]] = []
            for event in events:
                m = event.message
                msg = Incoming(TASK_UPDATES, record_key(m.key), m.value, m.partition, m.offset)
                try:
                    d = self.publisher.decide_or_reject(msg, utc_now(), ACK_DEAD_LETTER_BYTES)
                    if d is None:
                        continue
                    assert isinstance(d, TaskUpdate)
                    # the free-text note is stored from `task-updates` by the record store and
                    # never forwarded (contract v2): the internal copies go without it
                    bare = without_note(m.value)
                    if bare:
                        msg = replace(msg, value=bare)
                    if not self._route_task(msg, d):
                        unknown.append((msg, d))
                except Exception as exc:
                    log.error("task update not routed: %s", type(exc).__name__)
                    self.publisher.internal_error(event.message)
            if unknown:
                await self._resolve_unknown_tasks(unknown)

    def _route_task(self, msg: Incoming, d: TaskUpdate) -> bool:
        """Send `msg` on towards its task's state; False: the index does not know the task."""
        route = self.tasks.get(d.task_id)
        if route is None:
            return False
        if route.person is not None:
            self.publisher.forward(route.person, msg)
        elif route.alert_id is not None:  # to the alert index's owner of this alert
            self._put(
                self.task_route_name,
                route.alert_id.encode("utf-8"),
                envelope(msg),
                partition_for(route.alert_id),
            )
        else:
            return False
        return True

    async def _resolve_unknown_tasks(self, unknown: list[tuple[Incoming, TaskUpdate]]) -> None:
        def caught_up() -> bool:
            return not self.tasks_behind()

        def route(item: tuple[Incoming, TaskUpdate]) -> bool:
            return self._route_task(*item)

        for msg, d in await wait_for_routes(unknown, route, caught_up, TASK_WAIT_S):
            rej = Rejected(Reason.unknown_task, f"task_id: no task {d.task_id!r}")
            self.publisher.reject(msg, rej, utc_now(), ACK_DEAD_LETTER_BYTES)

    async def _task_route(self, stream: Any) -> None:
        """A task update known by its task's alert, here on the partition of the alert index
        that holds the alert: on to the alert's owner, like an acknowledgement."""
        async for events in stream.take_events(500, within=0.01):
            unknown: list[tuple[Incoming, str]] = []
            for event in events:
                m = event.message
                msg: Incoming | None = None
                try:
                    alert_id = record_key(m.key)
                    msg = unwrap(None, m.value)
                    target = None if alert_id is None else index_target(self.index.get(alert_id))
                    if target is not None:
                        self.publisher.forward(target, msg)
                    elif alert_id is not None:
                        unknown.append((msg, alert_id))
                except Exception as exc:
                    log.error("task update not routed: %s", type(exc).__name__)
                    if msg is None:
                        self.publisher.internal_error(event.message)
                    else:  # the dead letter names the original record, not the internal hop
                        rej = Rejected(Reason.internal, "record could not be processed")
                        self.publisher.reject(msg, rej, utc_now(), ACK_DEAD_LETTER_BYTES)
            if unknown:
                await self._resolve_task_alerts(unknown)

    async def _resolve_task_alerts(self, unknown: list[tuple[Incoming, str]]) -> None:
        def route(item: tuple[Incoming, str]) -> bool:
            target = index_target(self.index.get(item[1]))
            if target is not None:
                self.publisher.forward(str(target), item[0])
            return target is not None

        left = await wait_for_routes(unknown, route, self._index_caught_up, ACK_WAIT_S)
        for msg, alert_id in left:  # the task's alert is gone (pruned): so is the task
            rej = Rejected(Reason.unknown_task, f"task_id: the task's alert {alert_id!r} is gone")
            self.publisher.reject(msg, rej, utc_now(), ACK_DEAD_LETTER_BYTES)


async def wait_for_routes(
    unknown: list[T], route: Callable[[T], bool], caught_up: Callable[[], bool], wait_s: float
) -> list[T]:
    """Route what can be routed of `unknown` (records whose alert or task the index did not
    know), trying again as the index reads on, until everything went, the index has read
    all its topic held (`caught_up`: an id still unknown then is unknown) or `wait_s` passed;
    returns what is left (dead letters for the caller). The first try waits ACK_GRACE_S:
    what was published just before is one fetch away."""
    deadline = time.monotonic() + wait_s
    await asyncio.sleep(ACK_GRACE_S)
    while True:
        unknown = [item for item in unknown if not route(item)]
        if not unknown or caught_up() or time.monotonic() >= deadline:
            return unknown
        await asyncio.sleep(0.05)


#: How often the index agent looks, per partition, for resolved alerts past their retention.
INDEX_PRUNE_S = 60.0


def index_entry(existing: Any, alert: dict[str, Any], at_s: float) -> Any:
    """The alert index's value for an alert after its revision `alert` (written at `at_s`):
    its routing key, and once resolved `[routing key, resolved at]`; None: unchanged."""
    if existing is None:
        target = alert_route_key(alert)
        if target is None:
            return None
        return [target, at_s] if alert.get("state") == "resolved" else target
    if alert.get("state") == "resolved" and not isinstance(existing, list):
        return [existing, at_s]
    return None


def index_target(entry: Any) -> str | None:
    """Where an indexed alert's state lives (an entry as `index_entry` wrote it)."""
    if entry is None:
        return None
    return str(entry[0]) if isinstance(entry, list) else str(entry)


def index_due(items: Any, partition: int, now_s: float, retention_s: float) -> list[str]:
    """The alert ids of `partition` resolved at least `retention_s` ago: dropped from the
    index as the engine drops them from state (an acknowledgement of one is then an unknown
    alert either way), so the index's changelog does not keep every alert for ever."""
    return [
        k
        for k, v in items
        if isinstance(v, list) and v[1] + retention_s <= now_s and partition_for(k) == partition
    ]


def _clear_on_rebalance(table: Any, indexed: dict[int, int]) -> None:
    """What the index agent has read is forgotten at every rebalance of its table (faust
    recovers the table; `indexed` must not claim partitions read by another owner)."""
    orig_rebalance = table.on_rebalance

    async def on_rebalance(assigned: Any, revoked: Any, new: Any, gen: int = 0) -> None:
        indexed.clear()
        await orig_rebalance(assigned, revoked, new, gen)

    table.on_rebalance = on_rebalance
