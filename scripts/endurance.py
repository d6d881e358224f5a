"""A broker's endurance: fix -> alert latency and broker memory by age of the log.

    python3 scripts/endurance.py [--levels 0,36000,72000,144000] [--probes 40]
    python3 scripts/endurance.py --days 1,7,30 --bootstrap 127.0.0.1:19092 --broker-pid N \
        --log-dir DIR --batch 500   # an external broker (scripts/apache-kafka/run.sh)

One embedded Tansu broker and one `banwatch worker` process. The `positions` partitions are
filled, level by level, with single-record batches of fixes far from every zone (what a pilot
of 200 monitored persons with a fix every 30 s writes: 576k fixes a day, ~144k batches per
partition), while the worker runs and reads them. At each level, `--probes` violating fixes
(each of a person with its own ban) are sent one every 0.5 s and timed from send to the alert
read back from `alerts`; the broker's RSS and the worker's are read from /proc. A level is
the number of batches written to each `positions` partition since the start.

Not in CI: a level of 144k takes minutes here.

`--days` gives the levels in days of a pilot instead, and fills them as the pilot would: 200
monitored persons, each under a ban of its own (published first), 576k fixes a day spread
round-robin over them and the 4 partitions (144k a partition a day), and one fix in
`--breach-every` (1,920: 300 a day) inside its person's zone, so that the worker writes the
alerts and tasks a pilot does (a few hundred a day) on their own topics. `--batch` sends the
preload in batches of that many records a partition: a pilot writes single-record batches
(the default, and what the embedded broker's fetch cost grows with), but Kafka finds a fetch
offset through its offset index whatever the batches, so batching only shortens the preload
there. After each level the script waits until the worker's lag on `positions` is back to 0
(the worker reads and commits the whole preload, as in a pilot) and reports how long it took.
`--bootstrap` (with `--broker-pid` for RSS and CPU, `--log-dir` for the size on disk) measures
a broker that is already running instead of starting an embedded Tansu; the topics are
created first (a real Kafka creates none on produce).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaProducer

from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.topics import ensure_topics
from tests.chaos.harness import cpu_s, metrics_url, rss_mb, scrape, total
from tests.streams.workers import WorkerProc, ban, fix, ts

LAT, LON = 59.19, 17.60
PARTITIONS = 4
PILOT_PERSONS = 200
FIXES_A_DAY = PILOT_PERSONS * 24 * 3600 // 30  # a fix every 30 s: 576,000
PILOT_LAT = LAT + 1.0  # the pilot's zones, apart from the probes'


def pilot_ban(i: int) -> dict[str, Any]:
    return ban(
        f"KF-PIL{i}", f"P-PIL{i}", f"P-PIL{i}V", LON + 0.01 * (i % 20), PILOT_LAT + 0.01 * (i // 20)
    )


def background_fix(p: int, i: int, pilot: bool, breach_every: int) -> tuple[bytes, bytes]:
    """The `i`-th preload record of partition `p`: a fix far from every zone (of a pilot
    person under a ban, or of a person under none), or, every `breach_every`-th in a pilot,
    one inside its person's zone (each partition gets a quarter of the fixes and of the
    breaches, so `breach_every` counts a partition's records too)."""
    if not pilot:
        person = f"P-BG{i % 50}-{p}"
        return person.encode(), json.dumps(
            fix(person, "EM" + person[1:], LAT - 1.0, LON, ts())
        ).encode()
    per = PILOT_PERSONS // PARTITIONS  # persons n with n % 4 == p, round-robin
    inside = breach_every > 0 and i % breach_every == breach_every - 1
    n = p + PARTITIONS * ((i // breach_every) % per if inside else i % per)
    person = f"P-PIL{n}"
    lat, lon = PILOT_LAT + 0.01 * (n // 20) - 0.1, LON + 0.01 * (n % 20)  # ~11 km south of it
    device = f"EM-PIL{n}"
    if inside:
        # In its home zone: a breach, ended by the person's next fixes. From a device of its
        # own: the preload packs a day into seconds, and a jump of 11 km from the tag's last
        # fix milliseconds earlier would be judged implausible (max_speed_mps), not a breach.
        lat += 0.1 + 0.001
        lon += 0.001
        device = f"EM-PIL{n}-{p}-{i}"
    return person.encode(), json.dumps(fix(person, device, lat, lon, ts())).encode()


async def preload(
    bootstrap: str,
    topic: str,
    first: int,
    per_partition: int,
    batch: int,
    pilot: bool,
    breach_every: int,
) -> float:
    """`per_partition` records into every partition, numbered from `first`; `batch` 1: single-
    record batches (one send in flight per partition, so none is batched with another), else
    up to `batch` records sent together per partition. Returns seconds taken."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=0 if batch == 1 else 20,
        max_batch_size=16384 if batch == 1 else max(16384, batch * 400),
        acks=1,
    )
    await producer.start()
    t0 = time.monotonic()
    try:

        async def one(p: int) -> None:
            for i0 in range(first, first + per_partition, batch):
                futures = []
                for i in range(i0, min(i0 + batch, first + per_partition)):
                    key, value = background_fix(p, i, pilot, breach_every)
                    futures.append(await producer.send(topic, value, key=key, partition=p))
                await asyncio.gather(*futures)

        await asyncio.gather(*(one(p) for p in range(PARTITIONS)))
    finally:
        await producer.stop()
    return time.monotonic() - t0


def cpu_or_nan(pid: int | None) -> float:
    c = cpu_s(pid)
    return float("nan") if c is None else c


def du_mb(path: str | None) -> float:
    if not path:
        return float("nan")
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True, check=False)
    try:
        return int(out.stdout.split()[0]) / 1024
    except (IndexError, ValueError):
        return float("nan")


def positions_lag(worker: WorkerProc) -> float:
    try:
        return total(scrape(metrics_url(worker)), "banwatch_consumer_lag", topic="positions")
    except Exception:  # between two refreshes, or the worker is busy: no figure
        return float("nan")


def wait_caught_up(worker: WorkerProc, limit_s: float) -> float:
    """Seconds until the worker's lag on `positions` reads 0 twice in a row (or `limit_s`)."""
    t0 = time.monotonic()
    zeros = 0
    while time.monotonic() - t0 < limit_s:
        zeros = zeros + 1 if positions_lag(worker) == 0 else 0
        if zeros >= 2:
            break
        time.sleep(2.0)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="0,36000,72000,144000", help="records a partition")
    ap.add_argument("--days", default="", help="levels in pilot days instead, e.g. 1,7,30")
    ap.add_argument("--breach-every", type=int, default=1920, help="with --days: 300 a day")
    ap.add_argument("--batch", type=int, default=1, help="preload records per batch")
    ap.add_argument("--probes", type=int, default=40)
    ap.add_argument("--fetch-wait-ms", type=int, default=None, help="hot fetch wait (ms)")
    ap.add_argument("--wait", type=float, default=60.0, help="s after the last probe")
    ap.add_argument("--catch-up", type=float, default=3600.0, help="s to wait for lag 0")
    ap.add_argument("--bootstrap", default="", help="a running broker instead of Tansu")
    ap.add_argument("--broker-pid", type=int, default=None, help="its pid (RSS, CPU)")
    ap.add_argument("--log-dir", default="", help="its log dir (size on disk)")
    args = ap.parse_args()
    pilot = bool(args.days)
    if pilot:
        days = [float(x) for x in args.days.split(",")]
        levels = [round(d * FIXES_A_DAY / PARTITIONS) for d in days]
    else:
        levels = [int(x) for x in args.levels.split(",")]
    with contextlib.ExitStack() as stack:
        if args.bootstrap:
            bootstrap, broker_pid = args.bootstrap, args.broker_pid
            name = f"broker at {bootstrap}"
        else:
            embedded = stack.enter_context(EmbeddedBroker(free_port()))
            bootstrap, broker_pid, name = embedded.bootstrap, embedded.pid, "Tansu"
        run(args, bootstrap, broker_pid, name, levels, pilot)
    return 0


def run(
    args: argparse.Namespace,
    bootstrap: str,
    broker_pid: int | None,
    name: str,
    levels: list[int],
    pilot: bool,
) -> None:
    prefix = f"end{uuid.uuid4().hex[:6]}."
    if args.bootstrap:
        ensure_topics(bootstrap, prefix)
    worker = WorkerProc(
        bootstrap,
        prefix,
        BANWATCH_BROKER_SESSION_TIMEOUT_S="10",
        BANWATCH_BROKER_HEARTBEAT_S="1",
        **({"BANWATCH_HOT_FETCH_WAIT_MS": str(args.fetch_wait_ms)} if args.fetch_wait_ms else {}),
    ).start(120)
    wpid = worker.proc.pid if worker.proc is not None else None
    producer = make_producer(bootstrap)
    if pilot:
        for i in range(PILOT_PERSONS):
            b = pilot_ban(i)
            produce_json(producer, prefix + "contact-bans", b["ban_id"], b)
        producer.flush()
    seen: dict[str, float] = {}
    pilot_alerts: set[str] = set()  # the preload's own breaches' alerts
    stop = threading.Event()

    def read() -> None:
        for rec in follow(bootstrap, prefix + "alerts", False):
            if rec.value is not None:
                a = json.loads(rec.value)
                if a.get("kind") == "zone_breach" and a.get("seq") == 1:
                    seen.setdefault(a["device_id"], time.time())
                    if str(a["device_id"]).startswith("EM-PIL"):
                        pilot_alerts.add(a["alert_id"])
            if stop.is_set():
                return

    threading.Thread(target=read, daemon=True).start()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {name}; hot fetch wait "
        f"{args.fetch_wait_ms or 'default'} ms; preload batches of {args.batch} record(s)"
        f"{f'; a pilot, a breach every {args.breach_every} fixes' if pilot else ''}"
        f"; alerts waited for {args.wait:.0f} s after the last probe; {os.cpu_count()} CPUs"
    )
    print(
        "| records per positions partition | pilot days | preload s | preload fixes/s "
        "| catch-up s | pilot alerts | probes | alerts | within 1 s | p50 ms | p99 ms | max ms "
        "| broker RSS MB | log dir MB | broker CPU cores | worker RSS MB | load (1 min) |"
    )
    print("|" + "---:|" * 17)
    written = 0
    for level in levels:
        took = caught = 0.0
        added = level - written
        if level > written:
            took = asyncio.run(
                preload(
                    bootstrap,
                    prefix + "positions",
                    written,
                    added,
                    args.batch,
                    pilot,
                    args.breach_every,
                )
            )
            written = level
        if pilot or args.bootstrap:
            caught = wait_caught_up(worker, args.catch_up)
        else:
            time.sleep(3.0)  # the worker reads what was preloaded
        sent: dict[str, float] = {}
        c0, t0 = cpu_or_nan(broker_pid), time.monotonic()
        for j in range(args.probes):
            k = f"{level}-{j}"
            b = ban(
                f"KF-E{k}", f"P-E{k}", f"P-E{k}V", LON + 0.01 * (j % 20), LAT + 0.01 * (j // 20)
            )
            produce_json(producer, prefix + "contact-bans", b["ban_id"], b)
            producer.flush()
            time.sleep(0.25)
            f = fix(
                f"P-E{k}",
                f"EM-E{k}",
                LAT + 0.01 * (j // 20) + 0.001,
                LON + 0.01 * (j % 20) + 0.001,
                ts(),
            )
            sent[f["device_id"]] = time.time()
            produce_json(producer, prefix + "positions", f["person_id"], f)
            producer.flush()
            time.sleep(0.25)
        deadline = time.monotonic() + args.wait
        while len([d for d in sent if d in seen]) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
        cpu = (cpu_or_nan(broker_pid) - c0) / (time.monotonic() - t0)
        lat = sorted((seen[d] - s) * 1000 for d, s in sent.items() if d in seen)
        if len(lat) >= 2:
            q = statistics.quantiles(lat, n=100)
            p50, p99, mx = f"{q[49]:.0f}", f"{q[98]:.0f}", f"{lat[-1]:.0f}"
        else:
            p50 = p99 = mx = "-"
        fast = sum(1 for x in lat if x <= 1000)
        rate = PARTITIONS * added / took if took else float("nan")
        print(
            f"| {level:,} | {level * PARTITIONS / FIXES_A_DAY:.2f} | {took:.0f} | {rate:.0f} "
            f"| {caught:.0f} | {len(pilot_alerts)} | {len(sent)} | {len(lat)} | {fast} "
            f"| {p50} | {p99} | {mx} "
            f"| {rss_mb(broker_pid):.0f} | {du_mb(args.log_dir):.0f} | {cpu:.2f} "
            f"| {rss_mb(wpid):.0f} | {os.getloadavg()[0]:.1f} |",
            flush=True,
        )
    stop.set()
    worker.stop()


if __name__ == "__main__":
    sys.exit(main())
