"""Produce → consume latency on the embedded broker alone, by age of the topic.

    python3 scripts/tansu_fetch_latency.py [--rate 1000] [--seconds 40]

One aiokafka producer (no linger) writes 200-byte records to a fresh 4-partition topic at a
steady rate; one aiokafka group consumer with the worker's hot-path settings (10 ms fetch
wait) reads them. Prints the latency (record timestamp → read) per 5 s window. No banwatch
code is involved: this is the floor under `latency_p99_ms` in `banwatch bench`, and how it
moves as the partitions grow (Tansu's in-memory storage: see docs/bench.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaProducer

from streams.kafka import clients
from streams.kafka.broker import EmbeddedBroker, free_port


async def run(rate: float, seconds: float) -> None:
    with EmbeddedBroker(free_port()) as broker:
        boot = broker.bootstrap
        producer = AIOKafkaProducer(bootstrap_servers=boot, linger_ms=0)
        await producer.start()
        for i in range(8):  # creates the topic (auto-create: 4 partitions here)
            await producer.send_and_wait("probe", b"x", key=str(i).encode())
        consumer = clients.group_consumer(boot, "probe-reader", {}, 2.0, 0.5)
        consumer.subscribe(["probe"])
        await consumer.start()
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        series: list[tuple[float, float]] = []

        async def read() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=50)
                now = time.time() * 1000
                for records in batches.values():
                    series.extend((now, now - r.timestamp) for r in records)

        reader = asyncio.create_task(read())
        t0, n = time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            n += 1
            await producer.send("probe", b"y" * 200, key=str(n).encode())
            await asyncio.sleep(max(0.0, t0 + n / rate - time.monotonic()))
        await asyncio.sleep(1.0)
        reader.cancel()
        await consumer.stop()
        await producer.stop()
    start = series[0][0]
    for w in range(int(seconds // 5)):
        ms = sorted(lat for at, lat in series if w * 5000 <= at - start < (w + 1) * 5000)
        if ms:
            p50, p99 = ms[len(ms) // 2], ms[int(len(ms) * 0.99)]
            span = f"{w * 5:>3}-{w * 5 + 5} s"
            print(f"{span}: {len(ms):>6} records, p50 {p50:6.1f} ms, p99 {p99:6.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=40.0)
    args = ap.parse_args()
    asyncio.run(run(args.rate, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
