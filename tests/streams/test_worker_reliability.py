"""Reliability holes of the hot loop (issue 16), in process on the memory driver
(streams/worker/memory.py): a batch that fails half-way, and a zombie member."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts import engine as engine_module
from alerts.banstate import BanState
from alerts.engine import Incoming
from geofence.decoding import BANS, POSITIONS
from streams.worker.memory import MemoryLog
from streams.worker.routing import partition_for
from tests.streams.test_worker_inprocess import (
    INSIDE,
    LAT,
    LON,
    NAMES,
    POLICY,
    STATE,
    Member,
    alerts,
    breaches,
    run,
    send_fix,
)
from tests.streams.workers import ban


def same_partition_persons(n: int) -> list[str]:
    """`n` person ids on one partition (their fixes come in record order in one batch)."""
    target = partition_for("P-0")
    out = ["P-0"]
    i = 1
    while len(out) < n:
        if partition_for(f"P-{i}") == target:
            out.append(f"P-{i}")
        i += 1
    return out


async def run_for(m: Member, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(m.hot.run(m.consumer, m.outbox, m.state_box, stop, m.consumer.owned))
    await asyncio.sleep(seconds)
    stop.set()
    await task


def fail_on(monkeypatch: pytest.MonkeyPatch, person: str) -> None:
    """Make the engine raise, outside its detectors' isolation, on every fix of `person`."""
    real = engine_module.apply_fix

    def apply_fix(st: BanState, ctx: Any, fix: Any, *args: Any) -> Any:
        if fix.person_id == person:
            raise RuntimeError("a detector bug")
        return real(st, ctx, fix, *args)

    monkeypatch.setattr(engine_module, "apply_fix", apply_fix)  # the engine's fix path


