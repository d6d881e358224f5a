"""A slow state recovery must not make the hot path's group loop (issue 16, "unexplained
re-publishing").

aiokafka stops a member's heartbeats while its `on_partitions_assigned` hook runs. When the
worker read the state changelog inside that hook, a recovery longer than the session timeout
(a long changelog on a loaded machine) got the member expired right after it: it decided and
published a heartbeat's worth of batches, learnt that it was out, dropped its state unwritten
(a zombie's), rejoined, recovered slowly again, and so on; every round published the same
revisions again from the last commit. `BANWATCH_TEST_RECOVERY_DELAY_S` makes every recovery
slower than the 2 s session the chaos workers run with; a second worker joins and leaves
mid-stream. A consumer that does not dedupe counts the revisions published more than once.
"""

from __future__ import annotations

import time
import uuid

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.chaos.harness import Background, Row, Workload, all_opened, play, tally
from tests.streams.workers import Feed, WorkerProc, collect

pytestmark = [pytest.mark.chaos, pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(300)]

BANS = 30
STREAM_S = 20.0
FILLER = 10  # filler fixes per breach fix: ~80 records/s
DELAY_S = 3.0  # every state recovery this much slower: past the 2 s session timeout
#: revisions a consumer may read twice: none is re-published by a join or a clean leave
#: (the revocation's commit writes the markers the next owner skips by)
MAX_DUPLICATES = 0


def adoptions(w: WorkerProc) -> int:
    return sum(1 for line in w.lines if "adopted:" in line and "partitions" in line)


@pytest.mark.parametrize("delay_s", [0.0, DELAY_S], ids=["normal", "slow-recovery"])
def test_a_slow_recovery_neither_loops_the_group_nor_republishes(
    chaos_broker: EmbeddedBroker, report: list[Row], delay_s: float
) -> None:
    bootstrap = chaos_broker.bootstrap
    prefix = f"r{uuid.uuid4().hex[:6]}."
    work = Workload("R", BANS)
    feed = Feed(bootstrap, prefix)
    env = {"BANWATCH_TEST_RECOVERY_DELAY_S": str(delay_s), "BANWATCH_LOG_LEVEL": "info"}
    a, b = WorkerProc(bootstrap, prefix, **env), WorkerProc(bootstrap, prefix, **env)
    try:
        work.publish_bans(feed)
        a.start(timeout_s=90)
        feeder = Background(lambda: play(work, feed, STREAM_S, filler_per_step=FILLER))
        t0 = time.monotonic()
        feeder.start()
        time.sleep(max(0.0, t0 + 4.0 - time.monotonic()))
        b.start(timeout_s=90)  # joins mid-stream: both recover
        time.sleep(max(0.0, t0 + 12.0 - time.monotonic()))
        assert b.stop() == 0  # leaves mid-stream: a recovers b's partitions
        feeder.join_checked(STREAM_S + 60)
        alerts = collect(
            bootstrap, prefix + "alerts", all_opened(work.expected), timeout_s=60, settle_s=3.0
        )
        assert a.proc is not None and a.proc.poll() is None, a.lines[-30:]
    finally:
        feed.close()
        for w in (a, b):
            if w.proc is not None and w.proc.poll() is None:
                w.stop()
    t = tally(alerts, work.expected)
    rounds = adoptions(a) + adoptions(b)
    report.append(
        Row(
            f"state recovery {delay_s:g} s slower (session 2 s); a second worker joins at 4 s "
            f"and leaves at 12 s of a {STREAM_S:.0f} s stream",
            work.sent,
            t.expected,
            len(t.lost),
            t.duplicated,
            f"{rounds} state adoptions (a {adoptions(a)}, b {adoptions(b)}), "
            f"{len(alerts)} alert records",
        )
    )
    print(report[-1].markdown())
    assert not t.lost, t.summary()
    assert not t.split, t.summary()
    assert t.duplicated <= MAX_DUPLICATES, t.summary()
    # a join and a leave: a adopts three times, b once (6 when the slow member was expired)
    assert rounds <= 5, rounds
