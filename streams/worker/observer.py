"""What a running worker tells the outside world: an observer interface, fanned out.

Modelled on faust's `Sensor` and `SensorDelegate`: the worker calls typed `on_*` methods of one
`Observers` delegate, which hands each call to every observer added to it. The base class does
nothing, so an observer overrides only what it needs. The worker never imports what observes
it (metrics: streams/metrics/worker.py), and an observer that raises is logged and skipped: a
metrics bug must not stop alerts.
"""

from __future__ import annotations

import logging

from alerts.engine import Engine, Outcome
from alerts.model import Output
from geofence.decoding import Reason

log = logging.getLogger("banwatch.worker")


class Observer:
    """The worker's hooks; every method a no-op here."""

    def on_record(self, topic: str, outcome: Outcome, reason: Reason | None, n: int) -> None:
        """`n` input records of `topic` were decided alike (routed records count under the
        topic they came from)."""

    def on_output(self, output: Output) -> None:
        """One record was published to `alerts`, `patrol-tasks` or `dead-letters`."""

    def on_processed(self, topic: str, seconds: float, n: int) -> None:
        """A batch of `n` records of `topic` (`positions` or `routed`) took `seconds` from its
        fetch until its outputs were queued."""

    def on_adopted(self, engine: Engine) -> None:
        """The worker took over the state of its partitions after a rebalance."""


class Observers(Observer):
    """The delegate: every call goes to each observer added, in the order added."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def add(self, observer: Observer) -> None:
        self._observers.append(observer)

    def on_record(self, topic: str, outcome: Outcome, reason: Reason | None, n: int) -> None:
        for o in self._observers:
            try:
                o.on_record(topic, outcome, reason, n)
            except Exception as exc:
                log.error("observer failed on_record: %s", type(exc).__name__)

    def on_output(self, output: Output) -> None:
        for o in self._observers:
            try:
                o.on_output(output)
            except Exception as exc:
                log.error("observer failed on_output: %s", type(exc).__name__)

    def on_processed(self, topic: str, seconds: float, n: int) -> None:
        for o in self._observers:
            try:
                o.on_processed(topic, seconds, n)
            except Exception as exc:
                log.error("observer failed on_processed: %s", type(exc).__name__)

    def on_adopted(self, engine: Engine) -> None:
        for o in self._observers:
            try:
                o.on_adopted(engine)
            except Exception as exc:
                log.error("observer failed on_adopted: %s", type(exc).__name__)
