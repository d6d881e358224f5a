"""The record-store sink: consumer group `<app>-store` writing every record to the database.

One batch at a time, in this order (the commit protocol):
1. read a batch (up to `store_batch_records`) from every partition the group gave us;
2. turn each record into a row, or into a dead letter (`records.to_row`);
3. write all rows in ONE transaction, each with ON CONFLICT DO NOTHING on its natural key;
   a database that cannot be reached: wait (backoff up to 10 s) and write the same batch again,
   for as long as it takes; a database that refuses a row (what the checks in `records` did not
   foresee): write the batch row by row and dead-letter the rows it refuses;
4. send the dead letters and wait for the broker's acknowledgement;
5. commit the consumer offsets past the batch.
A crash anywhere before 5 reads the batch again and stores nothing twice (natural keys); nothing
is committed before it is in the database, so nothing is lost. Every `store_erasure_interval_s`
(and once at start) the retention job runs between two batches and its audit record is also
published to `audit`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from sqlalchemy.engine import Engine

from alerts.engine import DEAD_LETTER_RAW_BYTES, Incoming, dead_letter
from config.settings import Settings
from config.topics import TopicNames
from geofence.decoding import Reason
from geofence.decoding import Rejected as CoreRejected
from streams.kafka import clients
from streams.kafka.blocking import encode_json
from streams.store.db import migrate, write_rows
from streams.store.metrics import StoreMetrics
from streams.store.records import TOPIC_TABLES, Rejected, Row, to_row
from streams.store.retention import erase

log = logging.getLogger("banwatch.store")

BACKOFF_MAX_S = 10.0
ERROR_CHARS = 500


def _unavailable(exc: BaseException) -> bool:
    """A database that is down or busy (retry), as opposed to one refusing a row."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError)


