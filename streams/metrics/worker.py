"""Wires a worker to its Prometheus metrics (streams/metrics/prometheus.py): hooks, gauges.

Counters come from the worker's observer hooks (streams/worker/observer.py: `on_record` per
input record, `on_output` per alert, task and dead letter). Gauges are refreshed every
`GAUGE_S` seconds from the worker's state:
active bans from the registry, consumer lag from the positions of the faust consumer and of
the hot path's own consumer, against the brokers' high watermarks. After a rebalance the
alert book is rebuilt from the states the worker adopted, so open/unacknowledged gauges count
only alerts this worker owns.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from alerts.engine import Engine, Outcome
from alerts.model import Output
from config.settings import Settings
from geofence.decoding import Reason
from streams.metrics.prometheus import Metrics, MetricsServer
from streams.worker import Worker
from streams.worker.observer import Observer
from streams.worker.outbox import position

log = logging.getLogger("banwatch.observe")

GAUGE_S = 0.5  # consumer lag: a backlog the worker drains in seconds still shows
BANS_EVERY = 10  # active bans (a walk over the registry) every BANS_EVERY gauge refreshes


class MetricsObserver(Observer):
    """The worker's hooks, counted."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_record(self, topic: str, outcome: Outcome, reason: Reason | None, n: int) -> None:
        self.metrics.on_event(topic, outcome, reason, n)

    def on_output(self, output: Output) -> None:
        self.metrics.on_output(output)

    def on_processed(self, topic: str, seconds: float, n: int) -> None:
        _safely(self.metrics.processing, topic, seconds, n)

    def on_adopted(self, engine: Engine) -> None:
        _rebuild_book(engine, self.metrics)


def attach(worker: Worker, metrics: Metrics) -> None:
    """Count what the worker does; refresh gauges while it runs."""
    worker.observers.add(MetricsObserver(metrics))

    shown: set[tuple[str, int]] = set()  # the lag series this worker publishes
    ticks = [0]

    @worker.app.timer(GAUGE_S)  # type: ignore[untyped-decorator]
    async def gauges() -> None:
        with contextlib.suppress(Exception):  # a gauge must never stop the worker
            refresh(worker, metrics, shown, bans=ticks[0] % BANS_EVERY == 0)
        ticks[0] += 1


def _safely(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except ValueError as exc:  # a label outside the closed sets: refused, not counted
        log.error("metric not recorded: %s", exc)


def refresh(worker: Worker, metrics: Metrics, shown: set[tuple[str, int]], bans: bool) -> None:
    """Set the gauges (active bans too if `bans`). `shown`: the lag series set last time; a
    partition this worker no longer owns loses its series (its last value would otherwise
    stay on the dashboard)."""
    if bans:
        reg = worker.engine.registry
        metrics.set_active_bans(sum(1 for b in reg.ban_ids() if _active(reg.get(b))))
    lags: list[tuple[str, int, int]] = []
    consumer = worker.app.consumer
    for tp in list(consumer.assignment()):
        with contextlib.suppress(Exception):  # (a partition revoked meanwhile: no figure)
            hw = consumer.highwater(tp)
            pos = consumer._read_offset.get(tp)  # type: ignore[attr-defined]  # faust's last read offset per partition
            if hw is not None:
                lag = int(hw) - (int(pos) + 1 if pos is not None else 0)
                lags.append((tp.topic, tp.partition, lag))
    hot: Any = worker.hot.consumer  # the aiokafka consumer while the hot loop runs
    if hot is not None:  # positions and routed: the hot path's own consumer
        for tp in list(hot.assignment()):
            with contextlib.suppress(Exception):
                hw = hot.highwater(tp)
                done = worker.hot.done.get(tp)  # processed up to; before the first record, read to
                done = done if done is not None else position(hot, tp)
                if hw is not None and done is not None:
                    lags.append((tp.topic, tp.partition, int(hw) - done))
    now: set[tuple[str, int]] = set()
    for topic, partition, lag in lags:
        label = "routed" if topic == worker.routed_name else topic
        try:
            metrics.set_consumer_lag(label, partition, max(0, lag))
        except ValueError:
            continue  # a faust-internal topic (changelogs): not a contract label
        now.add((label, partition))
    for label, partition in shown - now:
        metrics.forget_consumer_lag(label, partition)
    shown.clear()
    shown.update(now)


def _active(held: Any) -> bool:
    return held is not None and held.record.status == "active"


def _rebuild_book(e: Engine, metrics: Metrics) -> None:
    metrics.forget_alerts()
    alerts = [a for st in e.states.values() for a in st.alerts.values()]
    alerts.extend(e.unmatched.values())
    for a in alerts:
        metrics.track_alert(
            {
                "alert_id": a.alert_id,
                "priority": a.priority,
                "state": a.state.value,
                "opened_at": a.opened_at.isoformat(),
            }
        )


def serve_worker_metrics(settings: Settings, worker: Worker) -> MetricsServer:
    """Metrics for `worker`, served on `BANWATCH_METRICS_HOST:BANWATCH_METRICS_PORT`."""
    metrics = Metrics(topic_prefix=settings.topic_prefix, internal={worker.routed_name: "routed"})
    attach(worker, metrics)
    server = metrics.serve(settings.metrics_host, settings.metrics_port)
    log.info("metrics on %s", server.url)
    return server
