"""Baseline stream apps for `banwatch bench`: what one would write first with faust.

    python -m streams.bench.naive scan | indexed | count | relay

One plain faust agent on `positions`, per event, with no batching, no state and no tables:

- `scan` (the baseline `naive_stream_fixes_per_s`): decode the fix with pydantic, test it
  against every zone of every ban with shapely predicates (zones pre-buffered in degrees and
  prepared, as `bench_engine.loop_baseline_run`), and send one alert per hit with `await send`.
- `indexed`: the same, but only the zones of the fix's own person (a dictionary lookup): the
  per-event faust design without the linear scan.
- `count`: decode nothing, count the event: faust's own per-event cost, the ceiling of any
  per-event agent on this machine (it only looks for the bench's sentinel marker, so that the
  bench sees when it is through).

And one without faust, for latency only:

- `relay`: an aiokafka group consumer on `positions` with the hot path's settings
  (streams/worker/outbox.py) that decides nothing: it copies the device id of every bench latency
  probe (`EM-L...`) to `alerts` at once (aiokafka producer, `acks=all`, no linger). Its fix →
  alert latency is what the broker, the clients and this machine cost with no work at all:
  the floor under `latency_p99_ms`.

Alerts carry the fix's `device_id` (the bench matches its sentinels on it) and nothing of the
contract's lifecycle: no episodes, no dedup, no confidence, no patrols. The bans are read from
`contact-bans` before the agent starts. Configured like the real worker (same Tansu patches,
`BANWATCH_*` environment), and it prints `naive: ready` once it has its partitions.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from typing import Any

import faust
import shapely
from shapely.geometry import shape

from config.settings import load_settings
from config.topics import PARTITIONS, TopicNames
from geofence.records import ContactBan, LocationFix
from streams.kafka import faust_patches
from streams.kafka.blocking import follow

Zone = tuple[str, str, str, Any]  # ban_id, restrained person, zone_id, prepared geometry

MODES = ("scan", "indexed", "count", "relay")
#: The bench's latency probes carry device ids `EM-L...` (see `bench_stream._latency`).
PROBE = b'"device_id": "EM-L'
#: The bench's sentinel fixes carry device ids `EM-S...` (see `bench_stream.drain`).
SENTINEL = b'"device_id": "EM-S'


def load_zones(bootstrap: str, topic: str) -> list[Zone]:
    """Every zone of every ban on `topic`, buffered in degrees (wrong in the units by design:
    it is the first thing one writes)."""
    zones: list[Zone] = []
    for rec in follow(bootstrap, topic, True, idle_timeout_s=1.0):
        if rec.value is None:
            continue
        ban = ContactBan.model_validate_json(rec.value)
        if ban.zones is None:
            continue
        for f in json.loads(rec.value)["zones"]["features"]:
            props = f.get("properties") or {}
            g = shape(f["geometry"])
            metres = (props.get("radius_m") or 0) + (props.get("buffer_m") or 0)
            g = g.buffer(metres / 111_000.0)
            shapely.prepare(g)
            zones.append((ban.ban_id, ban.restrained_person, str(props.get("zone_id")), g))
    return zones


def build(mode: str, bootstrap: str, prefix: str, zones: list[Zone]) -> faust.App:
    settings = load_settings()
    names = TopicNames.with_prefix(prefix)
    faust_patches.apply(bootstrap)
    app = faust.App(
        f"{prefix}naive-{mode}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        processing_guarantee="at_least_once",
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_s,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )

    def raw(name: str) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    positions = raw(names.positions)
    alerts = raw(names.alerts)
    by_person: dict[str, list[Zone]] = {}
    for z in zones:
        by_person.setdefault(z[1], []).append(z)
    counted = [0]

    async def alert(fix: LocationFix, z: Zone) -> None:
        value = {
            "kind": "zone_breach",
            "ban_id": z[0],
            "restrained_person": fix.person_id,
            "zone_id": z[2],
            "device_id": fix.device_id,
            "position": {"lat": fix.lat, "lon": fix.lon, "ts": fix.ts.isoformat()},
        }
        key = f"{z[0]}|{z[2]}".encode()
        await alerts.send(key=key, value=json.dumps(value).encode())

    async def scan(stream: Any) -> None:
        async for value in stream:
            fix = LocationFix.model_validate_json(value)
            p = shapely.Point(fix.lon, fix.lat)
            for z in zones:
                if z[1] == fix.person_id and z[3].intersects(p):
                    await alert(fix, z)

    async def indexed(stream: Any) -> None:
        async for value in stream:
            fix = LocationFix.model_validate_json(value)
            p = shapely.Point(fix.lon, fix.lat)
            for z in by_person.get(fix.person_id, ()):
                if z[3].intersects(p):
                    await alert(fix, z)

    async def count(stream: Any) -> None:
        async for value in stream:
            counted[0] += 1
            if SENTINEL in value:  # the bench's end markers still get their alert
                fix = LocationFix.model_validate_json(value)
                await alert(fix, ("-", fix.person_id, "-", None))

    agent = {"scan": scan, "indexed": indexed, "count": count}[mode]
    app.agent(positions, name=f"naive-{mode}")(agent)
    return app


async def run(mode: str, bootstrap: str, prefix: str) -> None:
    zones = await asyncio.to_thread(
        load_zones, bootstrap, TopicNames.with_prefix(prefix).contact_bans
    )
    app = build(mode, bootstrap, prefix, zones)
    worker = faust.Worker(app, loglevel="WARN", override_logging=False, quiet=True, daemon=False)
    worker.spinner = None
    stop = asyncio.Event()
    await worker.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        deadline = time.monotonic() + 60
        while not (app.consumer.assignment() and not app.rebalancing):
            if time.monotonic() > deadline:
                raise TimeoutError("no partitions assigned")
            await asyncio.sleep(0.05)
        print(f"naive: ready ({mode}, {len(zones)} zones)", flush=True)
        await stop.wait()
    finally:
        await worker.stop()


async def relay(bootstrap: str, prefix: str) -> None:
    """The `relay` mode: probes copied from `positions` to `alerts`, nothing decided."""
    from streams.kafka import clients

    settings = load_settings()
    names = TopicNames.with_prefix(prefix)
    consumer = clients.group_consumer(
        bootstrap,
        f"{prefix}naive-relay",
        {},
        settings.broker_session_timeout_s,
        settings.broker_heartbeat_s,
    )
    producer = clients.batch_producer(bootstrap, f"{prefix}naive-relay", {})
    await producer.start()
    consumer.subscribe([names.positions])
    await consumer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        print("naive: ready (relay)", flush=True)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50, max_records=2000)
            for records in batches.values():
                for r in records:
                    if r.value is not None and PROBE in r.value:
                        device = json.loads(r.value)["device_id"]
                        value = json.dumps({"device_id": device}).encode()
                        await producer.send(names.alerts, value, key=device.encode())
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in MODES:
        print(f"usage: python -m streams.bench.naive {'|'.join(MODES)}", file=sys.stderr)
        return 2
    settings = load_settings()
    if settings.kafka_bootstrap is None:
        print("bench_naive: BANWATCH_KAFKA_BOOTSTRAP is not set", file=sys.stderr)
        return 2
    if argv[0] == "relay":
        asyncio.run(relay(settings.kafka_bootstrap, settings.topic_prefix))
    else:
        asyncio.run(run(argv[0], settings.kafka_bootstrap, settings.topic_prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
