"""The embedded broker, topic creation and the blocking clients, against a real Tansu process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

import streams
from config.topics import PARTITIONS, TopicNames
from streams.kafka.blocking import (
    Followed,
    encode_json,
    follow,
    log_end_offsets,
    make_producer,
    produce_json,
)
from streams.kafka.broker import BrokerStartError, EmbeddedBroker, free_port, listener_port_ranges
from streams.kafka.topics import SPECS, ensure_topics

pytestmark = [pytest.mark.broker, pytest.mark.slow]


class Collector(threading.Thread):
    """Follows a topic in the background, so a test can act while a consumer is running."""

    def __init__(self, bootstrap: str, topic: str, *, from_beginning: bool, idle_s: float) -> None:
        super().__init__(daemon=True)
        self.records: list[Followed] = []
        self._args = (bootstrap, topic, from_beginning, idle_s)

    def run(self) -> None:
        bootstrap, topic, from_beginning, idle_s = self._args
        self.records.extend(follow(bootstrap, topic, from_beginning, idle_timeout_s=idle_s))

    def values(self) -> list[object]:
        return [None if r.value is None else json.loads(r.value) for r in self.records]


def test_json_records_round_trip_with_keys_order_and_tombstones(
    broker: EmbeddedBroker, prefix: str
) -> None:
    names = TopicNames.with_prefix(prefix)
    ensure_topics(broker.bootstrap, prefix)
    producer = make_producer(broker.bootstrap)
    sent = [{"ban_id": "KF-1", "version": v, "unit": "SÖ-2140"} for v in range(1, 6)]
    for value in sent:
        produce_json(producer, names.contact_bans, "KF-1", value)
    produce_json(producer, names.contact_bans, "KF-2", {"ban_id": "KF-2", "version": 1})
    produce_json(producer, names.contact_bans, "KF-2", None).get(timeout=5)
    producer.close()

    records = list(follow(broker.bootstrap, names.contact_bans, True, idle_timeout_s=0.5))

    by_key: dict[bytes | None, list[Followed]] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(record)
    assert [json.loads(r.value or b"") for r in by_key[b"KF-1"]] == sent  # one key, one order
    assert [r.value for r in by_key[b"KF-2"]] == [b'{"ban_id":"KF-2","version":1}', None]
    assert "SÖ-2140".encode() in (by_key[b"KF-1"][0].value or b"")


def test_json_encoding_is_compact_utf8_and_refuses_nan() -> None:
    assert (
        encode_json({"unit_id": "SÖ-2140", "lat": 59.5})
        == '{"unit_id":"SÖ-2140","lat":59.5}'.encode()
    )
    with pytest.raises(ValueError):
        encode_json({"lat": float("nan")})


def test_follow_from_now_skips_what_was_already_there(broker: EmbeddedBroker, prefix: str) -> None:
    names = TopicNames.with_prefix(prefix)
    ensure_topics(broker.bootstrap, prefix, partitions_override=1)
    producer = make_producer(broker.bootstrap)
    # Several records in one batch: the case where ListOffsets "latest" under-reports on Tansu.
    for i in range(10):
        produce_json(producer, names.positions, "P-1", {"old": i})
    producer.flush()

    tail = Collector(broker.bootstrap, names.positions, from_beginning=False, idle_s=3.0)
    tail.start()
    time.sleep(1.0)  # let the tail position itself at the end before anything new arrives
    for i in range(3):
        produce_json(producer, names.positions, "P-1", {"new": i})
    producer.flush()
    tail.join(timeout=15)
    producer.close()

    assert tail.values() == [{"new": 0}, {"new": 1}, {"new": 2}]


def test_log_end_offsets_counts_every_record_of_the_last_batch(
    broker: EmbeddedBroker, prefix: str
) -> None:
    topic = TopicNames.with_prefix(prefix).positions
    ensure_topics(broker.bootstrap, prefix, partitions_override=1)
    producer = make_producer(broker.bootstrap)
    for i in range(10):  # one batch: Tansu's ListOffsets "latest" would say 1
        produce_json(producer, topic, "P-1", {"i": i})
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    try:
        assert log_end_offsets(consumer, [tp]) == {tp: 10}
    finally:
        consumer.close()


def test_follow_refuses_an_unknown_topic(broker: EmbeddedBroker, prefix: str) -> None:
    with pytest.raises(LookupError, match="no-such-topic"):
        next(follow(broker.bootstrap, prefix + "no-such-topic", True))


def test_ensure_topics_creates_every_topic_once_with_its_partitions_and_configs(
    broker: EmbeddedBroker, prefix: str
) -> None:
    names = TopicNames.with_prefix(prefix)

    assert sorted(ensure_topics(broker.bootstrap, prefix)) == sorted(names.all())
    assert ensure_topics(broker.bootstrap, prefix) == []
    assert ensure_topics(broker.bootstrap, prefix, partitions_override=1) == []

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        described = admin.describe_topics(list(names.all()))
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, prefix + s.name, None) for s in SPECS],
            config_filter="all",
        )["topic"]
    finally:
        admin.close()
    assert {t["name"]: len(t["partitions"]) for t in described} == dict.fromkeys(
        names.all(), PARTITIONS
    )
    for spec in SPECS:
        held = {k: v["value"] for k, v in configs[prefix + spec.name].items()}
        assert held.items() >= dict(spec.configs).items(), spec.name
    assert configs[names.contact_bans]["cleanup.policy"]["value"] == "compact"


def test_partitions_override_applies_to_new_topics(broker: EmbeddedBroker, prefix: str) -> None:
    ensure_topics(broker.bootstrap, prefix, partitions_override=1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        described = admin.describe_topics(list(TopicNames.with_prefix(prefix).all()))
    finally:
        admin.close()
    assert {len(t["partitions"]) for t in described} == {1}


def test_topic_names_take_the_prefix() -> None:
    names = TopicNames.with_prefix("prod.")
    assert names.positions == "prod.positions"
    assert names.alert_acks == "prod.alert-acks"
    assert names.all() == tuple("prod." + s.name for s in SPECS)
    assert TopicNames().dead_letters == "dead-letters"


def test_a_consumer_gets_records_after_the_broker_resumes(
    broker: EmbeddedBroker, prefix: str
) -> None:
    names = TopicNames.with_prefix(prefix)
    ensure_topics(broker.bootstrap, prefix, partitions_override=1)
    producer = make_producer(broker.bootstrap)
    produce_json(producer, names.alerts, "A-0", {"seq": 0}).get(timeout=5)
    tail = Collector(broker.bootstrap, names.alerts, from_beginning=True, idle_s=4.0)
    tail.start()
    time.sleep(0.5)

    broker.pause()
    try:
        during = produce_json(producer, names.alerts, "A-1", {"seq": 1})
        time.sleep(1.0)
        assert not during.is_done  # a frozen broker acknowledges nothing
        with socket.create_connection(("127.0.0.1", broker.port), timeout=1):
            pass  # the kernel still accepts connections: clients hang rather than fail fast
    finally:
        broker.resume()
    during.get(timeout=10)
    produce_json(producer, names.alerts, "A-2", {"seq": 2}).get(timeout=10)
    producer.close()
    tail.join(timeout=20)

    assert tail.values() == [{"seq": 0}, {"seq": 1}, {"seq": 2}]


def test_a_taken_port_fails_loudly_naming_it(broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerStartError, match=broker.bootstrap):
        EmbeddedBroker(broker.port).start()
    assert broker.running


def test_stop_reaps_the_process_and_frees_the_port() -> None:
    port = free_port()
    with EmbeddedBroker(port) as own:
        pid = own.pid
        assert own.running and own.bootstrap == f"127.0.0.1:{port}"
        own.pause()  # stopping must work even while frozen
    assert not own.running
    assert pid is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left behind
    EmbeddedBroker(port).start().stop()  # and the port can be bound again


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_the_broker_dies_with_a_killed_parent(tmp_path: Path) -> None:
    # SIGKILL skips every exit handler; only the kernel's parent-death signal can stop the broker.
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "tansu.log")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(streams.__file__).parents[1])},
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


_PARENT = """
import sys, time
from pathlib import Path
from streams.kafka.broker import EmbeddedBroker, free_port
broker = EmbeddedBroker(free_port(), log_path=Path(sys.argv[1])).start()
print(broker.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_free_port_never_hands_out_an_ephemeral_port_nor_the_same_port_twice() -> None:
    # A listener port inside the kernel's ephemeral range can be taken by any outgoing connection
    # between free_port() and the listener's bind; CI once lost a run to exactly that.
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if not listener_port_ranges():
        pytest.skip(f"the ephemeral range {low}-{high} leaves no listener ports (bind(0) fallback)")
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if low <= p <= high]
    for port in ports[:20]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # still free
