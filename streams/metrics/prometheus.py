"""Prometheus metrics of a worker (and of the console): the contract's names, types and labels.

Dashboards and alert rules in `deploy/` depend on these names (CONTRACT.md, "Metrics"), so the
set here is exactly the contract's: nothing added, nothing renamed. Every label value comes from a
closed set derived from the code's own enums (topics, kinds, states, reasons, outcomes) and is
checked before it reaches prometheus_client; anything else raises `ValueError`. That check, not
care at the call sites, is what keeps person, ban, device, unit and alert ids out of the metrics:
an id is never in a closed set. No exemplars are ever attached (they would be a second way in).

The worker's hooks (`on_event`, `on_output`) never raise: a metrics bug must not stop alerts.
They log the label that was refused (never its value) and count nothing for that record.

Open alerts and the age of the oldest unacknowledged one are computed when Prometheus scrapes,
from a small book of the alerts this process has seen revisions of (ids stay in memory only).

One module over ~400 lines on purpose: it is the contract's metrics table (names, help texts,
closed label sets) and the code that keeps to it, which a reviewer reads side by side.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)

from alerts.engine import Outcome
from alerts.model import Kind, State
from config.topics import ALERTS, DEAD_LETTERS, INPUT_TOPICS, PATROL_TASKS
from geofence.decoding import Reason
from streams.kafka.topics import SPECS

log = logging.getLogger("banwatch.metrics")

# `*_created` series are not in the contract and no dashboard reads them (process-wide switch).
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Topic label values: the contract's topic names without `BANWATCH_TOPIC_PREFIX`, plus the
#: worker's internal repartition topic under a fixed name (its deployed name carries the app id).
INTERNAL_TOPICS = ("routed",)
TOPICS: frozenset[str] = frozenset(s.name for s in SPECS) | frozenset(INTERNAL_TOPICS)
ALERT_KINDS: frozenset[str] = frozenset(k.value for k in Kind)
TASK_KINDS = frozenset(
    {"respond", "protect", "interview", "motivational_talk", "referral", "knock"}
)
PRIORITIES = ("1", "2", "3")
STATES: frozenset[str] = frozenset(s.value for s in State)
REASONS: frozenset[str] = frozenset(r.value for r in Reason)
OUTCOMES: frozenset[str] = frozenset(o.value for o in Outcome)
#: Partitions are labels too; a deployment has a few dozen at most.
MAX_PARTITION = 1023
#: Alert states that still wait for an operator.
UNACKNOWLEDGED = frozenset({State.open.value, State.updated.value, State.escalated.value})
#: Kinds whose fix→alert latency is not a processing latency: `signal_lost` fires by design
#: `signal_timeout_s` after the last fix, `late_evidence` comes from fixes uploaded late.
NO_LATENCY = frozenset({Kind.signal_lost.value, Kind.late_evidence.value})

#: Fix event time → alert published: sub-second normally, up to a minute under backlog.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Record received → outputs sent, per record.
PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

#: The contract's metric table: name → (type, labels). Tests hold the registry to it.
CONTRACT: dict[str, tuple[str, tuple[str, ...]]] = {
    "banwatch_events_total": ("counter", ("topic", "outcome")),
    "banwatch_dead_letters_total": ("counter", ("topic", "reason")),
    "banwatch_alerts_total": ("counter", ("kind", "priority", "state")),
    "banwatch_tasks_total": ("counter", ("kind",)),
    "banwatch_event_to_alert_seconds": ("histogram", ("kind",)),
    "banwatch_processing_seconds": ("histogram", ("topic",)),
    "banwatch_active_bans": ("gauge", ()),
    "banwatch_open_alerts": ("gauge", ("priority",)),
    "banwatch_unacknowledged_alert_age_seconds": ("gauge", ("priority",)),
    "banwatch_consumer_lag": ("gauge", ("topic", "partition")),
}


def _closed(name: str, value: object, allowed: Iterable[str]) -> str:
    text = value.value if hasattr(value, "value") else value
    if not isinstance(text, str) or text not in allowed:
        # The value itself is not in the message: it may be an id.
        raise ValueError(f"metrics: label {name!r} refused a value outside its closed set")
    return text


def _priority(value: object) -> str:
    if isinstance(value, bool):
        raise ValueError("metrics: label 'priority' refused a value outside its closed set")
    return _closed("priority", str(value) if isinstance(value, int) else value, PRIORITIES)


def _partition(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PARTITION:
        raise ValueError("metrics: label 'partition' refused a value outside its closed set")
    return str(value)


def _epoch(ts: object) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.timestamp() if t.tzinfo is not None else None


def observe_many(child: Any, value: float, n: int) -> None:
    """`child.observe(value)` `n` times, at the cost of one: a batch of 2,000 records shares
    one processing time, and 2,000 calls of `observe` were ~2.5 % of a draining worker's CPU.
    Uses the histogram's own value holders (prometheus_client 0.2x: `_sum`, `_upper_bounds`,
    `_buckets`, as `observe` does); falls back to the loop if they are not there.
    tests/ops/test_metrics.py checks that the exposition is the same as n observations."""
    total = getattr(child, "_sum", None)
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    if total is None or bounds is None or buckets is None or value != value:
        # (NaN: observe counts it in no bucket; bisect would put it in the first)
        for _ in range(n):
            child.observe(value)
        return
    if n <= 0:
        return
    child._raise_if_not_observable()
    total.inc(value * n)
    buckets[bisect.bisect_left(bounds, value)].inc(n)  # the first bound >= value, as observe


class Metrics:
    """The contract's metrics in a registry of their own, with validating helpers.

    `topic_prefix` is stripped from topic names before they are checked, so callers may pass
    deployed names; `internal` maps deployed internal topic names to their label (`routed`).
    `clock` (epoch seconds) is read only for latencies and ages.
    """

    def __init__(
        self,
        topic_prefix: str = "",
        internal: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = topic_prefix
        self.internal = dict(internal or {})
        for label in self.internal.values():
            _closed("topic", label, INTERNAL_TOPICS)
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "banwatch_events_total",
            "Input records by topic and what became of them",
            ("topic", "outcome"),
            registry=r,
        )
        self.dead_letters = Counter(
            "banwatch_dead_letters_total",
            "Records sent to dead-letters, by source topic and reason",
            ("topic", "reason"),
            registry=r,
        )
        self.alerts = Counter(
            "banwatch_alerts_total",
            "Alert revisions published, by kind, priority and state",
            ("kind", "priority", "state"),
            registry=r,
        )
        self.tasks = Counter(
            "banwatch_tasks_total", "Tasks published, by kind", ("kind",), registry=r
        )
        self.event_to_alert_seconds = Histogram(
            "banwatch_event_to_alert_seconds",
            "Event time of the fix or incident that opened an alert to the alert's publication",
            ("kind",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.processing_seconds = Histogram(
            "banwatch_processing_seconds",
            "Record received to its outputs sent, per record",
            ("topic",),
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.active_bans = Gauge(
            "banwatch_active_bans", "Contact bans held in the registry", registry=r
        )
        self.open_alerts = Gauge(
            "banwatch_open_alerts",
            "Alerts not resolved, by priority (alerts whose state this process holds)",
            ("priority",),
            registry=r,
        )
        self.unacked_age = Gauge(
            "banwatch_unacknowledged_alert_age_seconds",
            "Age of the oldest alert not yet acknowledged, by priority (0 when none)",
            ("priority",),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "banwatch_consumer_lag",
            "Records between this worker's position and the log end, by topic and partition",
            ("topic", "partition"),
            registry=r,
        )
        self._lock = threading.Lock()
        # alert_id -> (priority label, opened_at epoch, unacknowledged); never a label
        self._book: dict[str, tuple[str, float, bool]] = {}
        self._overrides: dict[str, tuple[int, float]] = {}  # priority -> (open, oldest age)
        self._book_mode = True
        self._refused: set[str] = set()
        self._initialise()

    def _initialise(self) -> None:
        """Zeros for the series dashboards and alert rules expect to exist from the start."""
        for topic in INPUT_TOPICS:
            for outcome in sorted(OUTCOMES):
                self.events.labels(topic, outcome)
            self.processing_seconds.labels(topic)
        for topic in (*INPUT_TOPICS, *INTERNAL_TOPICS):
            for reason in sorted(REASONS):
                self.dead_letters.labels(topic, reason)
        for kind in sorted(ALERT_KINDS):
            for p in PRIORITIES:
                self.alerts.labels(kind, p, State.open.value)
        for kind in sorted(TASK_KINDS):
            self.tasks.labels(kind)
        for p in PRIORITIES:
            self.open_alerts.labels(p).set_function(partial(self._gauge, p, 0))
            self.unacked_age.labels(p).set_function(partial(self._gauge, p, 1))

    # ----------------------------------------------------------- label checks
    def topic(self, name: object) -> str:
        """The topic label for a deployed or contract topic name; `ValueError` otherwise."""
        if isinstance(name, str):
            if name in self.internal:
                return self.internal[name]
            if self.prefix and name.startswith(self.prefix):
                name = name[len(self.prefix) :]
        return _closed("topic", name, TOPICS)

    # ---------------------------------------------------------------- helpers
    def event(self, topic: object, outcome: object, n: int = 1) -> None:
        self.events.labels(self.topic(topic), _closed("outcome", outcome, OUTCOMES)).inc(n)

    def dead_letter(self, topic: object, reason: object) -> None:
        self.dead_letters.labels(self.topic(topic), _closed("reason", reason, REASONS)).inc()

    def alert(self, kind: object, priority: object, state: object) -> None:
        self.alerts.labels(
            _closed("kind", kind, ALERT_KINDS), _priority(priority), _closed("state", state, STATES)
        ).inc()

    def task(self, kind: object) -> None:
        self.tasks.labels(_closed("kind", kind, TASK_KINDS)).inc()

    def event_to_alert(self, kind: object, seconds: float) -> None:
        label = _closed("kind", kind, ALERT_KINDS)
        self.event_to_alert_seconds.labels(label).observe(max(0.0, float(seconds)))

    def processing(self, topic: object, seconds: float, n: int = 1) -> None:
        """`n` records of `topic` took `seconds` each (a batch)."""
        child = self.processing_seconds.labels(self.topic(topic))
        observe_many(child, max(0.0, float(seconds)), n)

    def set_active_bans(self, n: int) -> None:
        self.active_bans.set(n)

    def set_consumer_lag(self, topic: object, partition: object, lag: int) -> None:
        self.consumer_lag.labels(self.topic(topic), _partition(partition)).set(max(0, lag))

    def forget_consumer_lag(self, topic: object, partition: object) -> None:
        """Drop the series of a partition this worker no longer owns (after a rebalance)."""
        labels = (self.topic(topic), _partition(partition))
        with contextlib.suppress(KeyError):
            self.consumer_lag.remove(*labels)

    def set_open_alerts(self, counts: Mapping[object, int]) -> None:
        """Set open alerts per priority directly (instead of the book fed by `on_output`).
        Priorities missing from `counts` read 0."""
        self._set_direct(counts, 0)

    def set_unacked_age(self, ages: Mapping[object, float]) -> None:
        """Set the oldest unacknowledged alert's age per priority directly (seconds)."""
        self._set_direct(ages, 1)

    def _set_direct(self, values: Mapping[object, float], slot: int) -> None:
        checked = {_priority(p): float(v) for p, v in values.items()}
        with self._lock:
            self._book_mode = False
            for p in PRIORITIES:
                pair = list(self._overrides.get(p, (0, 0.0)))
                pair[slot] = checked.get(p, 0.0)
                self._overrides[p] = (int(pair[0]), float(pair[1]))

    # ------------------------------------------------------------ alert book
    def track_alert(self, value: Mapping[str, Any]) -> None:
        """Record an alert revision's state in the book without counting it (e.g. the alerts
        a worker adopts after a rebalance). Resolved alerts leave the book."""
        alert_id = value.get("alert_id")
        if not isinstance(alert_id, str):
            raise ValueError("metrics: an alert revision without alert_id")
        p = _priority(value.get("priority"))
        state = _closed("state", value.get("state"), STATES)
        with self._lock:
            if state == State.resolved.value:
                self._book.pop(alert_id, None)
                return
            opened = _epoch(value.get("opened_at"))
            held = self._book.get(alert_id)
            if opened is None:
                opened = held[1] if held is not None else self.clock()
            self._book[alert_id] = (p, opened, state in UNACKNOWLEDGED)

    def forget_alerts(self) -> None:
        """Empty the book (a worker that lost its partitions no longer holds their alerts)."""
        with self._lock:
            self._book.clear()

    def _gauge(self, priority: str, slot: int) -> float:
        """Slot 0: open alerts, 1: age of the oldest unacknowledged; at scrape time."""
        return self._gauges(priority)[slot]

    def _gauges(self, priority: str) -> tuple[float, float]:
        with self._lock:
            if not self._book_mode:
                n, age = self._overrides.get(priority, (0, 0.0))
                return float(n), age
            now = self.clock()
            n = 0
            oldest: float | None = None
            for p, opened, unacked in self._book.values():
                if p != priority:
                    continue
                n += 1
                if unacked and (oldest is None or opened < oldest):
                    oldest = opened
        return float(n), 0.0 if oldest is None else max(0.0, now - oldest)

    # ----------------------------------------------------------- worker hooks
    def on_event(
        self, topic: str, outcome: Outcome, reason: Reason | None = None, n: int = 1
    ) -> None:
        """`Worker.on_event`: `n` input records decided alike. Never raises. Dead letters are
        counted from the outputs (`on_output`), which also sees internal failures."""
        try:
            self.event(topic, outcome, n)
        except ValueError as exc:
            self._refuse(exc)

    def on_output(self, output: tuple[str, str | None, Mapping[str, Any] | None]) -> None:
        """`Worker.on_output`: one record published to `alerts`, `patrol-tasks` or
        `dead-letters` (contract topic names, without prefix). Never raises."""
        topic, _key, value = output
        if value is None:
            return
        try:
            if topic == ALERTS:
                self._alert_revision(value)
            elif topic == PATROL_TASKS:
                self.task(value.get("kind"))
            elif topic == DEAD_LETTERS:
                self.dead_letter(value.get("source_topic"), value.get("reason"))
        except ValueError as exc:
            self._refuse(exc)

    def _alert_revision(self, value: Mapping[str, Any]) -> None:
        kind = value.get("kind")
        state = value.get("state")
        self.alert(kind, value.get("priority"), state)
        self.track_alert(value)
        position = value.get("position")
        if (
            state == State.open.value
            and kind not in NO_LATENCY
            and isinstance(position, Mapping)
            and (t := _epoch(position.get("ts"))) is not None
        ):
            self.event_to_alert(kind, self.clock() - t)

    def _refuse(self, exc: ValueError) -> None:
        text = str(exc)
        if text not in self._refused:  # once per kind of refusal, not per record
            self._refused.add(text)
            log.error("%s; not counted", text)

    # ------------------------------------------------------------- exposition
    def text(self) -> str:
        """The exposition text, as a scrape would get it."""
        return generate_latest(self.registry).decode("utf-8")

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve `/metrics` on `host:port` in a daemon thread; port 0 picks a free port."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(server, thread)


class MetricsServer:
    """A running metrics endpoint: `port` is the real one (also when asked for port 0)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
