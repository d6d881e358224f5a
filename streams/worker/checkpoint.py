"""The hot loop's commit protocol, one object (after quix-streams' `Checkpoint.commit()`).

A commit is the unit of durability: a worker that dies between two commits is replayed from
the last one, and the offset markers its state carries make the replay of records it had
already applied a no-op. That only holds if every step happens after the one before it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from alerts.engine import Engine
from streams.worker.changelog import ChangelogState

log = logging.getLogger("banwatch.worker")


class Box(Protocol):
    """What a commit needs of an outbox (streams/worker/outbox.py `Outbox`)."""

    def add(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None: ...

    async def ship(self) -> None: ...

    def take_sent(self) -> list[asyncio.Future[Any]]: ...

    async def flush(self) -> None: ...

    def discard(self, topic: str, keep: set[int]) -> int:
        """Drop the records added to `topic` outside the partitions `keep` and not shipped yet;
        how many."""
        ...


class Committer(Protocol):
    """What a commit needs of the group consumer."""

    def assignment(self) -> Any: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...


class Checkpoint:
    """Commit what the hot loop decided up to now.

    Steps, in this order:

    `begin` (under the hot loop's lock, so no batch is half-decided):
      1. the state the engine touched and the offset markers of this moment are encoded into
         the state outbox, unsent;
      2. the outputs decided so far are shipped, and their deliveries taken;
      3. the offsets to commit are fixed: the next offset of every hot partition still
         assigned.

    `finish` (outside the lock: the broker's acknowledgements take a while and the loop
    goes on deciding meanwhile):
      4. wait until the broker has acknowledged those outputs (the offsets they got are the
         floor the next commit writes for a successor to look for published outputs from);
      5. only then send the state and markers (a marker must never be durable before the
         outputs of the records it skips), and wait for their acknowledgement; the state
         of a partition the group no longer grants this member (its generation is over: it
         was paused or slow past its session, and another member owns the partition now) is
         dropped unsent, so a zombie never overwrites the new owner's state;
      6. commit the consumer's offsets, unless a rebalance came in between (its own commit
         covers them). A commit the group refuses is logged: the partitions' new owner
         replays from the last commit, and the markers of step 5 skip what was applied.
    """

    def __init__(
        self,
        engine: Engine,
        changelog: ChangelogState,
        outbox: Box,
        state_box: Box,
        state_topic: str,
        generation: Callable[[], int],
        owned: Callable[[], set[TopicPartition]] | None = None,
    ) -> None:
        self.engine = engine
        self.changelog = changelog
        self.outbox = outbox
        self.state_box = state_box
        self.state_topic = state_topic
        self.generation = generation
        self.owned = owned
        self.fenced: set[int] = set()  # state partitions dropped unsent
        self._sent: list[asyncio.Future[Any]] = []
        self._offsets: dict[TopicPartition, int] = {}
        self._begun_in = -1

    async def begin(self, consumer: Committer, done: Mapping[TopicPartition, int]) -> None:
        """Steps 1 to 3. `done`: the next offset to process per hot partition."""
        self._begun_in = self.generation()
        # 1. state and markers into the state outbox, unsent
        self.changelog.persist(self.engine, self._write_state)
        # 2. outputs shipped; their deliveries taken
        await self.outbox.ship()
        self._sent = self.outbox.take_sent()
        # 3. the offsets to commit
        assigned = consumer.assignment()
        self._offsets = {tp: off for tp, off in done.items() if tp in assigned}

    async def finish(self, consumer: Committer) -> None:
        """Steps 4 to 6."""
        # 4. the outputs acknowledged; where they landed bounds what a successor must look
        # through for outputs published after this commit (changelog.py, "outputs:")
        if self._sent:
            self.changelog.delivered(await asyncio.gather(*self._sent))
        # 5. state and markers sent and acknowledged, for the partitions still ours
        if self.owned is not None:
            assigned = {tp.partition for tp in consumer.assignment()}
            ours = {tp.partition for tp in self.owned()}
            if assigned - ours:
                self.fenced = assigned - ours
                n = self.state_box.discard(self.state_topic, ours)
                log.warning(
                    "state of partitions %s not written (%d records): no longer ours",
                    sorted(self.fenced),
                    n,
                )
                self._offsets = {}
        await self.state_box.flush()
        # 6. the consumer's offsets, unless a rebalance came first
        if not self._offsets or self.generation() != self._begun_in:
            return
        try:
            await consumer.commit(self._offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offsets not committed: %s", type(exc).__name__)

    async def commit(self, consumer: Committer, done: Mapping[TopicPartition, int]) -> None:
        """Steps 1 to 6 at once (before a rebalance, at shutdown)."""
        await self.begin(consumer, done)
        await self.finish(consumer)

    def _write_state(self, key: bytes, value: bytes | None, partition: int) -> None:
        self.state_box.add(self.state_topic, key, value, partition)
