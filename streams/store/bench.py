"""How many records a second the record-store sink stores, against the embedded broker.

`python3 -m streams.store.bench [--records N] [--database-url URL]`: starts a Tansu broker,
publishes N alert revisions shaped like the worker's (with a position and recommended units),
then runs the sink from the beginning of the topic and times it until it has committed every
record (written to the database, then offsets). SQLite in a temporary directory unless
`--database-url`. Prints one JSON line.
Reading from a preloaded topic measures the sink's own ceiling, not the worker's output rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta

from kafka import KafkaProducer

from config.settings import Settings
from streams.kafka.blocking import encode_json
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.topics import ensure_topics
from streams.store.db import engine_for, migrate
from streams.store.sink import Sink


def _alert(i: int, t0: datetime) -> dict[str, object]:
    at = (t0 + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z")
    return {
        "alert_id": f"{int(t0.timestamp()):x}-{i // 3:024x}",  # new ids each run
        "seq": i % 3 + 1,
        "state": "open",
        "kind": "zone_breach",
        "priority": 1,
        "confidence": "confirmed",
        "ban_id": f"KF-2026-{i % 5000:04d}",
        "ban_version": 1,
        "restrained_person": f"P-{i % 5000}",
        "zone_id": "home",
        "position": {"lat": 59.1961, "lon": 17.6268, "accuracy_m": 8.5, "ts": at},
        "distance_m": 0.0,
        "opened_at": at,
        "updated_at": at,
        "reason": "fix inside zone 'home' (+50 m buffer), accuracy disc fully inside",
        "recommended_units": [{"unit_id": "SÖ-2140", "distance_m": 850.0}],
        "contract_version": 2,
    }


def measure(records: int, database_url: str | None, batch: int) -> dict[str, object]:
    with EmbeddedBroker(free_port()) as broker, tempfile.TemporaryDirectory() as data:
        ensure_topics(broker.bootstrap, "b.")
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap, acks=1, linger_ms=20, batch_size=65536
        )
        t0 = datetime.now(UTC)
        for i in range(records):
            v = _alert(i, t0)
            producer.send("b.alerts", key=str(v["alert_id"]).encode(), value=encode_json(v))
        producer.flush()
        producer.close()
        settings = Settings.model_validate(
            {
                "topic_prefix": "b.",
                "app_id": "bench",
                "data_dir": data,
                "database_url": database_url,
                "store_batch_records": batch,
                "broker_session_timeout_s": 2,
                "broker_heartbeat_s": 0.5,
            }
        )
        engine = engine_for(database_url, data)
        migrate(engine)
        sink = Sink(settings, broker.bootstrap, engine)

        async def run() -> tuple[float, float]:
            stop = asyncio.Event()
            started: list[float] = []
            task = asyncio.create_task(sink.run(stop, lambda: started.append(time.monotonic())))
            first_batch = None
            while sink.committed < records:
                if sink.committed and first_batch is None:
                    first_batch = time.monotonic()
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
            end = time.monotonic()
            stop.set()
            await task
            return end - started[0], end - (first_batch or started[0])

        total_s, writing_s = asyncio.run(run())
        return {
            "records": records,
            "database": engine.dialect.name,
            "batch": batch,
            "seconds_from_sink_ready": round(total_s, 2),
            "records_per_s": round(records / total_s),
            "seconds_from_first_commit": round(writing_s, 2),
            "records_per_s_after_first_commit": round(records / writing_s),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=50_000)
    p.add_argument("--database-url")
    p.add_argument("--batch", type=int, default=2000)
    args = p.parse_args()
    print(json.dumps(measure(args.records, args.database_url, args.batch)))


if __name__ == "__main__":
    main()
