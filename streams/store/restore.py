"""Which bans are in force according to the store, and publishing them to an empty broker.

The embedded broker keeps everything in memory: after `banwatch up` restarts, the registry would
be empty and no fix would raise anything until someone re-imported the bans. `up` therefore asks
the store for the latest version of every ban that was not lifted after it was last seen (a
tombstone is stored as a lift) and that did not end more than 30 days ago (an SOS is still
matched to a ban that ended within 30 days, CONTRACT.md v2 rule 8), and publishes them before the
worker starts. The worker applies them as it applies any registry record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy.engine import Engine

from alerts.routing import SOS_AFTER_END
from streams.kafka.blocking import make_producer, produce_json
from streams.store import schema
from streams.store.registry import ban_rows, in_force_versions


def bans_in_force(engine: Engine, now: datetime) -> list[dict[str, Any]]:
    """The version of each ban that the registry holds according to the store (`registry`),
    unless it ended longer than the core's `SOS_AFTER_END` before `now` (aware); with its zones;
    by ban id."""
    # rule 8: an SOS still matches a ban that ended within SOS_AFTER_END
    horizon = now.astimezone(UTC).replace(tzinfo=None) - SOS_AFTER_END
    b = schema.bans
    with engine.connect() as conn:
        rows, lifted = ban_rows(conn)
        held = in_force_versions(((r.ban_id, r.version, r.last_seen_ms) for r in rows), lifted)
        keep = [
            (r.ban_id, r.version)
            for r in rows
            if held.get(r.ban_id) == r.version
            and r.erased_at is None
            and (r.valid_until is None or r.valid_until > horizon)
        ]
        if not keep:
            return []
        payloads = conn.execute(
            sa.select(b.c.payload)
            .where(sa.tuple_(b.c.ban_id, b.c.version).in_(keep))
            .order_by(b.c.ban_id)
        ).scalars()
        return list(payloads)


def registry_is_empty(bootstrap: str, topic: str, **security: Any) -> bool:
    """True when `topic` holds no record at all (a fresh embedded broker)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="banwatch-restore", **security)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return True
        # Tansu under-reports "latest" by the newest batch's size - 1, never to 0 when there is
        # a record (FACTS.md): good enough for empty or not.
        return all(v == 0 for v in consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def publish_bans(
    bootstrap: str,
    bans_topic: str,
    audit_topic: str,
    bans: list[dict[str, Any]],
    now: datetime,
    **security: Any,
) -> None:
    """Publish `bans` keyed by ban id, each with an audit record saying where it came from."""
    producer = make_producer(bootstrap, **security)
    stamp = now.astimezone(UTC).isoformat().replace("+00:00", "Z")
    try:
        for ban in bans:
            produce_json(producer, bans_topic, ban["ban_id"], ban)
            produce_json(
                producer,
                audit_topic,
                f"ban:{ban['ban_id']}",
                {
                    "ts": stamp,
                    "actor": "banwatch-store",
                    "role": "system",
                    "action": "import",
                    "object": f"ban:{ban['ban_id']}",
                    "reason": f"restored version {ban.get('version')} from the record store",
                },
            )
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)
