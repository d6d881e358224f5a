"""The hot loop: `positions` and `routed` read in batches, decided, and committed.

Faust hands every record to an agent through its own machinery, too slow for the two topics
that carry almost all the traffic (docs/bench.md); they are read here by a plain group consumer
in batches, and everything a batch produces leaves through one outbox (streams/worker/outbox.py).
The loop also runs the engine's timers, commits every `COMMIT_S` (streams/worker/checkpoint.py),
and keeps the state right across rebalances: before partitions go, a last commit; when they
come, the state of exactly those partitions is adopted from the changelog.

Nothing here creates a Kafka client: the consumer, the outboxes and the changelog reader are
handed in, so tests drive the loop in process (streams/worker/memory.py).

Over 400 lines because the loop, its recovery after a failed batch, its rebalance hooks and
the look for outputs a predecessor already published all move the same state (the engine, the
markers, `done`, the consumer's positions) under one lock; split, each part would reach into
the others' fields.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol

import orjson
from aiokafka import ConsumerRebalanceListener, TopicPartition

from alerts.engine import Engine, Incoming, Outcome
from config.policy import Policy
from config.topics import PARTITIONS
from geofence.decoding import POSITIONS, Reason
from geofence.records import LocationFix
from streams.worker.changelog import ChangelogState, mark
from streams.worker.checkpoint import Box, Checkpoint, Committer
from streams.worker.observer import Observer
from streams.worker.outbox import BATCH_MAX, COMMIT_S, FETCH_WAIT_MS
from streams.worker.publish import DEDUPED, OutputId, Publisher, output_id, utc_now
from streams.worker.routing import record_key, route_fix, unwrap

log = logging.getLogger("banwatch.worker")

TICK_S = 1.0

#: read_state(partitions) -> key -> latest value of the state changelog on those partitions
ReadState = Callable[[set[int]], Awaitable[dict[str, Any]]]
#: read_tail({(topic, partition): offset or None}) -> (the records of those partitions from
#: there on, none where None; the end of each)
ReadTail = Callable[
    [Mapping[tuple[str, int], int | None]],
    Awaitable[tuple[list[Any], dict[tuple[str, int], int]]],
]
#: owned() -> the partitions the group grants this member now (empty once its generation is
#: over, even before the revocation hook has run: a paused or slow member is a zombie)
Owned = Callable[[], set[TopicPartition]]


class Consumer(Committer, Protocol):
    """What the loop needs of the group consumer (aiokafka's `AIOKafkaConsumer`)."""

    async def getmany(
        self, *, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Any]]: ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...


#: what `HotLoop.process` did with a batch
KEPT, FENCED, FAILED = "kept", "fenced", "failed"


