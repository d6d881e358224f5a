"""Global feeds: every worker reads the whole of a topic that all decisions need.

The ban registry (`contact-bans`) and the fleet (`patrol-positions`) must be complete in every
worker, whichever partitions of the other topics it owns: a fix of one person may concern a ban
registered on any partition, and the nearest patrol car may report on any partition. Like Kafka
Streams' global tables, each worker reads every partition of these topics without a consumer
group (no join, no commits, no partitions taken from anyone), from the beginning, and applies
each record to its in-memory registry or fleet. `ready` is set once the feed has caught up with
the log end it saw at start: the worker processes no fix before that.

Validation and dead-lettering of these topics happen once, in the partitioned agents
(streams/worker/); a feed silently skips records the decoder rejects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.kafka.clients import groupless_consumer
from streams.kafka.faust_patches import exact_ends

log = logging.getLogger("banwatch.feeds")

Apply = Callable[[str | None, bytes | None, int, int], None]  # key, value, partition, offset


async def rewind_if_truncated(
    consumer: AIOKafkaConsumer, pos: dict[TopicPartition, int], what: str
) -> None:
    """Read a partition again from its start when its log end fell below our position.

    Kafka answers a fetch past the log end with OFFSET_OUT_OF_RANGE (and aiokafka resets);
    Tansu answers with nothing, so after an embedded-broker restart (an empty log) a reader
    would wait at its old position and skip the new log's first records. Re-reading is safe:
    every reader here applies records idempotently (latest version or revision wins)."""
    for tp, at in pos.items():
        hw = consumer.highwater(tp)
        if hw is not None and hw < at:
            log.warning(
                "%s: %s/%d ends below our position; reading it again", what, tp.topic, tp.partition
            )
            await consumer.seek_to_beginning(tp)
            pos[tp] = await consumer.position(tp)


class GlobalFeed:
    """Reads every partition of `topic` from the beginning and calls `apply` per record."""

    def __init__(
        self, bootstrap: str, topic: str, apply: Apply, security: Mapping[str, Any] | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.apply = apply
        self.kafka_security = dict(security or {})
        self._pos: dict[TopicPartition, int] = {}
        self.ready = asyncio.Event()
        self.records = 0
        self._consumer: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        consumer = groupless_consumer(
            self.bootstrap, f"banwatch-feed-{self.topic}", self.kafka_security
        )
        self._consumer = consumer
        await consumer.start()
        try:
            parts = await self._partitions(consumer)
            tps = [TopicPartition(self.topic, p) for p in parts]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            for tp in tps:
                self._pos[tp] = await consumer.position(tp)
            ends = await asyncio.to_thread(exact_ends, self.bootstrap, self.kafka_security, tps)
            while True:
                if not self.ready.is_set() and all(self._pos[tp] >= ends[tp] for tp in tps):
                    self.ready.set()
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, records in batches.items():
                    for r in records:
                        key = r.key.decode("utf-8", "replace") if r.key is not None else None
                        try:
                            self.apply(key, r.value, tp.partition, r.offset)
                        except Exception as exc:  # a bad record must not stop the feed
                            log.error(
                                "feed %s: record %d/%d not applied: %s",
                                self.topic,
                                tp.partition,
                                r.offset,
                                type(exc).__name__,
                            )
                        self.records += 1
                    if records:
                        self._pos[tp] = records[-1].offset + 1
                await rewind_if_truncated(consumer, self._pos, f"feed {self.topic}")
        finally:
            self._consumer = None
            await consumer.stop()

    def behind(self) -> bool:
        """True while the feed has not read up to the high watermark of its last fetch."""
        c = self._consumer
        if c is None or not self.ready.is_set():
            return True
        for tp, pos in self._pos.items():
            hw = c.highwater(tp)
            if hw is not None and pos < hw:
                return True
        return False

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[int]:
        for _ in range(100):
            parts = consumer.partitions_for_topic(self.topic)
            if parts:
                return sorted(parts)
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {self.topic} does not exist")
