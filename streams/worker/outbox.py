"""Kafka plumbing of the worker's hot path: `positions` and `routed` in batches, outside faust.

Faust hands every record to an agent through its conductor, stream iterator, event and ack
machinery, which alone costs more CPU per record than a 10,000 fixes/s worker may spend per
fix (measured: docs/bench.md). The two topics that carry almost all the traffic are therefore
read by a plain aiokafka group consumer in batches of up to `BATCH_MAX`, and everything the
batch produces (alerts, tasks, dead letters, re-keyed records, state) leaves through one
`Outbox` of record batches. Faust still runs the low-volume
agents (incidents, acknowledgements, the alert index, the checks of the global topics).

Delivery stays at-least-once, and a commit is the unit of durability: every `COMMIT_S` (and
before partitions are given up, and at shutdown) the worker writes the state its batches
touched and the offsets it applied to the state changelog, waits until the broker has
acknowledged every record sent so far (outputs and state), and only then commits the
consumer's offsets. A worker that dies in between is replayed from the last commit; the
offset markers in its state make the replay of records it had already applied a no-op.

`positions` and `routed` are co-partitioned (same keys, same partition count), and the
consumer uses the range assignor, which gives a member the same partition numbers of both
topics. The state of partition p lives in partition p of the changelog.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from streams.kafka.clients import HOT_FETCH_WAIT_MS, groupless_consumer
from streams.kafka.faust_patches import exact_ends

log = logging.getLogger("banwatch.hotpath")

#: Records per batch handed to the engine.
BATCH_MAX = 2000
#: How long a fetch waits on an idle partition (streams/kafka/clients.py).
FETCH_WAIT_MS = HOT_FETCH_WAIT_MS
#: Seconds between commits: state written, outputs acknowledged, offsets committed.
COMMIT_S = 1.0

#: A recovery that reads nothing for this long fails the worker (it restarts) instead of
#: waiting for ever.
RECOVERY_STALL_S = 60.0

_partitioner = DefaultPartitioner()


def position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The consumer's position on an assigned partition, without waiting (None while it is
    being reset from the committed offset). aiokafka's `position()` is a coroutine that waits
    for that reset; the metrics gauges need an answer now, so this reads its partition state."""
    try:
        state = consumer._subscription.subscription.assignment.state_value(tp)
    except AttributeError:  # unsubscribed, or aiokafka changed: no answer
        return None
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


