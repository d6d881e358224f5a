"""Stream figures for `banwatch bench`: a real broker, real worker processes, real clients.

- **Throughput** is how fast one worker drains a backlog. The bans, patrol positions and all
  fixes are published before the worker starts; the clock runs from the worker's ready line
  (bans loaded, partitions assigned) to the arrival of the alerts of four sentinel fixes, one
  per partition, published after the backlog, each inside a zone of a ban nothing else touches.
  A partition's records are processed in order, so once every sentinel's alert is out, every
  fix published before it has been processed and its outputs sent. Protected persons' fixes
  take a second hop (the worker's internal `routed` topic); the last few of those may still be
  in flight when the sentinels' alerts arrive (at most one batch).
- **Latency**: fixes at a steady rate against a running worker; a share of them (each from a
  restrained person nothing else touches, with a unique device id) lands inside a zone. Each is
  timed from just before it is handed to the producer to the moment its alert is read back
  from `alerts` by this process (so both clients' delays are in the figure).
- **Memory**: peak RSS (`VmHWM`) of a worker process once it holds every ban.

Workers run as separate processes (`banwatch worker`, or the baselines of `bench_naive`), as in
production; clients here are aiokafka, fast enough not to be what is measured.

One module over ~400 lines on purpose: one measurement (start workers, settle, drive, drain,
read back) whose steps share their timing rules; split, the rules would drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from config.topics import PARTITIONS, TopicNames
from streams.bench import workload
from streams.bench.store import StoreFigures, StoreWatch
from streams.kafka.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[2]  # the repository root (streams/bench/stream.py)
_ALL = list(range(PARTITIONS))
_partitioner = DefaultPartitioner()


def partition_of(key: str) -> int:
    """The partition Kafka's default partitioner (murmur2) gives `key`, as the worker computes."""
    return int(_partitioner(key.encode("utf-8"), _ALL, _ALL))


# ------------------------------------------------------------------ processes
def _cpu_or_none(pid: int | None) -> float | None:
    """`cpu_s(pid)`, or None without a pid or once the process is gone."""
    if pid is None:
        return None
    try:
        return cpu_s(pid)
    except (OSError, ValueError, IndexError):
        return None


