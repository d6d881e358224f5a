"""A short soak: ~200 fixes/s for SOAK_S seconds through two workers, a third added and
removed, one SIGKILL; per window: fix->alert p50/p99 (breach fix event time -> the alert's
first revision read back by a consumer that does not dedupe), duplicates, lag, RSS and CPU of
the workers and the broker. Zero lost.

    BANWATCH_SOAK_S=1800 python3 -m pytest -s tests/chaos/test_soak.py   # the long version

Knobs (scripts/soak.sh sets them): BANWATCH_SOAK_S (100), BANWATCH_SOAK_WINDOW_S (25),
BANWATCH_SOAK_RATE (fixes/s, 200), BANWATCH_SOAK_BOOTSTRAP (a running broker, e.g.
scripts/apache-kafka/run.sh's Apache Kafka, instead of an embedded Tansu), BANWATCH_SOAK_BROKER_PID
(its process, for the broker columns), BANWATCH_SOAK_SESSION_S (the workers' group session:
2 s on the embedded broker, 6 s on an external one, Kafka's minimum by default). On the
embedded broker the workers get `banwatch up`'s hot fetch wait there (100 ms) unless
BANWATCH_HOT_FETCH_WAIT_MS is set.
The fault plan comes from the length and the window (`harness.soak_plan`).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from streams.cli.up import EMBEDDED_HOT_FETCH_WAIT_MS
from streams.kafka.blocking import follow
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.topics import ensure_topics
from tests.chaos.harness import (
    Background,
    Row,
    Workload,
    all_opened,
    cpu_s,
    metrics_url,
    play,
    rss_mb,
    scrape,
    soak_plan,
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
RATE = float(os.environ.get("BANWATCH_SOAK_RATE", "200"))
BOOTSTRAP = os.environ.get("BANWATCH_SOAK_BOOTSTRAP", "")
BROKER_PID = int(os.environ.get("BANWATCH_SOAK_BROKER_PID", "0")) or None
SESSION_S = os.environ.get("BANWATCH_SOAK_SESSION_S", "6" if BOOTSTRAP else "2")
BANS = 40
# RATE fixes/s in all: every breach step is followed by FILLER fixes of persons under no ban
FILLER = int(SOAK_S * RATE / (5 * BANS))
# More than CI's 100 per 0.5 s step is spread over the step, so that fixes arrive at RATE
# as devices send them, not in one burst per step (CI's version sends as it always did)
PACED = FILLER > 100


@dataclass
class Sampled:
    t: float  # s since the feeder started
    lag: float  # worker b's consumer lag
    worker_rss: float  # the largest live worker's RSS, MB
    broker_rss: float
    worker_cpu: dict[int, float]  # pid -> CPU s so far, live workers
    broker_cpu: dict[int, float]
    load: float  # the machine's 1-minute load average


def cores(samples: list[Sampled], lo: float, hi: float, broker: bool) -> float:
    """CPU cores used in [lo, hi): the growth of user + system time of every process sampled
    in the window (a process first seen in it counts from 0: it started there) over the time
    between the last sample before the window (or its first) and its last."""
    inside = [s for s in samples if lo <= s.t < hi]
    if not inside:
        return float("nan")
    before = [s for s in samples if s.t < lo]
    base = before[-1] if before else inside[0]
    span = inside[-1].t - base.t
    if span <= 0:
        return float("nan")
    last: dict[int, float] = {}
    for s in inside:
        last.update(s.broker_cpu if broker else s.worker_cpu)
    first = base.broker_cpu if broker else base.worker_cpu
    return sum(v - first.get(pid, 0.0) for pid, v in last.items()) / span


@pytest.fixture
def soak_broker() -> Iterator[tuple[str, int | None]]:
    """(bootstrap, broker pid): BANWATCH_SOAK_BOOTSTRAP's broker, or an embedded one."""
    if BOOTSTRAP:
        yield BOOTSTRAP, BROKER_PID
        return
    with EmbeddedBroker(free_port()) as running:
        yield running.bootstrap, running.pid