class Sink:
    """The sink for `settings` on `bootstrap`, writing to `engine`."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        engine: Engine,
        metrics: StoreMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.engine = engine
        self.metrics = metrics or StoreMetrics()
        self.clock = clock
        self.names = TopicNames.with_prefix(settings.topic_prefix)
        prefix = settings.topic_prefix
        self.topics = {prefix + t: t for t in TOPIC_TABLES}  # deployed name -> contract name
        self.group = f"{settings.app_id}-store"
        self.batches = 0
        self.committed = 0  # records whose offsets this sink committed (stored or dead-lettered)
        self._stop: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event, ready: Callable[[], None] | None = None) -> None:
        self._stop = stop
        await self._until_written(lambda: migrate(self.engine), "migrate")
        consumer = clients.store_consumer(self.settings, self.bootstrap, self.topics, self.group)
        producer = clients.store_producer(self.settings, self.bootstrap)
        await producer.start()
        try:
            await consumer.start()
            try:
                if ready is not None:
                    ready()
                next_erasure = 0.0
                while not stop.is_set():
                    batch = await consumer.getmany(
                        timeout_ms=500, max_records=self.settings.store_batch_records
                    )
                    if batch and not await self._handle(batch, consumer, producer):
                        break  # stopped while the database was down: nothing committed
                    await self._lags(consumer)
                    if time.monotonic() >= next_erasure and not stop.is_set():
                        await self._erase(producer)
                        next_erasure = time.monotonic() + self.settings.store_erasure_interval_s
            finally:
                await consumer.stop()
        finally:
            await producer.stop()

    async def _handle(
        self,
        batch: dict[TopicPartition, list[Any]],
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
    ) -> bool:
        now = self.clock().astimezone(UTC).replace(tzinfo=None)
        rows: list[tuple[Row, Any]] = []
        dead: list[tuple[Any, Rejected]] = []
        for tp, records in batch.items():
            topic = self.topics[tp.topic]
            self.metrics.record(topic, len(records))
            for r in records:
                out = to_row(topic, r.key, r.value, r.timestamp, now)
                if isinstance(out, Row):
                    rows.append((out, r))
                elif isinstance(out, Rejected):
                    dead.append((r, out))
        result = await self._until_written(lambda: self._write(rows), "write")
        if result is None:
            return False
        written, refused = result
        for table, n in written.items():
            self.metrics.row(table, n)
        for _ in refused:
            self.metrics.failure("row")
        dead.extend(refused)
        # a dead letter the store cannot keep is logged, not dead-lettered again: the sink
        # reads `dead-letters` itself, and must not feed it back to itself
        kept = []
        for r, rej in dead:
            if self.topics[r.topic] == "dead-letters":
                self.metrics.dead_letter("dead-letters", rej.reason)
                log.warning("store: a dead letter was not stored (%s): %s", rej.reason, rej.error)
            else:
                kept.append((r, rej))
        if kept:
            sends = [await self._dead_letter(producer, r, rej) for r, rej in kept]
            await asyncio.gather(*sends)
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # the group moved on (a rebalance): whoever gets the partitions reads the batch
            # again, and the natural keys store it once
            log.warning("store: offsets not committed (%s); the batch will be read again", exc)
        self.metrics.last_commit.set(time.time())
        self.batches += 1
        self.committed += sum(len(records) for records in batch.values())
        return True

    def _write(self, rows: list[tuple[Row, Any]]) -> tuple[dict[str, int], list[Any]]:
        """Write `rows` in one transaction; if the database refuses it, row by row. Returns the
        new rows per table (counted once committed, so a retried batch is not counted twice)
        and the rows refused, for dead-letters. Raises when the database is unavailable."""
        if not rows:
            return {}, []
        try:
            with self.engine.begin() as conn:
                written = self._insert_all(conn, [row for row, _ in rows])
            return written, []
        except sa.exc.DBAPIError as exc:
            if _unavailable(exc):
                raise
            log.warning(
                "store: a batch was refused (%s); writing it row by row", type(exc).__name__
            )
        total: dict[str, int] = {}
        refused = []
        for row, record in rows:
            try:
                with self.engine.begin() as conn:
                    one = self._insert_all(conn, [row])
            except sa.exc.DBAPIError as exc:
                if _unavailable(exc):
                    raise
                error = str(exc.orig or exc).splitlines()[0][:ERROR_CHARS]
                refused.append((record, Rejected("schema", f"refused by the database: {error}")))
                continue
            for table, n in one.items():
                total[table] = total.get(table, 0) + n
        return total, refused

    @staticmethod
    def _insert_all(conn: Any, rows: list[Row]) -> dict[str, int]:
        return write_rows(conn, [(r.table, r.values) for r in rows])

    async def _until_written(self, write: Callable[[], Any], what: str) -> Any:
        """Run `write` in a thread until the database takes it; None if stopped meanwhile."""
        delay = 0.2
        while True:
            try:
                return await asyncio.to_thread(write)
            except sa.exc.DBAPIError as exc:
                if not _unavailable(exc):
                    raise
                self.metrics.failure("unavailable")
                log.warning(
                    "store: database unavailable during %s (%s); retrying in %.1f s",
                    what,
                    type(exc.orig or exc).__name__,
                    delay,
                )
            if self._stop is not None and self._stop.is_set():
                return None
            if self._stop is not None:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    return None
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _dead_letter(
        self, producer: AIOKafkaProducer, record: Any, rej: Rejected
    ) -> asyncio.Future[Any]:
        topic = self.topics[record.topic]
        self.metrics.dead_letter(topic, rej.reason)
        key = None if record.key is None else record.key.decode("utf-8", "replace")
        incoming = Incoming(topic, key, record.value, record.partition, record.offset)
        out_topic, out_key, value = dead_letter(
            incoming,
            CoreRejected(Reason(rej.reason), rej.error),
            self.clock(),
            DEAD_LETTER_RAW_BYTES,
        )
        future: asyncio.Future[Any] = await producer.send(
            self.settings.topic_prefix + out_topic,
            key=None if out_key is None else out_key.encode(),
            value=encode_json(value),
        )
        return future

    async def _lags(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            hw = consumer.highwater(tp)
            if hw is None:
                continue
            pos = await consumer.position(tp)
            self.metrics.set_lag(self.topics[tp.topic], tp.partition, max(0, hw - pos))

    async def _erase(self, producer: AIOKafkaProducer) -> None:
        run = await self._until_written(
            lambda: erase(self.engine, self.clock(), self.settings.retention_days, self.group),
            "erase",
        )
        if not run:
            return
        for table, n in run.rows.items():
            self.metrics.erased.labels(table).inc(n)
        self.metrics.last_erasure.set(time.time())
        await producer.send_and_wait(
            self.names.audit, key=b"store:retention", value=encode_json(run.audit)
        )
