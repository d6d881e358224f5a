"""The hot loop on Python lists: an in-memory log, group consumer and outbox.

In the spirit of bytewax's `testing.py` (`TestingSource`/`TestingSink`): the real worker logic
(streams/worker/hotloop.py: routing, deciding, the commit protocol, rebalances and adoption)
runs on records held in lists, without a broker, so tests of those rules take milliseconds.
The broker tests (tests/streams/) then prove the wiring, not every rule.

`MemoryLog.journal` records, in order, every record written ("write", topic, partition, key)
and every offset commit ("commit", {(topic, partition): offset}), which is what a test of the
commit order reads. An outbox made with `auto_ack=False` holds what it ships until `ack()`,
like a broker that has not answered yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from config.topics import PARTITIONS

_partitioner = DefaultPartitioner()


@dataclass(frozen=True)
class Record:
    """One record in the log, shaped like aiokafka's `ConsumerRecord` where the worker reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class MemoryLog:
    """Topics of `partitions` partitions each, as lists; the committed offsets per group."""

    def __init__(self, partitions: int = PARTITIONS) -> None:
        self.partitions = partitions
        self._topics: dict[str, list[list[Record]]] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.journal: list[tuple[Any, ...]] = []

    def _parts(self, topic: str) -> list[list[Record]]:
        return self._topics.setdefault(topic, [[] for _ in range(self.partitions)])

    def append(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> Record:
        """Write a record (partition: Kafka's default partitioner of the key if not given)."""
        if partition is None:
            all_ = list(range(self.partitions))
            partition = 0 if key is None else int(_partitioner(key, all_, all_))
        part = self._parts(topic)[partition]
        rec = Record(topic, partition, len(part), key, value)
        part.append(rec)
        self.journal.append(("write", topic, partition, key))
        return rec

    def read(self, topic: str, partition: int, offset: int, limit: int) -> list[Record]:
        return self._parts(topic)[partition][offset : offset + limit]

    def records(self, topic: str) -> list[Record]:
        """Every record of `topic`, partition by partition."""
        return [r for part in self._parts(topic) for r in part]

    async def read_state(self, topic: str, partitions: set[int]) -> dict[str, Any]:
        """Like streams/worker/outbox.py `read_state`: key -> latest value of those partitions."""
        data: dict[str, Any] = {}
        for p in sorted(partitions):
            for r in self._parts(topic)[p]:
                if r.key is None:
                    continue
                key = orjson.loads(r.key)
                if r.value is None:
                    data.pop(key, None)
                else:
                    data[key] = orjson.loads(r.value)
        return data


    async def read_tail(
        self, starts: Mapping[tuple[str, int], int | None]
    ) -> tuple[list[Record], dict[tuple[str, int], int]]:
        """Like streams/worker/outbox.py `read_tail`: the records from those offsets on (none
        where the offset is None), and the end of every partition named."""
        records = [
            r
            for (topic, p), start in sorted(starts.items())
            if start is not None
            for r in self._parts(topic)[p][start:]
        ]
        return records, {(t, p): len(self._parts(t)[p]) for t, p in starts}


class MemoryOutbox:
    """The hot loop's outbox (streams/worker/outbox.py `Outbox`) writing into a `MemoryLog`."""

    def __init__(self, log: MemoryLog, auto_ack: bool = True) -> None:
        self.log = log
        self.auto_ack = auto_ack
        self._pending: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self._held: list[
            tuple[tuple[str, bytes | None, bytes | None, int | None], asyncio.Future[Any]]
        ] = []
        self._sent: list[asyncio.Future[Any]] = []

    def add(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self._pending.append((topic, key, value, partition))

    async def ship(self) -> None:
        pending, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        for rec in pending:
            fut: asyncio.Future[Any] = loop.create_future()
            self._held.append((rec, fut))
            self._sent.append(fut)
        if self.auto_ack:
            self.ack()

    def ack(self) -> None:
        """The broker answers: everything shipped is written to the log, in order."""
        held, self._held = self._held, []
        for (topic, key, value, partition), fut in held:
            fut.set_result(self.log.append(topic, key, value, partition))  # its "metadata"

    def discard(self, topic: str, keep: set[int]) -> int:
        """Drop what was added to `topic` outside the partitions `keep` and not shipped yet."""

        def dropped(rec: tuple[str, bytes | None, bytes | None, int | None]) -> bool:
            return rec[0] == topic and (rec[3] is None or rec[3] not in keep)

        n = sum(1 for rec in self._pending if dropped(rec))
        self._pending = [rec for rec in self._pending if not dropped(rec)]
        return n

    def take_sent(self) -> list[asyncio.Future[Any]]:
        sent, self._sent = self._sent, []
        return sent

    async def flush(self) -> None:
        await self.ship()
        sent, self._sent = self._sent, []
        if sent:
            await asyncio.gather(*sent)


class MemoryConsumer:
    """A group consumer of `topics` on a `MemoryLog`; `assign` plays the group coordinator."""

    def __init__(
        self, log: MemoryLog, topics: Iterable[str], listener: ConsumerRebalanceListener
    ) -> None:
        self.log = log
        self.topics = list(topics)
        self.listener = listener
        self._assigned: set[TopicPartition] = set()
        self._position: dict[TopicPartition, int] = {}
        self._lost: set[TopicPartition] = set()

    async def assign(self, partitions: Iterable[int]) -> None:
        """A rebalance: revoke what is held, then give this member `partitions` of every topic,
        positioned at the committed offsets."""
        if self._assigned:
            await self.listener.on_partitions_revoked(set(self._assigned))
        self._assigned = {TopicPartition(t, p) for t in self.topics for p in partitions}
        self._lost = set()
        self._position = {tp: self.log.committed.get(tp, 0) for tp in self._assigned}
        await self.listener.on_partitions_assigned(set(self._assigned))

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def lose(self, partitions: Iterable[int]) -> None:
        """The group gives `partitions` to another member while this one is paused: its
        generation is over, but no hook has run yet (a zombie until it rejoins)."""
        self._lost |= {TopicPartition(t, p) for t in self.topics for p in partitions}

    def owned(self) -> set[TopicPartition]:
        """What the group grants this member now (aiokafka: `owned_partitions`)."""
        return self._assigned - self._lost

    async def getmany(
        self, *, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Record]]:
        out: dict[TopicPartition, list[Record]] = {}
        left = max_records
        for tp in sorted(self._assigned):
            if left <= 0:
                break
            rs = self.log.read(tp.topic, tp.partition, self._position[tp], left)
            if rs:
                out[tp] = rs
                self._position[tp] = rs[-1].offset + 1
                left -= len(rs)
        if not out:
            await asyncio.sleep(timeout_ms / 1000)
        else:
            await asyncio.sleep(0)
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._position[tp] = offset

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.log.committed.update(offsets)
        self.log.journal.append(("commit", dict(offsets)))
