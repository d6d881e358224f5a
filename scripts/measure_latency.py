"""Fix→alert latency through the embedded broker and one `banwatch worker` process.

    python3 scripts/measure_latency.py [--rate 100] [--seconds 30]

Publishes one ban per violating fix, then fixes at a steady rate for a while (every tenth one
inside its ban's home zone, the others far away); times each violating fix from its send to
the moment its alert is read back from `alerts`. Also reports the worker's start → ready.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker, free_port
from tests.streams.workers import WorkerProc, ban, fix, ts

LAT, LON = 59.19, 17.60


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    n = int(args.rate * args.seconds)
    violating = list(range(0, n, 10))
    with EmbeddedBroker(free_port()) as broker:
        prefix = f"lat{uuid.uuid4().hex[:6]}."
        t0 = time.monotonic()
        worker = WorkerProc(
            broker.bootstrap,
            prefix,
            BANWATCH_BROKER_SESSION_TIMEOUT_S="6",
            BANWATCH_BROKER_HEARTBEAT_S="1",
        ).start()
        start_to_ready = time.monotonic() - t0
        producer = make_producer(broker.bootstrap)
        for i in violating:
            b = ban(
                f"KF-L{i}", f"P-L{i}", f"P-L{i}V", LON + 0.004 * (i % 100), LAT + 0.004 * (i // 100)
            )
            produce_json(producer, prefix + "contact-bans", b["ban_id"], b)
        producer.flush()
        time.sleep(2.0)
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

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(1.0)
        sent: dict[str, float] = {}
        period = 1.0 / args.rate
        begin = time.monotonic()
        for i in range(n):
            target = begin + i * period
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if i % 10 == 0:
                lon, lat = LON + 0.004 * (i % 100) + 0.001, LAT + 0.004 * (i // 100) + 0.001
                f = fix(f"P-L{i}", f"EM-L{i}", lat, lon, ts())
            else:
                f = fix(f"P-N{i}", f"EM-N{i}", LAT - 1.0, LON, ts())
            sent_at = time.time()
            produce_json(producer, prefix + "positions", f["person_id"], f)
            producer.flush()  # send now: the latency measured is the service's, not batching's
            if i % 10 == 0:
                sent[f["device_id"]] = sent_at
        deadline = time.monotonic() + 15
        while len(seen) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        worker.stop()
        lat_ms = sorted((seen[d] - s) * 1000 for d, s in sent.items() if d in seen)
        missing = len(sent) - len(lat_ms)
        q = statistics.quantiles(lat_ms, n=100)
        print(f"worker start -> ready: {start_to_ready:.1f} s (session timeout 6 s)")
        print(
            f"rate {args.rate:.0f} fixes/s for {args.seconds:.0f} s: {len(lat_ms)} alerts timed, "
            f"{missing} missing"
        )
        print(
            f"fix -> alert latency: p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {lat_ms[-1]:.1f} ms"
        )
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