def nan_max(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return max(real, default=float("nan"))


def test_soak_with_a_worker_added_removed_and_killed(
    soak_broker: tuple[str, int | None], report: list[Row]
) -> None:
    bootstrap, broker_pid = soak_broker
    prefix = f"s{uuid.uuid4().hex[:6]}."
    if BOOTSTRAP:  # a real Kafka creates no topic on produce (docker-compose.yml)
        ensure_topics(bootstrap, prefix)
    work = Workload("S", BANS)
    feed = Feed(bootstrap, prefix)
    session = {"BANWATCH_BROKER_SESSION_TIMEOUT_S": SESSION_S}
    if SESSION_S != "2":
        session["BANWATCH_BROKER_HEARTBEAT_S"] = "1"
    if not BOOTSTRAP and "BANWATCH_HOT_FETCH_WAIT_MS" not in os.environ:
        # the workers as `banwatch up` runs them on the embedded broker (docs/reliability.md:
        # with the 10 ms of a real broker, Tansu saturated after 5 minutes at 1,000 fixes/s)
        session["BANWATCH_HOT_FETCH_WAIT_MS"] = str(EMBEDDED_HOT_FETCH_WAIT_MS)
    workers = {n: WorkerProc(bootstrap, prefix, **session) for n in ("a", "b", "c")}
    first_seen: dict[str, float] = {}  # alert id -> when its seq 1 was read
    seen = Counter[tuple[str, int]]()
    samples: list[Sampled] = []
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
            wcpu = {p: c for p in pids if (c := cpu_s(p)) is not None}
            bcpu = {} if (c := cpu_s(broker_pid)) is None or broker_pid is None else {broker_pid: c}
            samples.append(
                Sampled(
                    time.time() - t0,
                    lag,
                    max((rss_mb(p) for p in pids), default=float("nan")),
                    rss_mb(broker_pid),
                    wcpu,
                    bcpu,
                    os.getloadavg()[0],
                )
            )

    events: list[tuple[float, str]] = []
    fed: list[float] = []  # seconds the feeder took, records it sent

    def feed_all() -> None:
        start, before = time.monotonic(), work.sent
        play(work, feed, SOAK_S, filler_per_step=FILLER, paced=PACED)
        fed.extend([time.monotonic() - start, work.sent - before])

    try:
        work.publish_bans(feed)
        workers["a"].start(timeout_s=90)
        workers["b"].start(timeout_s=90)
        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=sample, daemon=True).start()
        feeder = Background(feed_all)
        t0 = time.time()
        feeder.start()
        for at, what in soak_plan(SOAK_S, WINDOW_S):
            delay = t0 + at - time.time()
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
            events.append((time.time() - t0, what))
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
    feed_s, feed_n = fed or [float("nan"), float("nan")]
    lines = [
        f"soak {SOAK_S:.0f} s at {RATE:.0f} fixes/s requested ({work.sent} records); the feeder "
        f"sent {feed_n:.0f} in {feed_s:.0f} s = {feed_n / feed_s:.0f}/s; broker: "
        f"{bootstrap + ' (external)' if BOOTSTRAP else 'embedded Tansu'}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs; "
        f"events: {', '.join(f'{at:.0f} s {what}' for at, what in events)}",
        "| window | events | breaches opened | p50 ms | p99 ms | duplicates read | lag max "
        "| worker RSS max MB | workers CPU cores | broker RSS MB | broker CPU cores "
        "| load (1 min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    dup_by_window = Counter(int((d - t0) // WINDOW_S) for d in dups)
    windows = int(SOAK_S // WINDOW_S) + 1
    for wi in range(windows):
        lat = sorted(
            (first_seen[a] - o.timestamp()) * 1000
            for a, o in opened.items()
            if a in first_seen and int((o.timestamp() - t0) // WINDOW_S) == wi
        )
        lo, hi = wi * WINDOW_S, (wi + 1) * WINDOW_S
        sm = [s for s in samples if lo <= s.t < hi]
        q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
        done = "; ".join(f"{what} at {at:.0f} s" for at, what in events if lo <= at < hi)
        load = statistics.fmean(s.load for s in sm) if sm else float("nan")
        lines.append(
            f"| {lo:.0f}-{hi:.0f} s | {done} | {len(lat)} | {q[49]:.0f} "
            f"| {q[98]:.0f} | {dup_by_window[wi]} "
            f"| {nan_max([s.lag for s in sm]):.0f} "
            f"| {nan_max([s.worker_rss for s in sm]):.0f} "
            f"| {cores(samples, lo, hi, broker=False):.2f} "
            f"| {nan_max([s.broker_rss for s in sm]):.0f} "
            f"| {cores(samples, lo, hi, broker=True):.2f} | {load:.1f} |"
        )
    print("\n".join(lines))
    report.append(
        Row(
            f"soak {SOAK_S:.0f} s, ~{RATE:.0f} fixes/s, a worker added and removed, one SIGKILL",
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