class HotLoop:
    """Decides the hot topics' records against the engine, for the partitions assigned."""

    def __init__(
        self,
        engine: Engine,
        policy: Policy,
        names: Mapping[str, str],
        routed_name: str,
        state_name: str,
        observer: Observer,
        read_state: ReadState,
        wait_for_bans: Callable[[], Awaitable[None]],
        read_tail: ReadTail | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.names = names
        self.positions_name = names[POSITIONS]
        self.routed_name = routed_name
        self.state_name = state_name
        self.observer = observer
        self.read_state = read_state
        self.wait_for_bans = wait_for_bans
        self.read_tail = read_tail
        # deployed name -> contract name of the output topics looked through after adopting
        self._deduped = {names[t]: t for t in DEDUPED if t in names}
        self.changelog = ChangelogState()
        self.done: dict[TopicPartition, int] = {}  # hot partition -> next offset to process
        self.consumer: Consumer | None = None
        self.outbox: Box | None = None
        self.state_box: Box | None = None
        self.lock = asyncio.Lock()
        self.generation = 0  # bumped at every revocation and assignment of hot partitions
        self._committing: asyncio.Task[None] | None = None
        self.owned: Owned | None = None
        # outputs of the batch being decided: they reach the outbox only once it succeeded
        self._staged: list[tuple[str, bytes | None, bytes, int | None]] | None = None
        self.fenced = 0  # batches whose outputs and state were dropped: partitions lost
        self.failed = 0  # batches an engine call failed in: state recovered from the changelog
        # hot partition -> first offset fetched since its assignment (a recovery's floor)
        self.origin: dict[TopicPartition, int] = {}
        # after a failure: records decided one engine call each (hot partition -> offset ranges)
        self.suspect: dict[TopicPartition, list[tuple[int, int]]] = {}
        self.poisoned: set[tuple[TopicPartition, int]] = set()  # failed alone: dead letters
        # an error in a rebalance hook (aiokafka would only log it): the loop raises it
        self.fatal: BaseException | None = None
        self.tally: Counter[tuple[str, Outcome, Reason | None]] = Counter()
        self.assigned = asyncio.Event()
        self.publisher = Publisher(self._put, names, routed_name, policy, observer, self._count)

    # ------------------------------------------------------------ the loop
    async def run(
        self,
        consumer: Consumer,
        outbox: Box,
        state_box: Box,
        stop: asyncio.Event,
        owned: Owned | None = None,
    ) -> None:
        """Read, decide and commit until `stop`; a last commit before returning. `owned`:
        what the group grants this member now (default: the consumer's assignment)."""
        self.consumer, self.outbox, self.state_box = consumer, outbox, state_box
        self.owned = owned
        try:
            await self._loop(consumer, outbox, stop)
        finally:
            self.consumer = self.outbox = self.state_box = None
            self.owned = None

    def _lost(self, parts: set[TopicPartition]) -> bool:
        """Whether the group no longer grants this member one of `parts`."""
        return self.owned is not None and not parts <= self.owned()

    async def _loop(self, consumer: Consumer, outbox: Box, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_commit = loop.time() + COMMIT_S
        next_tick = loop.time() + TICK_S
        while not stop.is_set():
            generation = self.generation
            batches = await consumer.getmany(timeout_ms=FETCH_WAIT_MS * 5, max_records=BATCH_MAX)
            received = time.monotonic()
            async with self.lock:
                if self.fatal is not None:  # never decide on state a failed hook left behind
                    raise self.fatal
                if batches and generation != self.generation:
                    # fetched across a rebalance: not decided against the state adopted since.
                    # A partition still ours is read again from here; the new owner of one
                    # that is not reads it from the last commit
                    assigned = consumer.assignment()
                    for tp, rs in batches.items():
                        if tp in assigned:
                            consumer.seek(tp, rs[0].offset)
                elif batches:
                    await self.wait_for_bans()
                    records = [r for rs in batches.values() for r in rs]
                    for tp, rs in batches.items():
                        self.origin.setdefault(tp, rs[0].offset)
                    verdict = self.process(records, received, set(batches))
                    if verdict == KEPT:
                        for tp, rs in batches.items():
                            self.done[tp] = rs[-1].offset + 1
                    elif verdict == FENCED:  # nothing decided; read again by their owner
                        assigned = consumer.assignment()
                        for tp, rs in batches.items():
                            if tp in assigned:
                                consumer.seek(tp, rs[0].offset)
                    else:  # failed: back to the last checkpoint, as after a crash
                        await self.recover(consumer)
                now = loop.time()
                if now >= next_tick:
                    next_tick = now + TICK_S
                    if self.assigned.is_set() and not self._lost(consumer.assignment()):
                        for output in self.engine.tick(utc_now()):
                            self.publisher.send(output)
                await outbox.ship()
                committing = self._committing
                if committing is not None and committing.done():
                    self._committing = None
                    committing.result()  # a failed send or commit stops the worker
                if now >= next_commit and self._committing is None:
                    next_commit = now + COMMIT_S
                    checkpoint = await self._begin_commit(consumer)
                    self._committing = asyncio.create_task(checkpoint.finish(consumer))
        async with self.lock:
            if self.fatal is None:
                await self.commit_now(consumer)

    # ------------------------------------------------------------ commits
    def _checkpoint(self) -> Checkpoint:
        assert self.outbox is not None and self.state_box is not None
        return Checkpoint(
            self.engine,
            self.changelog,
            self.outbox,
            self.state_box,
            self.state_name,
            lambda: self.generation,
            self.owned,
        )

    async def _begin_commit(self, consumer: Consumer) -> Checkpoint:
        checkpoint = self._checkpoint()
        await checkpoint.begin(consumer, self.done)
        return checkpoint

    async def commit_now(self, consumer: Consumer) -> None:
        """Commit at once, after the commit in flight (before a rebalance, at shutdown).
        Called under the lock."""
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing
        if self.outbox is not None:
            await self._checkpoint().commit(consumer, self.done)

    async def recover(self, consumer: Consumer) -> None:
        """After a failed engine call: the state of every assigned partition adopted again
        from the changelog (the last checkpoint, as after a crash or a rebalance) and the
        consumer sought back to what its markers say, so the records since are decided again
        (the alert and task revisions they published already are not sent again:
        `_find_published`).
        Called under the lock; the commit in flight finishes first (it holds nothing of the
        failed batch: it began before it)."""
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing
        assigned = consumer.assignment()
        parts = {
            tp.partition for tp in assigned if tp.topic in (self.positions_name, self.routed_name)
        }
        data = await self.read_state(parts)
        self.changelog.adopt(self.engine, parts, data)
        del data
        await self._find_published()
        self.observer.on_adopted(self.engine)
        applied = self.changelog.applied
        for tp in assigned:
            origin = self.origin.get(tp)
            if origin is None:  # nothing fetched since the assignment: nothing to decide again
                continue
            src = "r" if tp.topic == self.routed_name else "f"
            last = applied.get(mark(src, tp.partition))
            at = origin if last is None else max(origin, last + 1)
            consumer.seek(tp, at)
            self.done[tp] = at
        log.warning("state of partitions %s adopted again after a failed batch", sorted(parts))

    # ----------------------------------------------------------- rebalance
    async def on_revoked(self) -> None:
        async with self.lock:
            self.generation += 1
            try:
                if self.consumer is not None and self.fatal is None:
                    await self.commit_now(self.consumer)
            finally:
                self.engine.reset_routed()  # nothing is ours until an assignment says so
                self.changelog.forget()
                self.done.clear()
                self._forget_failures()

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self.lock:
            self.generation += 1
            by_topic: dict[str, set[int]] = {}
            for tp in assigned:
                by_topic.setdefault(tp.topic, set()).add(tp.partition)
            parts = by_topic.get(self.positions_name, set())
            if by_topic.get(self.routed_name, set()) != parts:  # the range assignor's promise
                log.error("positions and routed assigned unlike: %s", sorted(by_topic.items()))
            parts |= by_topic.get(self.routed_name, set())
            data = await self.read_state(parts)
            self.changelog.adopt(self.engine, parts, data)
            del data
            await self._find_published()
            self._forget_failures()
            self.observer.on_adopted(self.engine)
            # The registry, the zone index and the adopted states are long-lived: hundreds of
            # thousands of objects that every full collection would walk again (a pause in
            # the middle of the stream). Collect once now and move them out of the
            # collector's sight; what they leave behind later is freed by reference
            # counting, and the next assignment collects it.
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self.assigned.set()

    async def _find_published(self) -> None:
        """After an adoption: the alert and task revisions already on the output topics past
        the adopted partitions' last commit (their owner died, or a batch failed, after
        publishing them), which the records decided again must not publish a second time.
        The floors say where to look from: every output published after that commit lies
        past them (streams/worker/changelog.py, "outputs:"). An output partition this worker
        has no floor for yet gets its present end: all it publishes there lies past it."""
        publisher = self.publisher
        publisher.published = set()
        if self.read_tail is None:
            return
        adopted = self.changelog.adopted_floors
        slots = {(t, p): adopted.get((t, p)) for t in self._deduped for p in range(PARTITIONS)}
        try:
            records, ends = await self.read_tail(slots)
        except Exception as exc:  # a successor that cannot look re-publishes, as before
            log.warning("output topics not read for published revisions: %s", type(exc).__name__)
            return
        floors = self.changelog.floors
        for slot, end in ends.items():
            floors.setdefault(slot, end)
        found: set[OutputId] = set()
        for r in records:
            if r.value is None:
                continue
            try:
                ident = output_id(self._deduped[r.topic], orjson.loads(r.value))
            except (orjson.JSONDecodeError, KeyError):
                continue
            if ident is not None:
                found.add(ident)
        publisher.published = found
        log.info("%d alert and task revisions already published past the last commit", len(found))

    # ------------------------------------------------------------ deciding
    def _forget_failures(self) -> None:
        self.origin.clear()
        self.suspect.clear()
        self.poisoned.clear()

    def process(
        self, records: list[Any], received: float, parts: set[TopicPartition] | None = None
    ) -> str:
        """Decide a fetched batch (of hot partitions `parts`, default: those of `records`).

        KEPT: decided, its outputs in the outbox. FENCED: the group no longer grants this
        member one of `parts` (a zombie: paused or slow past its session): nothing decided,
        its records are the new owner's. FAILED: an engine call raised; its outputs and those
        of the whole batch are dropped, and the state has moved half-way: the caller recovers
        it from the changelog (`recover`), and the batch comes again, then decided an engine
        call per record of the range that failed (a record that fails alone becomes an
        `internal` dead letter on the next pass and is marked done). The happy path costs
        nothing: no state is copied before an engine call."""
        if parts is None:
            parts = {TopicPartition(r.topic, r.partition) for r in records}
        if self._lost(parts):
            # checked before deciding, nothing leaves: a rebalance the hooks have not run yet
            # (the member was paused) took some of these partitions away
            self.fenced += 1
            log.warning("partitions %s no longer ours: batch dropped", sorted(map(str, parts)))
            return FENCED
        staged = self._staged = []
        try:
            runs = [records] if not self.suspect else self._runs(records)
            for run in runs:
                try:
                    self._process_batch(run, received)
                except Exception as exc:
                    self._failed(run, exc)
                    return FAILED
        finally:
            self._staged = None
        assert self.outbox is not None
        add = self.outbox.add
        for rec in staged:
            add(*rec)
        if self.suspect or self.poisoned:
            self._prune()
        return KEPT

    def _prune(self) -> None:
        """Forget the failed ranges and records the markers have passed."""
        applied = self.changelog.applied

        def last(tp: TopicPartition) -> int:
            return applied.get(mark("r" if tp.topic == self.routed_name else "f", tp.partition), -1)

        for tp in list(self.suspect):
            left = [(lo, hi) for lo, hi in self.suspect[tp] if hi > last(tp)]
            if left:
                self.suspect[tp] = left
            else:
                del self.suspect[tp]
        self.poisoned = {(tp, off) for tp, off in self.poisoned if off > last(tp)}

    def _runs(self, records: list[Any]) -> list[list[Any]]:
        """`records` in engine calls, in order: a record of a range that failed alone."""
        runs: list[list[Any]] = []
        plain: list[Any] = []
        for r in records:
            ranges = self.suspect.get(TopicPartition(r.topic, r.partition), ())
            if any(lo <= r.offset <= hi for lo, hi in ranges):
                if plain:
                    runs.append(plain)
                    plain = []
                runs.append([r])
            else:
                plain.append(r)
        if plain:
            runs.append(plain)
        return runs

    def _failed(self, run: list[Any], exc: Exception) -> None:
        self.failed += 1
        if len(run) == 1:
            r = run[0]
            log.error("record failed: %s", type(exc).__name__)
            self.poisoned.add((TopicPartition(r.topic, r.partition), r.offset))
            return
        log.error("batch failed (%s); its records decided one by one", type(exc).__name__)
        bounds: dict[TopicPartition, tuple[int, int]] = {}
        for r in run:
            tp = TopicPartition(r.topic, r.partition)
            lo, hi = bounds.get(tp, (r.offset, r.offset))
            bounds[tp] = (min(lo, r.offset), max(hi, r.offset))
        for tp, span in bounds.items():
            self.suspect.setdefault(tp, []).append(span)

    def _process_batch(self, records: list[Any], received: float) -> None:
        now = utc_now()
        self.tally.clear()  # (what a failed attempt counted: its records are decided again)
        applied = self.changelog.applied
        batch: list[Incoming] = []
        marks: dict[str, int] = {}
        poisoned = self.poisoned
        for m in records:
            src = "r" if m.topic == self.routed_name else "f"
            name = mark(src, m.partition)
            if m.offset <= applied.get(name, -1):
                continue  # applied before a crash; its changes are in the changelog already
            marks[name] = max(marks.get(name, -1), m.offset)
            if poisoned and (TopicPartition(m.topic, m.partition), m.offset) in poisoned:
                self.publisher.internal_error(m)  # failed alone: done, as a dead letter
                continue
            key = record_key(m.key)
            if src == "r":
                batch.append(unwrap(key, m.value))
            else:
                batch.extend(
                    self._route_fix(Incoming(POSITIONS, key, m.value, m.partition, m.offset), now)
                )
        results = self.engine.handle_batch(batch, now) if batch else []
        tally = self.tally
        for msg, res in zip(batch, results, strict=True):
            tally[(msg.topic, res.outcome, res.reason)] += 1
            for output in res.outputs:
                self.publisher.send(output)
        applied.update(marks)
        for (topic, outcome, reason), n in tally.items():
            self.observer.on_record(topic, outcome, reason, n)
        tally.clear()
        took = time.monotonic() - received  # from the fetch to the outputs queued
        routed = sum(1 for m in records if m.topic == self.routed_name)
        if routed:
            self.observer.on_processed("routed", took, routed)
        if len(records) > routed:
            self.observer.on_processed(POSITIONS, took, len(records) - routed)

    def _route_fix(self, msg: Incoming, now: Any) -> list[Incoming]:
        """Decide a restrained person's fix here; re-key a protected person's fix to each of
        the restrained persons of their bans. Invalid fixes become dead letters here."""
        d = self.publisher.decide_or_reject(msg, now, self.policy.max_ban_record_bytes)
        if d is None:
            return []
        assert isinstance(d, LocationFix)
        local, targets = route_fix(self.engine.registry, d, msg)
        for target in targets:
            self.publisher.forward(target, msg)
        if local is None:
            self.tally[(POSITIONS, Outcome.accepted, None)] += 1
            return []
        return [local]

    # ------------------------------------------------------------ outputs
    def _put(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        if self._staged is not None:  # a batch being decided: kept only if it succeeds
            self._staged.append((topic, key, value, partition))
            return
        assert self.outbox is not None, "the hot loop publishes only while it runs"
        self.outbox.add(topic, key, value, partition)

    def _count(self, topic: str, outcome: Outcome, reason: Reason | None) -> None:
        self.tally[(topic, outcome, reason)] += 1


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """The hot loop's rebalance hooks: commit before partitions go, adopt when they come. A
    hook that fails stops the worker (aiokafka would log the error and go on)."""

    def __init__(
        self, hot: HotLoop, keep_alive: Callable[[], Coroutine[Any, Any, None]] | None = None
    ) -> None:
        self.hot = hot
        # heartbeats the group while the state is recovered (streams/worker/outbox.py)
        self.keep_alive = keep_alive

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.hot.on_revoked()
        except Exception as exc:
            log.error("commit before a rebalance failed: %s", type(exc).__name__)
            self.hot.fatal = self.hot.fatal or exc

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        alive: asyncio.Task[None] | None = None
        if self.keep_alive is not None:
            alive = asyncio.create_task(self.keep_alive())
        try:
            await self.hot.on_assigned(set(assigned))
        except Exception as exc:  # deciding on a half-adopted state would overwrite it
            log.error("state recovery failed: %s", type(exc).__name__)
            self.hot.fatal = self.hot.fatal or exc
        finally:
            if alive is not None:
                alive.cancel()
                await asyncio.gather(alive, return_exceptions=True)
