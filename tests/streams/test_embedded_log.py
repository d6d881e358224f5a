"""`banwatch up`'s watch on the embedded broker's log (streams/kafka/embedded_log.py): the
gauge follows the largest partition, and one warning line once it passes the threshold."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from config.topics import TopicNames
from streams.kafka.blocking import make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker
from streams.kafka.embedded_log import GAUGE, EmbeddedLogWatch
from streams.kafka.topics import ensure_topics

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_the_watch_warns_once_past_the_threshold_and_publishes_the_gauge(
    broker: EmbeddedBroker, prefix: str
) -> None:
    ensure_topics(broker.bootstrap, prefix)
    names = TopicNames.with_prefix(prefix)
    said: list[str] = []
    registry = CollectorRegistry()
    watch = EmbeddedLogWatch(
        broker.bootstrap, {}, [names.positions, names.alerts], 25, said.append, registry
    )
    assert watch.check() == 0
    assert registry.get_sample_value(GAUGE) == 0
    producer = make_producer(broker.bootstrap)
    for i in range(20):  # one key: one partition
        produce_json(producer, names.positions, "P-1", {"i": i})
    producer.flush()
    assert watch.check() == 20
    assert said == []  # under the threshold
    for i in range(10):
        produce_json(producer, names.positions, "P-1", {"i": i})
    producer.flush()
    assert watch.check() == 30
    assert registry.get_sample_value(GAUGE) == 30
    assert len(said) == 1 and said[0].startswith("warning: the embedded broker holds 30 records")
    produce_json(producer, names.alerts, "A-1", {"i": 0})
    producer.flush()
    assert watch.check() == 30
    assert len(said) == 1  # once