def test_a_batch_failing_half_way_keeps_every_applied_records_outputs_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three restrained persons' fixes inside their zones in one batch; the engine raises on
    the middle one. The first and the last each open exactly one breach (the first's was lost
    before: its state had moved, its outputs were dropped and its retry saw an open episode),
    the middle one becomes an internal dead letter, and no state is applied twice."""
    a, bad, c = same_partition_persons(3)
    fail_on(monkeypatch, bad)

    async def go() -> None:
        log = MemoryLog()
        bans = [ban(f"KF-{p}", p, f"V-{p}", LON, LAT) for p in (a, bad, c)]
        w = Member(log, bans)
        await w.consumer.assign(range(log.partitions))
        for p in (a, bad, c):
            send_fix(log, p, *INSIDE)
        await w.run_until(lambda: bool(breaches(log, f"KF-{c}")))
        revisions = [x for x in alerts(log) if x["kind"] == "zone_breach"]
        for p in (a, c):
            mine = [x for x in revisions if x["ban_id"] == f"KF-{p}"]
            assert len(mine) == 1, mine  # published, and once
            assert len(w.engine.states[f"KF-{p}"].alerts) == 1
        assert not [x for x in revisions if x["ban_id"] == f"KF-{bad}"]
        dead = [r for r in log.records(NAMES.dead_letters) if r.value is not None]
        assert len(dead) == 1 and b'"internal"' in (dead[0].value or b"")
        assert w.hot.failed == 2  # the batch, then the bad record alone: state recovered twice
        # every record's marker: all three are done, none to decide again after a crash
        state = await log.read_state(STATE, {partition_for(a)})
        assert state[f"offset:f:{partition_for(a)}"]["d"] == 2

    run(go())


def test_a_zombie_publishes_nothing_and_writes_no_state_for_partitions_it_lost() -> None:
    """A member paused past its session: the group gave its partitions to another member,
    but its revocation hook has not run. What it decides then is dropped (no alert, no state,
    no offsets); the new owner decides the fix, and the breach is published once."""

    async def go() -> None:
        log = MemoryLog()
        bans = [ban("KF-Z", "P-Z", "V-Z", LON, LAT)]
        zombie = Member(log, bans)
        await zombie.consumer.assign(range(log.partitions))
        await run_for(zombie, 0.05)  # owns and runs; nothing to decide yet
        states_before = len(log.records(STATE))
        committed = dict(log.committed)
        send_fix(log, "P-Z", *INSIDE)
        zombie.consumer.lose(range(log.partitions))  # the group moved on while it slept
        owner = Member(log, bans)
        await owner.consumer.assign(range(log.partitions))
        await run_for(zombie, 0.3)  # wakes up: reads the fix, decides, commits at the end
        assert alerts(log) == []  # nothing published for a partition it lost
        assert len(log.records(STATE)) == states_before  # no state written for it
        assert log.committed == committed
        assert zombie.hot.fenced >= 1
        await owner.run_until(lambda: bool(breaches(log, "KF-Z")))
        assert len([x for x in alerts(log) if x["kind"] == "zone_breach"]) == 1
        assert [r.topic for r in log.records(POSITIONS)] == [POSITIONS]

    run(go())


def test_a_lifted_bans_state_is_tombstoned_after_its_end_of_life_revisions() -> None:
    """A ban with an open breach is lifted: its end-of-life revision reaches `alerts`, then
    the state changelog gets a tombstone for `ban:<id>` (never before the revision), and a
    member adopting the partition reads no state for it."""

    async def go() -> None:
        log = MemoryLog()
        bans = [ban("KF-L", "P-L", "V-L", LON, LAT)]
        w = Member(log, bans)
        await w.consumer.assign(range(log.partitions))
        send_fix(log, "P-L", *INSIDE)
        await w.run_until(lambda: bool(breaches(log, "KF-L")))
        p = partition_for("P-L")
        assert "ban:KF-L" in await log.read_state(STATE, {p})
        # the ban feed lifts it (as streams/worker/assembly.py `_feed` does)
        w.hot.outbox, w.hot.state_box, w.hot.consumer = w.outbox, w.state_box, w.consumer
        res = w.engine.handle(Incoming(BANS, "KF-L", None, 0, 0), datetime.now(UTC))
        assert res.outputs, "the open breach gets its end-of-life revision"
        for output in res.outputs:
            w.hot.publisher.send(output)
        async with w.hot.lock:
            await w.hot.commit_now(w.consumer)
        writes = [
            (j[1], j[3])
            for j in log.journal
            if j[0] == "write" and j[1] in (NAMES.alerts, STATE)
        ]
        resolved = max(i for i, (t, _k) in enumerate(writes) if t == NAMES.alerts)
        mine = [r for r in log.records(STATE) if r.key == b'"ban:KF-L"']
        assert mine[-1].value is None  # tombstoned
        tomb = max(i for i, (t, k) in enumerate(writes) if t == STATE and k == b'"ban:KF-L"')
        assert resolved < tomb  # the revision first
        assert alerts(log)[-1]["state"] == "resolved"
        assert "ban:KF-L" not in await log.read_state(STATE, {p})
        b = Member(log, [])
        await b.consumer.assign(range(log.partitions))
        assert "KF-L" not in b.engine.states

    run(go())


def test_the_alert_index_drops_resolved_alerts_after_their_retention() -> None:
    """The index keeps an alert's routing key while it lives; a resolved revision stamps the
    entry, and once `resolved_retention_s` has passed the id is due for deletion (a tombstone
    in the table's changelog), on its own partition only."""
    from streams.worker.agents import index_due, index_entry, index_target

    retention = POLICY.resolved_retention_s
    live = {"alert_id": "A-1", "restrained_person": "P-1", "state": "open"}
    entry = index_entry(None, live, 1000.0)
    assert entry == "P-1" and index_target(entry) == "P-1"
    assert index_entry(entry, {**live, "state": "escalated"}, 1010.0) is None  # unchanged
    resolved = index_entry(entry, {**live, "state": "resolved"}, 2000.0)
    assert index_target(resolved) == "P-1"  # acks still routed while it is kept
    others = [f"A-{i}" for i in range(2, 40)]
    items = [("A-1", resolved), *((a, "P-2") for a in others)]
    items += [(f"R-{i}", ["P-3", 2000.0]) for i in range(40)]
    p = partition_for("A-1")
    assert "A-1" not in index_due(items, p, 2000.0 + retention - 1, retention)
    due = index_due(items, p, 2000.0 + retention, retention)
    assert "A-1" in due
    assert not set(others) & set(due)  # live alerts stay
    assert all(partition_for(k) == p for k in due)
    assert {k for k in due if k.startswith("R-")} == {
        f"R-{i}" for i in range(40) if partition_for(f"R-{i}") == p
    }


def test_a_failed_batch_goes_back_to_the_last_checkpoint_and_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch decided and published but not yet checkpointed, then a batch that fails: the
    state goes back to the last checkpoint (the changelog), the consumer back to its markers,
    and the first batch is decided again. Its breach comes again with the same alert id and
    seq (what consumers already drop), never with a new one; the failing batch's good record
    opens its breach once; nothing is lost."""
    a, b, bad = same_partition_persons(3)
    fail_on(monkeypatch, bad)

    async def go() -> None:
        log = MemoryLog()
        w = Member(log, [ban(f"KF-{p}", p, f"V-{p}", LON, LAT) for p in (a, b, bad)])
        await w.consumer.assign(range(log.partitions))
        w.hot.outbox, w.hot.state_box, w.hot.consumer = w.outbox, w.state_box, w.consumer

        async def step() -> str:
            batch = await w.consumer.getmany(timeout_ms=0, max_records=100)
            for tp, rs in batch.items():
                w.hot.origin.setdefault(tp, rs[0].offset)
            verdict = w.hot.process([r for rs in batch.values() for r in rs], 0.0, set(batch))
            if verdict == "kept":
                for tp, rs in batch.items():
                    w.hot.done[tp] = rs[-1].offset + 1
            elif verdict == "failed":
                await w.hot.recover(w.consumer)
            await w.outbox.ship()
            return verdict

        send_fix(log, a, *INSIDE)
        assert await step() == "kept"  # published; no checkpoint yet
        first = breaches(log, f"KF-{a}")
        assert len(first) == 1
        send_fix(log, b, *INSIDE)
        send_fix(log, bad, *INSIDE)
        assert await step() == "failed"
        assert w.engine.states.get(f"KF-{a}") is None  # back to the last checkpoint: none
        verdicts = [await step() for _ in range(3)]
        assert verdicts == ["failed", "kept", "kept"], verdicts  # bad alone, then all again
        revisions = [x for x in alerts(log) if x["kind"] == "zone_breach"]
        for p in (a, b):
            mine = {(x["alert_id"], x["seq"]) for x in revisions if x["ban_id"] == f"KF-{p}"}
            assert len(mine) == 1, mine  # a's twice at most, with the same id and seq
        assert breaches(log, f"KF-{a}") == first
        assert len([x for x in revisions if x["ban_id"] == f"KF-{a}"]) == 2  # decided again
        dead = [r for r in log.records(NAMES.dead_letters) if r.value is not None]
        assert len(dead) == 1 and b'"internal"' in (dead[0].value or b"")
        assert w.hot.changelog.applied[f"f:{partition_for(a)}"] == 2

    run(go())


def test_a_successor_does_not_publish_again_what_a_killed_worker_published() -> None:
    """A worker that dies between commits has published the outputs of records its last
    commit does not cover; the next owner decides them again. It first reads the output topics
    from the floors of that commit and sends none of the alert revisions found there. Without
    the tail read (the control) the same revisions come twice."""

    async def scenario(look: bool) -> tuple[Counter[tuple[str, int]], int]:
        log = MemoryLog()
        people = ["P-1", "P-2", "P-3"]
        bans = [ban(f"KF-{p}", p, f"V-{p}", LON + 0.01 * i, LAT) for i, p in enumerate(people)]
        a, b = Member(log, bans), Member(log, bans)
        if look:
            a.hot.read_tail = b.hot.read_tail = log.read_tail
        await a.consumer.assign(range(log.partitions))
        send_fix(log, "P-1", INSIDE[0], INSIDE[1])
        await a.run_until(lambda: bool(breaches(log, "KF-P-1")))
        a.hot.outbox, a.hot.state_box, a.hot.consumer = a.outbox, a.state_box, a.consumer
        async with a.hot.lock:  # a commit that writes where the outputs so far landed
            await a.hot.commit_now(a.consumer)
        # then a decides and publishes two more breaches, and dies before its next commit
        for i, p in enumerate(people[1:], start=1):
            send_fix(log, p, INSIDE[0], INSIDE[1] + 0.01 * i)
        batch = await a.consumer.getmany(timeout_ms=0, max_records=100)
        async with a.hot.lock:
            a.hot.process([r for rs in batch.values() for r in rs], 0.0)
            await a.outbox.ship()
        assert breaches(log, "KF-P-2") and breaches(log, "KF-P-3")

        await b.consumer.assign(range(log.partitions))
        await b.run_until(lambda: len(b.hot.done) >= 1 and all(
            b.hot.done.get(tp, 0) >= len(log.read(tp.topic, tp.partition, 0, 1000))
            for tp in b.consumer.assignment()
        ))
        revisions = Counter((x["alert_id"], x["seq"]) for x in alerts(log))
        return revisions, b.hot.publisher.unsent

    control, unsent = run(scenario(look=False))
    assert sum(n - 1 for n in control.values()) >= 2 and unsent == 0  # the replay's duplicates
    revisions, unsent = run(scenario(look=True))
    assert sum(n - 1 for n in revisions.values()) == 0, revisions
    assert unsent >= 2
    assert len(revisions) == len(control) == 3  # the same three breaches, each once