def cpu_s(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Proc:
    """A worker process that prints a line starting with `ready` once it consumes."""

    def __init__(self, argv: list[str], env: dict[str, str], ready: str) -> None:
        self.argv = argv
        self.env = {**os.environ, **env}
        self.ready_prefix = ready
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.ready_at: float | None = None
        self.started_at = 0.0
        self._ready = threading.Event()

    def start(self, timeout_s: float) -> float:
        """Start and wait for the ready line; returns its `time.monotonic()`."""
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(timeout_s) or self.ready_at is None:
            tail = "\n".join(self.lines[-20:])
            self.stop()
            raise RuntimeError(f"{self.argv[-1]}: not ready in {timeout_s:.0f} s:\n{tail}")
        return self.ready_at

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(self.ready_prefix) and self.ready_at is None:
                self.ready_at = time.monotonic()
                self._ready.set()
            self.lines.append(line.rstrip())
            del self.lines[:-200]
        self._ready.set()  # exited: start() reports it

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _proc_file(self, name: str) -> str:
        return Path(f"/proc/{self.pid}/{name}").read_text()

    def cpu_s(self) -> float:
        """User + system CPU seconds the process has used so far."""
        return cpu_s(self.pid)

    def memory_mb(self, key: str = "VmHWM") -> float:
        """`VmHWM` (peak resident set) or `VmRSS` from /proc/PID/status, in MiB."""
        for line in self._proc_file("status").splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no {key} in /proc/{self.pid}/status")

    def stop(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def worker_env(bootstrap: str, prefix: str) -> dict[str, str]:
    return {
        "BANWATCH_KAFKA_BOOTSTRAP": bootstrap,
        "BANWATCH_TOPIC_PREFIX": prefix,
        "BANWATCH_BROKER_SESSION_TIMEOUT_S": "2",
        "BANWATCH_BROKER_HEARTBEAT_S": "0.5",
        "BANWATCH_LOG_LEVEL": "warn",
        "BANWATCH_METRICS_PORT": "0",
        "BANWATCH_WORKER_WEB_PORT": "0",
    }


def banwatch_worker(bootstrap: str, prefix: str) -> Proc:
    """`banwatch worker`, the production entry point (metrics included)."""
    argv = [sys.executable, "-m", "streams.cli", "worker"]
    return Proc(argv, worker_env(bootstrap, prefix), "worker: ready")


def naive_worker(bootstrap: str, prefix: str, mode: str) -> Proc:
    """A baseline app of `streams.bench.naive` (`scan`, `indexed`, `count` or `relay`)."""
    argv = [sys.executable, "-m", "streams.bench.naive", mode]
    return Proc(argv, worker_env(bootstrap, prefix), "naive: ready")


# -------------------------------------------------------------------- clients
async def _publish(bootstrap: str, topic: str, records: Iterable[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=1 << 19
    )
    await producer.start()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value, key=key.encode("utf-8")))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def publish(bootstrap: str, topic: str, records: Iterable[tuple[str, bytes]]) -> float:
    """Publish (key, value) records and wait for every ack; returns the seconds it took."""
    t0 = time.perf_counter()
    asyncio.run(_publish(bootstrap, topic, records))
    return time.perf_counter() - t0


class AlertWatch:
    """Reads `alerts` from the beginning (every partition, no group) and notes when the first
    alert naming each wanted device id arrived (`time.monotonic()`)."""

    def __init__(self, bootstrap: str, topic: str, wanted: Iterable[str]) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.wanted = set(wanted)
        self.seen: dict[str, float] = {}
        self.alerts = 0
        self.done = asyncio.Event()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Tansu does not answer a waiting fetch when records arrive (docs/faust-on-tansu.md):
            # a short wait keeps the reader from adding more than ~10 ms.
            fetch_max_wait_ms=10,
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(self.topic, p) for p in _ALL])
            while True:
                batches = await consumer.getmany(timeout_ms=50)
                now = time.monotonic()
                for records in batches.values():
                    for r in records:
                        self.alerts += 1
                        if r.value is None:
                            continue
                        device = json.loads(r.value).get("device_id")
                        if device in self.wanted and device not in self.seen:
                            self.seen[device] = now
                if self.wanted and len(self.seen) == len(self.wanted):
                    self.done.set()
        finally:
            await consumer.stop()


# ------------------------------------------------------------------ workloads
@dataclass(frozen=True, slots=True)
class Registry:
    """Every ban of the run, and the sites kept out of the background fixes: their persons'
    only fixes are the timed ones, so each opens a fresh episode (one new alert)."""

    sites: list[workload.Site]
    reserved: list[workload.Site]

    @classmethod
    def of(cls, n_bans: int, reserve: int, device_share: float) -> Registry:
        all_sites = workload.sites(n_bans, device_share=device_share)
        reserve = min(reserve, n_bans // 2)
        return cls(all_sites, all_sites[n_bans - reserve :])

    @property
    def background(self) -> list[workload.Site]:
        return self.sites[: len(self.sites) - len(self.reserved)]

    def sentinels(self) -> list[workload.Site]:
        """One reserved site per partition (by its restrained person's key)."""
        chosen: dict[int, workload.Site] = {}
        for s in self.reserved:
            chosen.setdefault(partition_of(s.restrained), s)
        if len(chosen) < PARTITIONS:
            raise ValueError("too few reserved sites to cover every partition")
        return [chosen[p] for p in _ALL]


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_prefix(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:6]}."


def setup(bootstrap: str, prefix: str, reg: Registry, patrol_cars: int) -> TopicNames:
    """Create the topics and publish every ban and patrol car (positions stamped now)."""
    ensure_topics(bootstrap, prefix)
    names = TopicNames.with_prefix(prefix)
    bans = workload.bans(reg.sites)
    publish(
        bootstrap, names.contact_bans, ((s.ban_id, b) for s, b in zip(reg.sites, bans, strict=True))
    )
    publish(bootstrap, names.patrol_positions, workload.patrols(patrol_cars, now_utc()))
    return names


