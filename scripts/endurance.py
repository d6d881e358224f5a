"""The embedded broker's endurance: fix -> alert latency and broker memory by age of the log.

    python3 scripts/endurance.py [--levels 0,36000,72000,144000] [--probes 40]

One embedded Tansu broker and one `banwatch worker` process. The `positions` partitions are
filled, level by level, with single-record batches of fixes far from every zone (what a pilot
of 200 monitored persons with a fix every 30 s writes: 576k fixes a day, ~144k batches per
partition), while the worker runs and reads them. At each level, `--probes` violating fixes
(each of a person with its own ban) are sent one every 0.5 s and timed from send to the alert
read back from `alerts`; the broker's RSS and the worker's are read from /proc. A level is
the number of batches written to each `positions` partition since the start.

Not in CI: a level of 144k takes minutes here. The alerts and tasks a pilot writes are
a few hundred a day, not written here (their topics are not read by the hot path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaProducer

from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker, free_port
from tests.streams.workers import WorkerProc, ban, fix, ts

LAT, LON = 59.19, 17.60
PARTITIONS = 4


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / 100.0


async def preload(bootstrap: str, topic: str, per_partition: int) -> float:
    """`per_partition` single-record batches into every partition (one send in flight per
    partition, so none is batched with another); returns seconds taken."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    await producer.start()
    t0 = time.monotonic()
    try:

        async def one(p: int) -> None:
            for i in range(per_partition):
                value = json.dumps(
                    fix(f"P-BG{i % 50}-{p}", f"EM-BG{i % 50}-{p}", LAT - 1.0, LON, ts())
                ).encode()
                await producer.send_and_wait(
                    topic, value, key=f"P-BG{i % 50}-{p}".encode(), partition=p
                )

        await asyncio.gather(*(one(p) for p in range(PARTITIONS)))
    finally:
        await producer.stop()
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="0,36000,72000,144000")
    ap.add_argument("--probes", type=int, default=40)
    ap.add_argument("--fetch-wait-ms", type=int, default=None, help="hot fetch wait (ms)")
    ap.add_argument("--wait", type=float, default=60.0, help="s after the last probe")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with EmbeddedBroker(free_port()) as broker:
        prefix = f"end{uuid.uuid4().hex[:6]}."
        worker = WorkerProc(
            broker.bootstrap,
            prefix,
            BANWATCH_BROKER_SESSION_TIMEOUT_S="10",
            BANWATCH_BROKER_HEARTBEAT_S="1",
            **(
                {"BANWATCH_HOT_FETCH_WAIT_MS": str(args.fetch_wait_ms)}
                if args.fetch_wait_ms
                else {}
            ),
        ).start(120)
        wpid = worker.proc.pid if worker.proc is not None else None
        producer = make_producer(broker.bootstrap)
        seen: dict[str, float] = {}
        stop = threading.Event()

        def read() -> None:
            for rec in follow(broker.bootstrap, prefix + "alerts", False):
                if rec.value is not None:
                    a = json.loads(rec.value)
                    if a.get("kind") == "zone_breach" and a.get("seq") == 1:
                        seen.setdefault(a["device_id"], time.time())
                if stop.is_set():
                    return

        threading.Thread(target=read, daemon=True).start()
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; hot fetch wait "
            f"{args.fetch_wait_ms or 'default (10)'} ms; alerts waited for {args.wait:.0f} s "
            "after the last probe"
        )
        print(
            "| batches per positions partition | preload s | probes | alerts | within 1 s | "
            "p50 ms | p99 ms | max ms | Tansu RSS MB | Tansu CPU s/probe-s | worker RSS MB |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        written = 0
        for level in levels:
            took = 0.0
            if level > written:
                took = asyncio.run(preload(broker.bootstrap, prefix + "positions", level - written))
                written = level
            time.sleep(3.0)  # the worker reads what was preloaded
            sent: dict[str, float] = {}
            c0, t0 = cpu_s(broker.pid), time.monotonic()
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
            cpu = (cpu_s(broker.pid) - c0) / (time.monotonic() - t0)
            lat = sorted((seen[d] - s) * 1000 for d, s in sent.items() if d in seen)
            if len(lat) >= 2:
                q = statistics.quantiles(lat, n=100)
                p50, p99, mx = f"{q[49]:.0f}", f"{q[98]:.0f}", f"{lat[-1]:.0f}"
            else:
                p50 = p99 = mx = "-"
            fast = sum(1 for x in lat if x <= 1000)
            print(
                f"| {level:,} | {took:.0f} | {len(sent)} | {len(lat)} | {fast} | {p50} | {p99} "
                f"| {mx} | "
                f"{rss_mb(broker.pid):.0f} | {cpu:.2f} | {rss_mb(wpid):.0f} |",
                flush=True,
            )
        stop.set()
        worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
