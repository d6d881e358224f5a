"""Every Kafka client the service builds, from the settings, in one place.

Security is translated once: `Settings.kafka_security()` gives kafka-python's keyword
arguments (config/settings.py); aiokafka's (an `ssl_context` instead of files) and faust's
credentials are derived here from those, never from the settings a second way.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from config.settings import Settings
from config.topics import PARTITIONS

#: How long the hot path's fetch waits on an idle partition. Tansu answers a waiting fetch only
#: when the wait ends (docs/faust-on-tansu.md), so this is the delay a fix sees on a quiet
#: stream.
HOT_FETCH_WAIT_MS = 10
#: How long faust's consumer and the group-less readers wait on an idle partition. Faust
#: hard-codes 1500 ms, and Tansu does not answer a waiting fetch when a record arrives, so an
#: event waits for most of the wait before an agent sees it (measured: docs/faust-on-tansu.md).
FETCH_MAX_WAIT_MS = 100
#: Record batches are capped per topic partition (one produce request carries one per
#: partition); a record larger than this still goes, alone in its batch.
MAX_BATCH_BYTES = 512 * 1024


def bootstrap_of(settings: Settings) -> str:
    """The configured broker, else the embedded one that `banwatch up` runs on this machine."""
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.embedded_broker_port}"


def _ssl_context(security: Mapping[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=security.get("ssl_cafile"))
    if security.get("ssl_certfile"):
        ctx.load_cert_chain(security["ssl_certfile"], security.get("ssl_keyfile"))
    return ctx


def aiokafka_security(security: Mapping[str, Any]) -> dict[str, Any]:
    """kafka-python security keyword arguments → aiokafka's (an `ssl_context` instead of files)."""
    if not security:
        return {}
    out: dict[str, Any] = {"security_protocol": security["security_protocol"]}
    for k in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        if security.get(k) is not None:
            out[k] = security[k]
    if str(security["security_protocol"]).endswith("SSL"):
        out["ssl_context"] = _ssl_context(security)
    return out


def faust_credentials(security: Mapping[str, Any]) -> Any:
    """kafka-python security keyword arguments → faust's `broker_credentials` (None: PLAINTEXT)."""
    if not security:
        return None
    proto = str(security["security_protocol"])
    ctx = _ssl_context(security) if proto.endswith("SSL") else None
    if proto.startswith("SASL"):
        return faust.SASLCredentials(
            username=security.get("sasl_plain_username"),
            password=security.get("sasl_plain_password"),
            mechanism=security.get("sasl_mechanism") or "PLAIN",
            ssl_context=ctx,
        )
    return faust.SSLCredentials(ctx)


def faust_app(settings: Settings, bootstrap: str) -> faust.App:
    """The worker's faust app (id: prefix + `app_id`). Install the faust patches first
    (streams/kafka/faust_patches.py `apply`): the worker does."""
    security = settings.kafka_security()
    return faust.App(
        f"{settings.topic_prefix}{settings.app_id}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        processing_guarantee="at_least_once",
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_s,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        key_serializer="json",
        value_serializer="json",
        web_enabled=False,
        web_tables_enabled=False,
        web_router_enabled=False,
        broker_credentials=faust_credentials(security),
    )


def group_consumer(
    bootstrap: str,
    group_id: str,
    security: Mapping[str, Any],
    session_timeout_s: float,
    heartbeat_s: float,
    fetch_wait_ms: int = HOT_FETCH_WAIT_MS,
) -> AIOKafkaConsumer:
    """The hot path's consumer: manual commits, range assignment (co-partitioning)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=f"{group_id}-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_wait_ms,
        session_timeout_ms=int(session_timeout_s * 1000),
        heartbeat_interval_ms=int(heartbeat_s * 1000),
        partition_assignment_strategy=(RangePartitionAssignor,),
        **aiokafka_security(security),
    )


def batch_producer(bootstrap: str, client_id: str, security: Mapping[str, Any]) -> AIOKafkaProducer:
    """The hot path's producer. No idempotence: aiokafka cannot get a producer id from Tansu
    (FACTS.md); duplicates after a retry are absorbed like replays (outputs are idempotent)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        linger_ms=0,
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=4 * MAX_BATCH_BYTES,
        **aiokafka_security(security),
    )


def hot_consumer(settings: Settings, bootstrap: str, group_id: str) -> AIOKafkaConsumer:
    return group_consumer(
        bootstrap,
        group_id,
        settings.kafka_security(),
        settings.broker_session_timeout_s,
        settings.broker_heartbeat_s,
        settings.hot_fetch_wait_ms,
    )


def hot_producer(settings: Settings, bootstrap: str, client_id: str) -> AIOKafkaProducer:
    return batch_producer(bootstrap, client_id, settings.kafka_security())


def store_consumer(
    settings: Settings, bootstrap: str, topics: Iterable[str], group_id: str
) -> AIOKafkaConsumer:
    """The record-store sink's consumer (streams/store/sink.py): manual commits after the
    database transaction; a long poll interval, so that a database outage does not cost the
    sink its group; metadata refreshed often, so topics created later are seen soon."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id="banwatch-store",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        session_timeout_ms=int(settings.broker_session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.broker_heartbeat_s * 1000),
        max_poll_interval_ms=3_600_000,
        metadata_max_age_ms=10_000,
        **aiokafka_security(settings.kafka_security()),
    )


def store_producer(settings: Settings, bootstrap: str) -> AIOKafkaProducer:
    """The record-store sink's producer (its dead letters, the erasure's audit records)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="banwatch-store",
        acks="all",
        **aiokafka_security(settings.kafka_security()),
    )


def groupless_consumer(
    bootstrap: str, client_id: str, security: Mapping[str, Any] | None = None
) -> AIOKafkaConsumer:
    """An aiokafka consumer that joins no group, commits nothing and starts from the earliest
    record: for reading whole topics (feeds, the console, state recovery, benchmarks)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        client_id=client_id,
        **aiokafka_security(security or {}),
    )


def record_producer(
    bootstrap: str, client_id: str, security: Mapping[str, Any] | None = None
) -> AIOKafkaProducer:
    """An aiokafka producer for a few records at a time, each acknowledged by all replicas
    (the console's actions and audit records, the demo's feed)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        client_id=client_id,
        linger_ms=0,
        **aiokafka_security(security or {}),
    )


def make_producer(bootstrap: str, **security: Any) -> KafkaProducer:
    """A blocking producer of raw bytes with `acks=all` and idempotence, so a retried send is
    not doubled (the short-lived commands and the tests: streams/kafka/blocking.py)."""
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="banwatch-cli",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        **security,
    )


def follower(bootstrap: str, security: Mapping[str, Any]) -> KafkaConsumer:
    """A blocking reader in no group that never creates a topic by a typo (`tail`, tests)."""
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="banwatch-follow",
        group_id=None,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        # Tansu does not always answer a waiting fetch when a record arrives: a short wait keeps
        # a new record from being seen late (measured: docs/faust-on-tansu.md)
        fetch_max_wait_ms=100,
        **security,
    )


def offsets_reader(bootstrap: str, security: Mapping[str, Any]) -> KafkaConsumer:
    """A blocking consumer in no group, for reading log ends (streams/kafka/faust_patches.py)."""
    return KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **security
    )


def admin_client(bootstrap: str, security: Mapping[str, Any]) -> KafkaAdminClient:
    """The admin client that creates topics (streams/kafka/topics.py)."""
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="banwatch-topics", **security)