def refresh_patrols(bootstrap: str, names: TopicNames, patrol_cars: int, at: datetime) -> None:
    """Publish every car's position again, stamped `at`, once the worker has settled: units
    are recommended only if their position is within `max_patrol_age_s` (120 s) of the fix,
    and a worker can take from 10 s to over 200 s to start and settle after `setup`. The
    worker's patrol feed reads 400 records in well under the second waited here."""
    publish(bootstrap, names.patrol_positions, workload.patrols(patrol_cars, at))
    time.sleep(1.0)


# ------------------------------------------------------------------ throughput
@dataclass(slots=True)
class Drain:
    fixes: int
    seconds: float  # first fix published -> last sentinel alert read
    worker_cpu_s: float  # CPU the worker process used meanwhile
    startup_s: float  # process start -> ready
    alerts: int  # alert records read meanwhile (all kinds, all revisions)
    peak_rss_mb: float
    publish_s: float  # how long handing the backlog to the broker took
    settle_s: float = 0.0  # ready -> idle (a fresh worker validates every ban first)
    store: StoreFigures | None = None  # the record-store sink meanwhile (streams/bench/store.py)

    @property
    def per_s(self) -> float:
        return self.fixes / self.seconds

    @property
    def cpu_us_per_fix(self) -> float:
        return 1e6 * self.worker_cpu_s / self.fixes


def drain(
    bootstrap: str,
    reg: Registry,
    n_fixes: int,
    start: Callable[[str], Proc],
    kind: str,
    patrol_cars: int,
    timeout_s: float,
    settle: Callable[[Proc, str], float] | None = None,
    store: bool = False,
) -> Drain:
    """Start a worker on the bans, let it settle, then publish `n_fixes` (+ sentinels) as fast
    as the producer can and time how fast the worker gets through them. With `store`, the
    record-store sink runs meanwhile and its records/s and lag are measured too."""
    prefix = new_prefix(kind)
    names = setup(bootstrap, prefix, reg, patrol_cars)
    rate = 10_000.0
    watch = StoreWatch(bootstrap, prefix) if store else None
    proc = start(prefix)
    try:
        if watch is not None:
            watch.start()
        ready = proc.start(600.0)
        settle_s = (settle or idle)(proc, prefix)
        if watch is not None:
            watch.settle()  # the bans stored before the clock runs
        # Event times end 2 s before now: none is from the future when it arrives. They are
        # stamped once the worker has settled: stamped before its start, they were as old as
        # its start and settling (25 s to 200 s), and the wall-clock escalation of every alert
        # opened on them came due at once, so the work varied with how long the start took.
        t_start = now_utc() - timedelta(seconds=n_fixes / rate + 2)
        end = t_start + timedelta(seconds=n_fixes / rate)
        refresh_patrols(bootstrap, names, patrol_cars, end)
        fixes = workload.fixes(reg.background, n_fixes, start=t_start, rate_per_s=rate)
        rnd = random.Random(3)
        sentinels = [
            workload.fix(s, end, False, True, rnd, device=f"EM-S{s.restrained[2:]}")
            for s in reg.sentinels()
        ]
        figures = asyncio.run(
            _drain(proc, bootstrap, names, [*fixes, *sentinels], timeout_s, watch)
        )
        if watch is not None:
            figures.store = watch.figures(timeout_s)
    finally:
        proc.stop()
        if watch is not None:
            watch.close()
    figures.startup_s = ready - proc.started_at
    figures.settle_s = settle_s
    return figures


def wait_idle(
    proc: Proc, window_s: float = 1.0, busy: float = 0.1, limit_s: float = 300.0
) -> float:
    """Wait until the process used less than `busy` of a core over `window_s`; returns the
    seconds waited."""
    t0 = time.monotonic()
    last = proc.cpu_s()
    while time.monotonic() - t0 < limit_s:
        time.sleep(window_s)
        now = proc.cpu_s()
        if now - last < busy * window_s:
            break
        last = now
    return time.monotonic() - t0


