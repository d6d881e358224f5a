"""Prometheus metrics of the record-store sink, on a registry of its own.

Label values come only from closed sets: the store's table names, the topics it reads (without
the prefix), partitions as numbers, the dead-letter reasons it uses, and two failure kinds.
`banwatch store` serves them on `BANWATCH_STORE_METRICS_PORT` (default 9465); `banwatch up` only
when that variable is set (its `store:` line then names the URL).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from streams.store.records import TOPIC_TABLES
from streams.store.schema import TABLES

REASONS = ("decode", "schema", "too_large")
#: `unavailable`: the database could not be reached (the batch is retried);
#: `row`: the database refused one row (it went to dead-letters).
FAILURES = ("unavailable", "row")


def _closed(value: str, allowed: object) -> str:
    if value not in allowed:  # type: ignore[operator]
        raise ValueError("label value outside its closed set")
    return value


class StoreMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rows = Counter(
            "banwatch_store_rows",
            "Rows written (new, not duplicates), by table",
            ["table"],
            registry=r,
        )
        self.records = Counter(
            "banwatch_store_records", "Records read by the sink, by topic", ["topic"], registry=r
        )
        self.dead_letters = Counter(
            "banwatch_store_dead_letters",
            "Records the sink could not store, sent to dead-letters",
            ["topic", "reason"],
            registry=r,
        )
        self.failures = Counter(
            "banwatch_store_failures", "Database failures of the sink", ["kind"], registry=r
        )
        self.lag = Gauge(
            "banwatch_store_lag", "Records not yet stored", ["topic", "partition"], registry=r
        )
        self.last_commit = Gauge(
            "banwatch_store_last_commit_timestamp_seconds",
            "When the sink last committed a batch (database, then offsets)",
            registry=r,
        )
        self.last_erasure = Gauge(
            "banwatch_store_last_erasure_timestamp_seconds",
            "When the retention job last completed",
            registry=r,
        )
        self.erased = Counter(
            "banwatch_store_erased_rows",
            "Rows whose personal data was erased",
            ["table"],
            registry=r,
        )
        for t in TABLES:
            self.rows.labels(t)
        for topic in TOPIC_TABLES:
            self.records.labels(topic)
        for f in FAILURES:
            self.failures.labels(f)

    def row(self, table: str, n: int) -> None:
        self.rows.labels(_closed(table, TABLES)).inc(n)

    def record(self, topic: str, n: int = 1) -> None:
        self.records.labels(_closed(topic, TOPIC_TABLES)).inc(n)

    def dead_letter(self, topic: str, reason: str) -> None:
        self.dead_letters.labels(_closed(topic, TOPIC_TABLES), _closed(reason, REASONS)).inc()

    def failure(self, kind: str) -> None:
        self.failures.labels(_closed(kind, FAILURES)).inc()

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(_closed(topic, TOPIC_TABLES), str(int(partition))).set(lag)

    def serve(self, host: str, port: int) -> str:
        server, _thread = start_http_server(port, host, self.registry)
        bound = server.server_address[1]
        return f"http://{host}:{bound}/metrics"