def owned_partitions(consumer: AIOKafkaConsumer) -> set[TopicPartition]:
    """The partitions the group grants this member now: its assignment while its generation
    holds, nothing once the coordinator has reset it (the member was paused or slow past its
    session and the group moved on without it; the revocation hook runs only when it
    rejoins). A rebalance in progress does not end the generation: during it the member
    still owns its partitions, and its revocation hook makes the last commit."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or coordinator.generation < 0 or not coordinator.member_id:
        return set()
    return set(consumer.assignment())


#: At most this many records of an output partition are read for outputs already published
#: (a floor that old comes from a worker that rarely writes there: its tail is all it needs).
MAX_TAIL = 20_000


async def read_tail(
    bootstrap: str, starts: Mapping[tuple[str, int], int | None], security: Mapping[str, Any]
) -> tuple[list[Any], dict[tuple[str, int], int]]:
    """The records of (topic, partition)s from the offsets `starts` (at most `MAX_TAIL` before
    the end; none where the offset is None) to their exact end, and the end of each: what a
    dead predecessor published after its last commit, and where this worker's own outputs
    will land from now on (streams/worker/hotloop.py `HotLoop._find_published`)."""
    tps = [TopicPartition(t, p) for t, p in sorted(starts)]
    if not tps:
        return [], {}
    ends = await asyncio.to_thread(exact_ends, bootstrap, security, tps)
    todo = {}
    for tp in tps:
        floor = starts[(tp.topic, tp.partition)]
        if floor is None:
            continue
        start = max(floor, ends[tp] - MAX_TAIL, 0)
        if start < ends[tp]:
            todo[tp] = start
    out: list[Any] = []
    last = {(tp.topic, tp.partition): ends[tp] for tp in tps}
    if not todo:
        return out, last
    consumer = groupless_consumer(bootstrap, "banwatch-output-tail", security)
    await consumer.start()
    try:
        consumer.assign(list(todo))
        for tp, start in todo.items():
            consumer.seek(tp, start)
        idle_since = time.monotonic()
        while todo:
            batches = await consumer.getmany(*todo, timeout_ms=200, max_records=10000)
            if batches:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > RECOVERY_STALL_S:
                raise RuntimeError(f"reading {sorted(map(str, todo))} stalled")
            for records in batches.values():
                out.extend(records)
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    del todo[tp]
    finally:
        await consumer.stop()
    return out, last


async def keep_alive(consumer: AIOKafkaConsumer) -> None:
    """Heartbeat the group for `consumer` until cancelled or no longer a member.

    aiokafka stops its heartbeats while the `on_partitions_assigned` hook runs (the Java
    client heartbeats from a thread of its own throughout), so a state recovery longer than
    the session timeout got the member expired just after it: it published what it decided
    until the next heartbeat told it so, then dropped its state unwritten (a zombie's),
    rejoined and recovered again, and the group could go round like that, every round
    publishing the same revisions again (docs/reliability.md, "The re-publishing"). Run this
    beside the hook: an answer that the group is rebalancing or has forgotten this member
    sets aiokafka's own flags, which the rejoin after the hook and `owned_partitions` read."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or not hasattr(coordinator, "_do_heartbeat"):
        return
    every = coordinator._heartbeat_interval_ms / 1000
    while coordinator.member_id and coordinator.generation >= 0:
        await asyncio.sleep(every)
        try:
            await coordinator._do_heartbeat()
        except Exception as exc:  # the next regular heartbeat or the rejoin reports it
            log.warning("heartbeat during state recovery failed: %s", type(exc).__name__)
            return


class Outbox:
    """Records to send, gathered into one record batch per topic partition.

    `add` is synchronous and cheap (no coroutine per record); `ship` hands the batches to the
    producer, which sends them at once; `flush` ships and waits for the broker's
    acknowledgement of everything shipped, and raises if any send failed."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._parts: dict[str, list[int]] = {}
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []
        self._sent: list[asyncio.Future[Any]] = []
        self._rr = itertools.count()
        self.records = 0

    async def prepare(self, topics: list[str]) -> None:
        """Learn the partitions of every topic this outbox writes to."""
        for topic in topics:
            parts = await self.producer.partitions_for(topic)
            if not parts:
                raise RuntimeError(f"topic {topic} has no partitions")
            self._parts[topic] = sorted(parts)

    def partition(self, topic: str, key: bytes | None) -> int:
        """Kafka's default partitioner (murmur2 of the key; keyless records spread)."""
        parts = self._parts[topic]
        if key is None:
            return parts[next(self._rr) % len(parts)]
        return int(_partitioner(key, parts, parts))

    def add(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        p = self.partition(topic, key) if partition is None else partition
        slot = (topic, p)
        batch = self._open.get(slot)
        if batch is None:
            batch = self._open[slot] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: start another
            self._full.append((topic, p, batch))
            batch = self._open[slot] = self.producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
        self.records += 1

    async def ship(self) -> None:
        full, self._full = self._full, []
        opened, self._open = self._open, {}
        for topic, p, batch in full:
            self._sent.append(await self.producer.send_batch(batch, topic, partition=p))
        for (topic, p), batch in opened.items():
            self._sent.append(await self.producer.send_batch(batch, topic, partition=p))
        # acknowledged batches need no waiting any more: keep the list short
        if len(self._sent) > 256:
            for fut in self._sent:
                if fut.done():
                    fut.result()  # a failed send raises here
            self._sent = [f for f in self._sent if not f.done()]

    def discard(self, topic: str, keep: set[int]) -> int:
        """Drop what was added to `topic` outside the partitions `keep` and not shipped yet
        (a zombie's state, streams/worker/checkpoint.py); how many records."""
        n = 0
        for slot in [k for k in self._open if k[0] == topic and k[1] not in keep]:
            n += self._open.pop(slot).record_count()
        full = []
        for t, p, batch in self._full:
            if t == topic and p not in keep:
                n += batch.record_count()
            else:
                full.append((t, p, batch))
        self._full = full
        self.records -= n
        return n

    def take_sent(self) -> list[asyncio.Future[Any]]:
        """The deliveries of everything shipped so far (the caller awaits them)."""
        sent, self._sent = self._sent, []
        return sent

    async def flush(self) -> None:
        await self.ship()
        sent, self._sent = self._sent, []
        if sent:
            await asyncio.gather(*sent)


async def read_state(
    bootstrap: str, topic: str, partitions: set[int], security: Mapping[str, Any]
) -> dict[str, Any]:
    """Read partitions of the state changelog to their exact end: key → latest value.

    Keys and values are JSON, as faust wrote them when the state was a faust table (so a
    changelog written by an older worker is read back as is); a null value deletes the key.

    `BANWATCH_TEST_RECOVERY_DELAY_S` (tests only) makes every read this much slower, as a
    long changelog on a loaded machine does (tests/chaos/test_slow_recovery.py)."""
    delay = float(os.environ.get("BANWATCH_TEST_RECOVERY_DELAY_S") or 0)
    if delay > 0:
        await asyncio.sleep(delay)
    if not partitions:
        return {}
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    ends = await asyncio.to_thread(exact_ends, bootstrap, security, tps)
    data: dict[str, Any] = {}
    todo = {tp for tp in tps if ends[tp] > 0}
    if not todo:
        return data
    consumer = groupless_consumer(bootstrap, "banwatch-state-recovery", security)
    await consumer.start()
    try:
        consumer.assign(list(todo))
        await consumer.seek_to_beginning(*todo)
        idle_since = time.monotonic()
        while todo:
            batches = await consumer.getmany(timeout_ms=200, max_records=10000)
            if batches:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > RECOVERY_STALL_S:
                raise RuntimeError(
                    f"state recovery stalled on {sorted(tp.partition for tp in todo)}"
                )
            for records in batches.values():
                for r in records:
                    if r.key is None:
                        continue
                    key = orjson.loads(r.key)
                    if r.value is None:
                        data.pop(key, None)
                    else:
                        data[key] = orjson.loads(r.value)
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
    finally:
        await consumer.stop()
    return data