def idle(proc: Proc, prefix: str) -> float:
    return wait_idle(proc)


def worker_settled(bootstrap: str) -> Callable[[Proc, str], float]:
    """A fresh `banwatch worker` is settled once its check of `contact-bans` is committed."""

    def settled(proc: Proc, prefix: str) -> float:
        names = TopicNames.with_prefix(prefix)
        return wait_committed(bootstrap, f"{prefix}banwatch", names.contact_bans) + wait_idle(proc)

    return settled


def wait_committed(
    bootstrap: str, group: str, topic: str, limit_s: float = 300.0, poll_s: float = 0.5
) -> float:
    """Wait until consumer group `group` has committed the end of every partition of `topic`
    (a fresh `banwatch worker` validates every ban for dead letters before it is idle);
    returns the seconds waited."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTP

    from streams.kafka.faust_patches import exact_ends

    t0 = time.monotonic()
    tps = [KafkaTP(topic, p) for p in _ALL]
    ends = exact_ends(bootstrap, {}, tps)
    # never subscribes, so it never joins the group: it only reads the group's commits
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        while time.monotonic() - t0 < limit_s:
            if all((reader.committed(tp) or 0) >= ends[tp] for tp in tps):
                break
            time.sleep(poll_s)
    finally:
        reader.close()
    return time.monotonic() - t0


async def _drain(
    proc: Proc,
    bootstrap: str,
    names: TopicNames,
    records: list[tuple[str, bytes]],
    timeout_s: float,
    store: StoreWatch | None = None,
) -> Drain:
    sentinels = [json.loads(v)["device_id"] for _, v in records[-PARTITIONS:]]
    watch = AlertWatch(bootstrap, names.alerts, sentinels)
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(0.5)  # the reader is positioned
        cpu0 = proc.cpu_s()
        t0 = time.monotonic()
        if store is not None:
            store.mark_start()
        await _publish(bootstrap, names.positions, records)
        publish_s = time.monotonic() - t0
        try:
            await asyncio.wait_for(watch.done.wait(), timeout_s)
        except TimeoutError:
            raise RuntimeError(
                f"drain: {len(watch.seen)} of {len(sentinels)} sentinel alerts in {timeout_s:.0f} s"
            ) from None
        if store is not None:
            store.mark_worker_done()
        cpu = proc.cpu_s() - cpu0
        return Drain(
            fixes=len(records),
            seconds=max(watch.seen.values()) - t0,
            worker_cpu_s=cpu,
            startup_s=0.0,
            alerts=watch.alerts,
            peak_rss_mb=proc.memory_mb("VmHWM"),
            publish_s=publish_s,
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --------------------------------------------------------------------- latency
@dataclass(slots=True)
class Latency:
    rate_per_s: float  # asked for
    achieved_per_s: float  # what the producer managed
    seconds: float
    timed: int
    missing: int
    ms: list[float] = field(default_factory=list)
    # CPU used during the step, as a share of one core (context for the figures)
    worker_cpu_share: float | None = None
    broker_cpu_share: float | None = None

    def quantile(self, q: float) -> float:
        if not self.ms:
            return float("nan")
        xs = sorted(self.ms)
        return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def latency(
    bootstrap: str,
    reg: Registry,
    rate: float,
    seconds: float,
    warmup_s: float,
    every: int,
    patrol_cars: int,
    relay: bool = False,
    broker_pid: int | None = None,
) -> Latency:
    """Fixes at `rate` per second for `warmup_s` + `seconds`; in the timed part every
    `every`-th fix is a violation, timed from produce to its alert read back. With `relay`,
    the baseline of `bench_naive relay` (nothing decided) instead of `banwatch worker`."""
    prefix = new_prefix("relay" if relay else "latency")
    names = setup(bootstrap, prefix, reg, patrol_cars)
    proc = naive_worker(bootstrap, prefix, "relay") if relay else banwatch_worker(bootstrap, prefix)
    try:
        proc.start(600.0)
        (idle if relay else worker_settled(bootstrap))(proc, prefix)
        refresh_patrols(bootstrap, names, patrol_cars, now_utc())
        t0, w0 = time.monotonic(), proc.cpu_s()
        b0 = _cpu_or_none(broker_pid)
        lat = asyncio.run(_latency(bootstrap, names, reg, rate, seconds, warmup_s, every))
        # the whole step (warm-up, timed part, the wait for the last alerts): what the worker
        # and the broker used while the figures were taken
        took = time.monotonic() - t0
        lat.worker_cpu_share = round((proc.cpu_s() - w0) / took, 2)
        b1 = _cpu_or_none(broker_pid)
        if b0 is not None and b1 is not None:
            lat.broker_cpu_share = round((b1 - b0) / took, 2)
        return lat
    finally:
        proc.stop()


async def _latency(
    bootstrap: str,
    names: TopicNames,
    reg: Registry,
    rate: float,
    seconds: float,
    warmup_s: float,
    every: int,
) -> Latency:
    n_timed = int(rate * seconds) // every
    if n_timed > len(reg.reserved):
        raise ValueError(f"latency needs {n_timed} reserved sites, has {len(reg.reserved)}")
    targets = reg.reserved[:n_timed]
    devices = [f"EM-L{s.restrained[2:]}" for s in targets]
    watch = AlertWatch(bootstrap, names.alerts, devices)
    task = asyncio.create_task(watch.run())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    rnd = random.Random(17)
    background = reg.background
    with_device = [s for s in background if s.device]
    sent: dict[str, float] = {}
    pending = []
    total = int(rate * (warmup_s + seconds))
    warm = int(rate * warmup_s)
    timed = 0
    try:
        await asyncio.sleep(1.0)  # the reader is positioned
        begin = time.monotonic()
        i = 0
        while i < total:
            due = min(total, int((time.monotonic() - begin) * rate) + 1)
            at = now_utc()
            while i < due:
                if i >= warm and (i - warm) % every == 0 and timed < n_timed:
                    s = targets[timed]
                    key, value = workload.fix(s, at, False, True, rnd, device=devices[timed])
                    sent[devices[timed]] = time.monotonic()
                    timed += 1
                else:
                    protected = bool(with_device) and rnd.random() < 0.2
                    s = rnd.choice(with_device if protected else background)
                    key, value = workload.fix(s, at, protected, False, rnd)
                pending.append(await producer.send(names.positions, value, key=key.encode()))
                i += 1
            if len(pending) > 1000:
                await asyncio.gather(*pending)
                pending.clear()
            await asyncio.sleep(0.001)
        elapsed = time.monotonic() - begin
        await asyncio.gather(*pending)
        with contextlib.suppress(TimeoutError):  # the missing ones are reported
            await asyncio.wait_for(watch.done.wait(), 15.0)
        ms = [1000 * (watch.seen[d] - t) for d, t in sent.items() if d in watch.seen]
        return Latency(rate, total / elapsed, seconds, len(sent), len(sent) - len(ms), ms)
    finally:
        await producer.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ---------------------------------------------------------------------- memory
@dataclass(slots=True)
class Memory:
    bans: int
    peak_rss_mb: float  # over the whole life: loading and validating every ban included
    rss_mb: float  # once settled
    startup_s: float  # process start -> ready (every ban loaded)
    publish_s: float


def memory(bootstrap: str, n_bans: int, patrol_cars: int, timeout_s: float) -> Memory:
    """Peak RSS of a `banwatch worker` once it has read `n_bans` bans (and nothing else)."""
    reg = Registry.of(n_bans, 0, 0.5)
    prefix = new_prefix("memory")
    t0 = time.perf_counter()
    setup(bootstrap, prefix, reg, patrol_cars)
    publish_s = time.perf_counter() - t0
    proc = banwatch_worker(bootstrap, prefix)
    try:
        ready = proc.start(timeout_s)
        worker_settled(bootstrap)(proc, prefix)  # the check of every ban included
        return Memory(
            n_bans,
            proc.memory_mb("VmHWM"),
            proc.memory_mb("VmRSS"),
            ready - proc.started_at,
            publish_s,
        )
    finally:
        proc.stop()
