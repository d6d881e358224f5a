"""Blocking kafka-python clients for short-lived commands: publish JSON records, follow a topic.

The stream worker runs on faust; `bans import`, `tail`, the demo feeder and the stream tests only
need to write a few records or watch a topic, where a plain blocking client is simpler. `follow`
never joins a consumer group: on Tansu a join costs half the session timeout, and a tail must not
take partitions away from real consumers or commit offsets for them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata

from streams.kafka.clients import follower
from streams.kafka.clients import make_producer as make_producer  # (built there, used here)


class Followed(NamedTuple):
    """One record as `follow` yields it; `value` is None for a tombstone."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def encode_json(value: object) -> bytes:
    """Compact UTF-8 JSON; NaN and infinity raise, since the contract rejects them anyway."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def produce_json(
    producer: KafkaProducer, topic: str, key: str | None, value: object
) -> FutureRecordMetadata:
    """Send `value` as JSON under `key`; `None` sends a tombstone (e.g. a lifted ban).

    Returns kafka-python's future: `.get(timeout)` waits for the broker's ack, `producer.flush()`
    waits for all of them.
    """
    return producer.send(
        topic,
        key=None if key is None else key.encode(),
        value=None if value is None else encode_json(value),
    )


def follow(
    bootstrap: str,
    topic: str,
    from_beginning: bool,
    *,
    idle_timeout_s: float | None = None,
    stop: threading.Event | None = None,
    **security: Any,
) -> Iterator[Followed]:
    """Yield every record of every partition of `topic`, from the start or from now on.

    Runs until the caller stops iterating, once no record came for `idle_timeout_s`, or once
    `stop` is set (looked at between polls, at least every 100 ms).
    Records come in offset order per partition; partitions interleave. Raises `LookupError` for
    a topic the broker does not have (it is never auto-created by a typo).
    """
    consumer = follower(bootstrap, security)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise LookupError(f"topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        else:
            for tp, end in log_end_offsets(consumer, tps).items():
                consumer.seek(tp, end)
        last_record = time.monotonic()
        while stop is None or not stop.is_set():
            batch = consumer.poll(timeout_ms=100)
            for records in batch.values():
                for r in records:
                    yield Followed(r.partition, r.offset, r.key, r.value)
            if batch:
                last_record = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - last_record >= idle_timeout_s:
                return
    finally:
        consumer.close()


def log_end_offsets(
    consumer: KafkaConsumer, tps: list[TopicPartition], timeout_s: float = 10.0
) -> dict[TopicPartition, int]:
    """The exact log end (the offset the next record will get) of each partition.

    Tansu answers ListOffsets "latest" with the newest batch's base offset + 1, short of the end
    whenever that batch holds several records (FACTS.md), so `consumer.end_offsets` cannot be
    trusted. A fetch's high watermark is exact: fetch once from the newest batch, discard what it
    returns, and keep the first high watermark seen. `consumer` must have exactly `tps` assigned
    (what it fetches is dropped) and is left positioned inside the last batch: seek afterwards.
    """
    latest = consumer.end_offsets(tps)
    earliest = consumer.beginning_offsets(tps)
    for tp in tps:
        consumer.seek(tp, max(latest[tp] - 1, earliest[tp]))
    ends: dict[TopicPartition, int] = {}
    deadline = time.monotonic() + timeout_s
    while len(ends) < len(tps):
        if time.monotonic() > deadline:
            raise KafkaTimeoutError(f"no high watermark for {sorted(set(tps) - set(ends))}")
        consumer.poll(timeout_ms=100)
        for tp in tps:
            highwater = consumer.highwater(tp)
            if tp not in ends and highwater is not None:
                ends[tp] = highwater
    return ends
