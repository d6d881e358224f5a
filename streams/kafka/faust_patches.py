"""Two patches to faust-streaming 0.15.x, needed on the embedded broker and harmless on Kafka.

Why, with the measurements, in docs/faust-on-tansu.md:

- Table recovery asks for the changelog's end with ListOffsets "latest", which Tansu under-
  reports (the newest batch's base + 1). Recovery then stops short: a restored key came back one
  update behind. We read the exact end from a fetch's high watermark instead.
- Faust hard-codes `fetch_max_wait_ms=1500` for its consumer, and Tansu does not answer a waiting
  fetch when a record arrives, so every event waited for most of that before an agent saw it;
  `FETCH_MAX_WAIT_MS` (streams/kafka/clients.py) instead.

Both touch private methods, hence the pin `faust-streaming<0.16`; `apply()` checks that the
methods still exist and fails loudly at start if they do not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from kafka import TopicPartition

from streams.kafka.blocking import log_end_offsets
from streams.kafka.clients import FETCH_MAX_WAIT_MS, offsets_reader

_state: dict[str, Any] = {"bootstrap": None, "security": {}, "applied": False}


def exact_ends(
    bootstrap: str, security: Mapping[str, Any], partitions: list[Any]
) -> dict[Any, int]:
    """The exact log end of each (topic, partition) tuple, keyed by the objects passed in."""
    consumer = offsets_reader(bootstrap, security)
    try:
        tps = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        consumer.assign(tps)
        ends = log_end_offsets(consumer, tps)
    finally:
        consumer.close()
    return {tp: ends[TopicPartition(tp.topic, tp.partition)] for tp in partitions}


async def _highwaters(self: Any, partitions: Iterable[TP]) -> Mapping[TP, int]:
    parts = list(partitions)
    if not parts:
        return {}
    return await asyncio.to_thread(exact_ends, _state["bootstrap"], _state["security"], parts)


def apply(bootstrap: str, security: Mapping[str, Any] | None = None) -> None:
    """Install both patches (idempotent); `security` are kafka-python keyword arguments."""
    _state["bootstrap"] = bootstrap
    _state["security"] = dict(security or {})
    if _state["applied"]:
        return
    cls = faust_aiokafka.AIOKafkaConsumerThread
    for name in ("_create_worker_consumer", "_highwaters"):
        if not hasattr(cls, name):
            raise RuntimeError(f"faust changed: AIOKafkaConsumerThread.{name} is gone")
    create = cls._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by start() for its Fetcher
        return consumer

    cls._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    cls._highwaters = _highwaters  # type: ignore[method-assign]
    _state["applied"] = True
