"""A short soak: ~200 fixes/s for SOAK_S seconds through two workers, a third added and
removed, one SIGKILL; per window: fix->alert p50/p99 (breach fix event time -> the alert's
first revision read back by a consumer that does not dedupe), duplicates, lag, RSS. Zero lost.

    BANWATCH_SOAK_S=1800 python3 -m pytest -s tests/chaos/test_soak.py   # the long version
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.kafka.blocking import follow
from streams.kafka.broker import EmbeddedBroker
from tests.chaos.harness import (
    Background,
    Row,
    Workload,
    all_opened,
    metrics_url,
    play,
    scrape,
    tally,
    total,
    when,
)
from tests.streams.workers import Feed, WorkerProc, collect

SOAK_S = float(os.environ.get("BANWATCH_SOAK_S", "100"))
pytestmark = [
    pytest.mark.chaos,
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.timeout(int(SOAK_S) + 500),
]

WINDOW_S = float(os.environ.get("BANWATCH_SOAK_WINDOW_S", "25"))
BANS = 40
# ~200 fixes/s in all (a long soak sends the filler in bursts between breach steps)
FILLER = int(SOAK_S * 200 / (5 * BANS))


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def test_soak_with_a_worker_added_removed_and_killed(
    chaos_broker: EmbeddedBroker, report: list[Row]
) -> None:
    bootstrap = chaos_broker.bootstrap
    prefix = f"s{uuid.uuid4().hex[:6]}."
    work = Workload("S", BANS)
    feed = Feed(bootstrap, prefix)
    workers = {n: WorkerProc(bootstrap, prefix) for n in ("a", "b", "c")}
    first_seen: dict[str, float] = {}  # alert id -> when its seq 1 was read
    seen = Counter[tuple[str, int]]()
    samples: list[tuple[float, float, float, float]] = []  # t, lag, worker RSS max, broker RSS
    stop = threading.Event()
    opened: dict[str, datetime] = {}
    dups: list[float] = []  # when a revision already read was read again

    def read() -> None:
        import json

        for rec in follow(bootstrap, prefix + "alerts", True, idle_timeout_s=None):
            if stop.is_set():
                return
            if rec.value is None:
                continue
            a = json.loads(rec.value)
            seen[(a["alert_id"], a["seq"])] += 1
            if seen[(a["alert_id"], a["seq"])] > 1:
                dups.append(time.time())
            if a.get("kind") == "zone_breach" and a["seq"] == 1:
                first_seen.setdefault(a["alert_id"], time.time())
                opened[a["alert_id"]] = when(a["opened_at"])

    t0 = time.time()

    def sample() -> None:
        while not stop.wait(5.0):
            lag = float("nan")
            with contextlib.suppress(Exception):  # b between two lives: no sample
                lag = total(scrape(metrics_url(workers["b"])), "banwatch_consumer_lag")
            pids = [w.proc.pid for w in workers.values() if w.proc and w.proc.poll() is None]
            samples.append(
                (
                    time.time() - t0,
                    lag,
                    max((rss_mb(p) for p in pids), default=float("nan")),
                    rss_mb(chaos_broker.pid),
                )
            )

    events: list[str] = []
    try:
        work.publish_bans(feed)
        workers["a"].start(timeout_s=90)
        workers["b"].start(timeout_s=90)
        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=sample, daemon=True).start()
        feeder = Background(lambda: play(work, feed, SOAK_S, filler_per_step=FILLER))
        t0 = time.time()
        feeder.start()
        plan = [(0.25, "add c"), (0.5, "remove c"), (0.75, "SIGKILL a")]
        for share, what in plan:
            delay = t0 + share * SOAK_S - time.time()
            if delay > 0:
                time.sleep(delay)
            if what == "add c":
                workers["c"].start(timeout_s=90)
            elif what == "remove c":
                workers["c"].stop()
            else:
                workers["a"].kill()
                time.sleep(1.0)
                workers["a"].start(timeout_s=90)
            events.append(f"{time.time() - t0:.0f} s {what}")
        feeder.join_checked(SOAK_S + 90)
        alerts = collect(
            bootstrap, prefix + "alerts", all_opened(work.expected), timeout_s=120, settle_s=3.0
        )
    finally:
        stop.set()
        feed.close()
        for w in workers.values():
            if w.proc is not None and w.proc.poll() is None:
                w.stop()
    t = tally(alerts, work.expected)
    lines = [
        f"soak {SOAK_S:.0f} s at ~200 fixes/s ({work.sent} records); "
        f"events: {', '.join(events)}",
        "| window | breaches opened | p50 ms | p99 ms | duplicates read | lag max "
        "| worker RSS max MB | broker RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    dup_by_window = Counter(int((d - t0) // WINDOW_S) for d in dups)
    windows = int(SOAK_S // WINDOW_S) + 1
    for wi in range(windows):
        lat = sorted(
            (first_seen[a] - o.timestamp()) * 1000
            for a, o in opened.items()
            if a in first_seen and int((o.timestamp() - t0) // WINDOW_S) == wi
        )
        sm = [s for s in samples if int(s[0] // WINDOW_S) == wi]
        q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
        lines.append(
            f"| {wi * WINDOW_S:.0f}-{(wi + 1) * WINDOW_S:.0f} s | {len(lat)} | {q[49]:.0f} "
            f"| {q[98]:.0f} | {dup_by_window[wi]} "
            f"| {max((s[1] for s in sm), default=float('nan')):.0f} "
            f"| {max((s[2] for s in sm), default=float('nan')):.0f} "
            f"| {max((s[3] for s in sm), default=float('nan')):.0f} |"
        )
    print("\n".join(lines))
    report.append(
        Row(
            f"soak {SOAK_S:.0f} s, ~200 fixes/s, a worker added and removed, one SIGKILL",
            work.sent,
            t.expected,
            len(t.lost),
            t.duplicated,
            f"{len(t.split)} episodes under two alert ids; {datetime.now(UTC):%Y-%m-%d}",
        )
    )
    assert t.expected == 2 * BANS
    assert not t.lost, t.summary()
    assert not t.split, t.summary()
