"""The worker's own rules in process, on lists (streams/worker/memory.py), without a broker:
routing of fixes to the restrained person's partition, the commit order (outputs acknowledged
→ state and markers → consumer offsets), adoption of state after a rebalance, and re-delivery
after a lost offset commit being a no-op. The broker tests (test_worker.py) prove the wiring."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition

from alerts.engine import Engine, Incoming
from config.policy import load_policy
from config.topics import TopicNames
from geofence.decoding import BANS, POSITIONS
from streams.worker.hotloop import HotLoop, Rebalance
from streams.worker.memory import MemoryConsumer, MemoryLog, MemoryOutbox
from streams.worker.observer import Observer, Observers
from streams.worker.routing import partition_for, unwrap
from tests.streams.workers import ban, fix, ts

POLICY = load_policy()
NAMES = TopicNames()
ROUTED, STATE = "app-routed", "app-state-changelog"
LAT, LON = 59.1950, 17.6280
INSIDE = (LAT + 0.001, LON + 0.001)
FAR = (LAT + 0.05, LON + 0.05)


class Tally(Observer):
    def __init__(self) -> None:
        self.records: list[tuple[str, str, int]] = []
        self.adopted = 0

    def on_record(self, topic: str, outcome: Any, reason: Any, n: int) -> None:
        self.records.append((topic, str(outcome), n))

    def on_adopted(self, engine: Engine) -> None:
        self.adopted += 1


class Member:
    """One worker's hot loop on the shared log, with its own engine and bans."""

    def __init__(
        self,
        log: MemoryLog,
        bans: list[dict[str, Any]],
        auto_ack: bool = True,
        first: Observer | None = None,
    ):
        self.log = log
        self.engine = Engine(POLICY, partial=True)
        now = datetime.now(UTC)
        for b in bans:
            raw = json.dumps(b).encode()
            self.engine.handle(Incoming(BANS, b["ban_id"], raw, 0, 0), now)
        self.tally = Tally()
        observers = self.observers = Observers()
        if first is not None:
            observers.add(first)
        observers.add(self.tally)

        async def no_wait() -> None:
            return None

        async def read_state(parts: set[int]) -> dict[str, Any]:
            return await log.read_state(STATE, parts)

        self.hot = HotLoop(
            self.engine, POLICY, NAMES.deployed(), ROUTED, STATE, observers, read_state, no_wait
        )
        self.consumer = MemoryConsumer(log, [NAMES.positions, ROUTED], Rebalance(self.hot))
        self.outbox = MemoryOutbox(log, auto_ack=auto_ack)
        self.state_box = MemoryOutbox(log)

    async def run_until(self, done: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """The real loop until `done()` holds; stopping makes its last commit."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.hot.run(self.consumer, self.outbox, self.state_box, stop))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not done() and loop.time() < deadline and not task.done():
            await asyncio.sleep(0.01)
        stop.set()
        await task
        assert done(), "condition not reached"


def send_fix(log: MemoryLog, person: str, lat: float, lon: float) -> None:
    value = json.dumps(fix(person, f"EM-{person}", lat, lon, ts())).encode()
    log.append(POSITIONS, person.encode(), value)


def alerts(log: MemoryLog) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in log.records(NAMES.alerts) if r.value is not None]


def breaches(log: MemoryLog, ban_id: str) -> set[str]:
    return {
        a["alert_id"] for a in alerts(log) if a["ban_id"] == ban_id and a["kind"] == "zone_breach"
    }


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_restrained_persons_fix_is_decided_where_it_lands() -> None:
    async def go() -> None:
        log = MemoryLog()
        w = Member(log, [ban("KF-1", "P-1", "V-1", LON, LAT)])
        await w.consumer.assign(range(log.partitions))
        send_fix(log, "P-1", *INSIDE)
        await w.run_until(lambda: bool(breaches(log, "KF-1")))
        assert log.records(ROUTED) == []  # nothing re-keyed: decided on its own partition
        assert ("positions", "accepted", 1) in w.tally.records

    run(go())


def test_a_protected_persons_fix_is_rekeyed_to_the_restrained_persons_partition() -> None:
    async def go() -> None:
        log = MemoryLog()
        w = Member(log, [ban("KF-2", "P-2", "V-2", LON, LAT)])
        await w.consumer.assign(range(log.partitions))
        send_fix(log, "P-2", *FAR)
        send_fix(log, "V-2", FAR[0] + 0.0005, FAR[1])  # ~55 m from P-2: proximity
        await w.run_until(lambda: any(a["kind"] == "proximity_breach" for a in alerts(log)))
        routed = log.records(ROUTED)
        assert [(r.key, r.partition) for r in routed] == [(b"P-2", partition_for("P-2"))]
        assert unwrap("P-2", routed[0].value or b"").key == "V-2"  # the original record, carried

    run(go())


def test_state_and_markers_wait_for_the_outputs_and_offsets_wait_for_both() -> None:
    async def go() -> None:
        log = MemoryLog()
        w = Member(log, [ban("KF-3", "P-3", "V-3", LON, LAT)], auto_ack=False)
        await w.consumer.assign(range(log.partitions))
        send_fix(log, "P-3", *INSIDE)
        batch = await w.consumer.getmany(timeout_ms=0, max_records=100)
        async with w.hot.lock:
            w.hot.outbox, w.hot.state_box = w.outbox, w.state_box
            w.hot.process([r for rs in batch.values() for r in rs], 0.0)
            for tp, rs in batch.items():
                w.hot.done[tp] = rs[-1].offset + 1
            checkpoint = await w.hot._begin_commit(w.consumer)
        finishing = asyncio.create_task(checkpoint.finish(w.consumer))
        await asyncio.sleep(0.05)
        # the broker has not acknowledged the alert: no state, no marker, no offsets
        assert [
            j for j in log.journal if j[0] == "commit" or (j[0] == "write" and j[1] != POSITIONS)
        ] == []
        w.outbox.ack()
        await finishing
        kinds = [
            "commit" if j[0] == "commit" else ("state" if j[1] == STATE else j[1])
            for j in log.journal
            if j[0] == "commit" or j[1] != POSITIONS
        ]
        first_state, commit = kinds.index("state"), kinds.index("commit")
        assert NAMES.alerts in kinds[:first_state], kinds  # outputs before state
        assert set(kinds[first_state:commit]) == {"state"}, kinds  # state before offsets
        assert commit == len(kinds) - 1
        tp = TopicPartition(NAMES.positions, partition_for("P-3"))
        assert log.committed == {tp: 1}
        state = await log.read_state(STATE, {tp.partition})
        assert state[f"offset:f:{tp.partition}"]["d"] == 0  # the marker: offset 0 applied
        assert "ban:KF-3" in state

    run(go())


def test_a_rebalance_hands_the_state_over_and_a_lost_offset_commit_replays_nothing() -> None:
    async def go() -> None:
        log = MemoryLog()
        bans = [ban("KF-4", "P-4", "V-4", LON, LAT)]
        a = Member(log, bans)
        await a.consumer.assign(range(log.partitions))
        send_fix(log, "P-4", *INSIDE)
        await a.run_until(lambda: bool(breaches(log, "KF-4")))
        before = alerts(log)
        assert "KF-4" in a.engine.states

        log.committed.clear()  # the offset commit was lost: the next owner reads from 0
        b = Member(log, bans)
        await b.consumer.assign(range(log.partitions))  # adopts from the changelog
        assert b.tally.adopted == 1
        assert "KF-4" in b.engine.states
        assert b.engine.states["KF-4"].alerts.keys() == a.engine.states["KF-4"].alerts.keys()
        send_fix(log, "P-4", *INSIDE)  # a second fix: the same episode, no new alert id
        await b.run_until(
            lambda: b.hot.done.get(TopicPartition(NAMES.positions, partition_for("P-4"))) == 2
        )
        assert breaches(log, "KF-4") == {
            a_["alert_id"] for a_ in before if a_["kind"] == "zone_breach"
        }
        # the first fix was skipped by its marker, not decided twice
        decided = sum(n for topic, outcome, n in b.tally.records if topic == POSITIONS)
        assert decided == 1

    run(go())


def test_revoking_commits_first_and_then_nothing_is_owned() -> None:
    async def go() -> None:
        log = MemoryLog()
        w = Member(log, [ban("KF-5", "P-5", "V-5", LON, LAT)])
        await w.consumer.assign(range(log.partitions))
        send_fix(log, "P-5", *INSIDE)
        await w.run_until(lambda: bool(breaches(log, "KF-5")))
        committed = dict(log.committed)
        w.hot.outbox, w.hot.state_box, w.hot.consumer = w.outbox, w.state_box, w.consumer
        await w.consumer.assign([])  # everything revoked
        assert log.committed == committed  # nothing new: the last commit covered it all
        assert w.hot.done == {} and w.hot.changelog.applied == {}
        assert "KF-5" not in w.engine.states  # the routed state is dropped

    run(go())


class RebalancedMidFetch(MemoryConsumer):
    """The group rebalances while the first batch is being fetched: this member then holds
    `then` (all it had if None)."""

    rebalanced = False
    then: list[int] | None = None
    fetches = 0

    async def getmany(self, *, timeout_ms: int, max_records: int) -> Any:
        out = await super().getmany(timeout_ms=timeout_ms, max_records=max_records)
        self.fetches += 1
        if out and not self.rebalanced:
            self.rebalanced = True
            keep = sorted({tp.partition for tp in self.assignment()})
            await self.assign(keep if self.then is None else self.then)
        return out


def test_a_batch_fetched_across_a_rebalance_is_read_again_not_decided_twice() -> None:
    async def go() -> None:
        log = MemoryLog()
        w = Member(log, [ban("KF-6", "P-6", "V-6", LON, LAT)])
        w.consumer = RebalancedMidFetch(log, [NAMES.positions, ROUTED], Rebalance(w.hot))
        await w.consumer.assign(range(log.partitions))
        send_fix(log, "P-6", *INSIDE)
        await w.run_until(lambda: bool(breaches(log, "KF-6")))
        assert isinstance(w.consumer, RebalancedMidFetch) and w.consumer.rebalanced
        assert w.tally.adopted == 2
        decided = sum(n for topic, outcome, n in w.tally.records if topic == POSITIONS)
        assert decided == 1
        assert len([a for a in alerts(log) if a["ban_id"] == "KF-6"]) == 1

    run(go())


def test_a_batch_fetched_for_a_partition_given_away_meanwhile_is_not_decided() -> None:
    async def go() -> None:
        log = MemoryLog()
        w = Member(log, [ban("KF-7", "P-7", "V-7", LON, LAT)])
        consumer = RebalancedMidFetch(log, [NAMES.positions, ROUTED], Rebalance(w.hot))
        mine = partition_for("P-7")
        consumer.then = [p for p in range(log.partitions) if p != mine]
        w.consumer = consumer
        await consumer.assign(range(log.partitions))
        send_fix(log, "P-7", *INSIDE)
        await w.run_until(lambda: consumer.rebalanced and consumer.fetches >= 5)
        assert alerts(log) == []  # its new owner decides it, from the last commit
        assert not [t for t in w.tally.records if t[0] == POSITIONS]
        assert TopicPartition(NAMES.positions, mine) not in w.hot.done

    run(go())


def test_a_member_adopts_only_the_state_of_the_partitions_it_is_given() -> None:
    async def go() -> None:
        log = MemoryLog()
        persons = ["P-8", "P-9", "P-10", "P-11", "P-12"]
        by_partition: dict[int, str] = {}
        for p in persons:
            by_partition.setdefault(partition_for(p), p)
        assert len(by_partition) >= 2, "pick persons on two partitions"
        (pa, a_person), (_, b_person) = sorted(by_partition.items())[:2]
        bans = [ban(f"KF-{p}", p, f"V-{p}", LON, LAT) for p in (a_person, b_person)]
        first = Member(log, bans)
        await first.consumer.assign(range(log.partitions))
        for p in (a_person, b_person):
            send_fix(log, p, *INSIDE)
        await first.run_until(
            lambda: bool(breaches(log, f"KF-{a_person}") and breaches(log, f"KF-{b_person}"))
        )
        second = Member(log, bans)
        await second.consumer.assign([pa])
        assert set(second.engine.states) == {f"KF-{a_person}"}
        assert set(second.hot.changelog.applied) == {f"f:{pa}"}

    run(go())


class Exploding(Observer):
    def on_output(self, output: Any) -> None:
        raise RuntimeError("a metrics bug")


def test_an_observer_that_raises_stops_neither_the_others_nor_the_worker() -> None:
    async def go() -> None:
        log = MemoryLog()
        w = Member(log, [ban("KF-13", "P-13", "V-13", LON, LAT)], first=Exploding())
        outputs: list[Any] = []

        class Seen(Observer):
            def on_output(self, output: Any) -> None:
                outputs.append(output)

        w.observers.add(Seen())
        await w.consumer.assign(range(log.partitions))
        send_fix(log, "P-13", *INSIDE)
        await w.run_until(lambda: bool(breaches(log, "KF-13")))
        assert any(topic == NAMES.alerts for topic, _, _ in outputs)

    run(go())
