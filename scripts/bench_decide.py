"""Per-fix CPU of the hot loop's decide path (`HotLoop.process`) on the memory driver.

    NP=200 REP=5 python3 scripts/bench_decide.py     # from the repository root

NP restrained persons with one ban each (half of them inside their zone: open breaches),
5,000 fixes in batches of up to 2,000; best of REP runs, CPU time of `process` only.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

sys.path.insert(0, ".")

from streams.worker.memory import MemoryLog
from tests.streams.test_worker_inprocess import FAR, INSIDE, LAT, LON, Member, send_fix
from tests.streams.workers import ban

N_PERSONS = int(os.environ.get("NP", 200))
N_FIXES = 5000
REP = int(os.environ.get("REP", 3))


async def once() -> float:
    log = MemoryLog()
    bans = [ban(f"KF-{i}", f"P-{i}", f"V-{i}", LON + i * 0.01, LAT) for i in range(N_PERSONS)]
    w = Member(log, bans)
    await w.consumer.assign(range(log.partitions))
    for k in range(N_FIXES):
        i = k % N_PERSONS
        base = INSIDE if i % 2 else FAR
        send_fix(log, f"P-{i}", base[0], base[1] + i * 0.01 + (k % 7) * 1e-5)
    w.hot.outbox, w.hot.state_box, w.hot.consumer = w.outbox, w.state_box, w.consumer
    cpu, n = 0.0, 0
    while batch := await w.consumer.getmany(timeout_ms=0, max_records=2000):
        records = [r for rs in batch.values() for r in rs]
        t = time.process_time()
        w.hot.process(records, 0.0, set(batch))
        cpu += time.process_time() - t
        n += len(records)
        await w.outbox.ship()
    assert n == N_FIXES
    return cpu / n * 1e6


if __name__ == "__main__":
    best = min(asyncio.run(once()) for _ in range(REP))
    print(
        f"process(): {best:.1f} us CPU per fix (best of {REP}, {N_FIXES} fixes, {N_PERSONS} bans)"
    )
