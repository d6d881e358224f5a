"""How much the embedded broker holds, and a warning before it gets slow.

Tansu keeps every record in memory, has no retention and no DeleteRecords, and each fetch
lists every batch ever written to the partition: fetch cost grows with the log, and past
~150k batches in a partition a consumer with a short fetch wait receives nothing
(../shared/FACTS.md, "The embedded broker's limits"; docs/reliability.md). A pilot of 200
monitored persons writes ~144k single-record batches per `positions` partition a day.

`EmbeddedLogWatch` reads the log end of every partition of the service's topics (records
written since the broker started: an upper bound on the batches, and what a pilot's one-fix
batches come to) and publishes the largest as the gauge `banwatch_embedded_log_batches`; the
first time it passes `threshold` it prints one warning line (`banwatch up` prints it on
stdout), once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from config.topics import PARTITIONS
from streams.kafka.faust_patches import exact_ends

log = logging.getLogger("banwatch.broker")

#: Default warning threshold (records in one partition; config/settings.py has the same):
#: with the 100 ms hot fetch wait, fix->alert stayed under 0.5 s at 36k, multi-second at 60k
#: (docs/reliability.md).
WARN_BATCHES = 40_000
#: Seconds between two looks.
WATCH_S = 60.0

GAUGE = "banwatch_embedded_log_batches"


class EmbeddedLogWatch:
    def __init__(
        self,
        bootstrap: str,
        security: Mapping[str, Any],
        topics: Iterable[str],
        threshold: int,
        say: Callable[[str], None],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        self.threshold = threshold
        self.say = say
        self.warned = False
        self.largest = 0
        self.gauge = Gauge(
            GAUGE,
            "Records held by the embedded broker's largest partition (an upper bound on its "
            "batches; fetches slow down as it grows, see docs/reliability.md)",
            registry=registry,
        )

    def check(self) -> int:
        """Look once (blocking): the largest partition's log end; warn the first time it
        passes the threshold."""
        ends = exact_ends(self.bootstrap, self.security, self.partitions)
        largest = max(ends.values(), default=0)
        self.largest = largest
        self.gauge.set(largest)
        if largest > self.threshold and not self.warned:
            self.warned = True
            tp = max(ends, key=lambda k: ends[k])
            self.say(
                f"warning: the embedded broker holds {largest:,} records in {tp.topic}"
                f"[{tp.partition}] (threshold {self.threshold:,}): it slows down as its log "
                "grows, within a day of a pilot's load; restart `banwatch up` (a "
                "fresh embedded broker; the record store, if set, restores the bans in force) "
                "or use a real Kafka (docs/reliability.md)"
            )
        return largest

    async def run(self, stop: asyncio.Event, interval_s: float = WATCH_S) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.check)
            except Exception as exc:  # a look that failed is not worth stopping the service
                log.warning("embedded log size not read: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
