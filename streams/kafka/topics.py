"""The contract's topics on the broker: partitions, retention, creation.

Names are contract (config/topics.py, the one registry); partitions and configs are ours to
tune. Retention is a privacy decision, not a disk one: positions, incidents and anything
carrying them are personal data and must age out of the log. Kafka deletes whole segments, so a
record can outlive `retention.ms` by up to `segment.ms`; every personal-data topic therefore
rolls segments far more often than it retains.

Every topic gets the same partition count. Faust refuses to update a table from a stream whose
topic has a different partition count than the table's changelog (`PartitionsMismatch`), and the
partition count caps how many workers share the load; one number for all keeps any co-partitioned
join possible and makes the app's `topic_partitions` a single setting (`PARTITIONS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError, for_code

from config.topics import (
    ALERT_ACKS,
    ALERTS,
    AUDIT,
    CONTACT_BANS,
    DEAD_LETTERS,
    INCIDENTS,
    PARTITIONS,
    PATROL_POSITIONS,
    PATROL_TASKS,
    POSITIONS,
    PROTECTED_NOTIFICATIONS,
    TASK_UPDATES,
)
from streams.kafka.clients import admin_client

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


@dataclass(frozen=True)
class TopicSpec:
    """How one contract topic is created; `name` is without the prefix."""

    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)
    why: str = ""


def _retained(days: float, segment_hours: float) -> dict[str, str]:
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(int(days * _DAY_MS)),
        "segment.ms": str(int(segment_hours * _HOUR_MS)),
    }


SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(
        CONTACT_BANS,
        PARTITIONS,
        {"cleanup.policy": "compact"},
        "the registry: the latest record per ban must stay for as long as the ban does "
        "(months); a tombstone lifts it",
    ),
    TopicSpec(
        POSITIONS,
        PARTITIONS,
        _retained(days=3, segment_hours=1),
        "the hot path and the most sensitive data: where persons are; kept only long enough "
        "to replay a weekend's outage",
    ),
    TopicSpec(
        PATROL_POSITIONS,
        PARTITIONS,
        _retained(days=1, segment_hours=1),
        "officers' whereabouts; only the latest fix matters (max_patrol_age_s)",
    ),
    TopicSpec(
        INCIDENTS,
        PARTITIONS,
        _retained(days=7, segment_hours=6),
        "112 calls and tips with free text and positions; the case system is the archive",
    ),
    TopicSpec(
        ALERT_ACKS,
        PARTITIONS,
        _retained(days=30, segment_hours=24),
        "operator actions; co-partitioned with alert state keyed by alert_id",
    ),
    TopicSpec(
        ALERTS,
        PARTITIONS,
        {
            "cleanup.policy": "compact,delete",
            "retention.ms": str(30 * _DAY_MS),
            "segment.ms": str(_DAY_MS),
        },
        "latest revision per alert is the state consoles rebuild from; alerts carry positions, "
        "so even the compacted log ages out after 30 days",
    ),
    TopicSpec(
        PATROL_TASKS,
        PARTITIONS,
        _retained(days=7, segment_hours=6),
        "tasks carry the target position; follow-up tasks are due within 7 days",
    ),
    TopicSpec(
        DEAD_LETTERS,
        PARTITIONS,
        _retained(days=7, segment_hours=6),
        "rejected input verbatim, so as personal as the input; a week to diagnose and replay",
    ),
    TopicSpec(
        AUDIT,
        PARTITIONS,
        {"cleanup.policy": "delete", "retention.ms": "-1"},
        "the record of who consulted what; never expires here (no coordinates or free text)",
    ),
    TopicSpec(
        TASK_UPDATES,
        PARTITIONS,
        _retained(days=7, segment_hours=6),
        "what units and roles report on their tasks (outcomes, consent, free-text notes): "
        "kept like the tasks they answer; the record store is the archive",
    ),
    TopicSpec(
        PROTECTED_NOTIFICATIONS,
        PARTITIONS,
        _retained(days=7, segment_hours=6),
        "warnings to protected persons' devices; a device that was off reads them within "
        "the week, the record store keeps them",
    ),
)


def ensure_topics(
    bootstrap: str,
    prefix: str = "",
    partitions_override: int | None = None,
    **security: object,
) -> list[str]:
    """Create every contract topic that does not exist yet; return the names it created.

    Idempotent: existing topics are left exactly as they are (partitions and configs included),
    so a running deployment is never altered behind its back. `partitions_override` replaces
    every spec's partition count (tests use 1 for speed). `security` goes to kafka-python as is
    (`security_protocol`, `ssl_cafile`, `sasl_*`).
    """
    new_topics = [
        NewTopic(
            prefix + spec.name,
            partitions_override or spec.partitions,
            -1,  # the cluster's default.replication.factor (1 on a single broker)
            topic_configs=dict(spec.configs),
        )
        for spec in SPECS
    ]
    admin = admin_client(bootstrap, security)
    try:
        response = admin.create_topics(new_topics, raise_errors=False, wait_for_metadata=True)
    finally:
        admin.close()
    created = []
    for result in response["topics"]:
        error = for_code(result["error_code"])
        if error is TopicAlreadyExistsError:
            continue
        if result["error_code"]:
            raise error(f"cannot create topic {result['name']}: {result['error_message']}")
        created.append(result["name"])
    return created


def ensure_internal(
    bootstrap: str,
    routed: str,
    state: str,
    security: Mapping[str, object],
    task_route: str | None = None,
) -> None:
    """Create the worker's internal topics like contract topics (a broker would otherwise
    auto-create them with its defaults, on Kafka one partition, or with auto-creation off not
    at all). `routed` holds copies of fixes, incidents, acks and task updates: it ages out like
    `positions`, and so does `task_route` (task updates on their way to the alert index).
    The state changelog keeps the latest value per key (compacted), like faust's tables."""
    configs = dict(next(spec for spec in SPECS if spec.name == POSITIONS).configs)
    extra = (
        [] if task_route is None else [NewTopic(task_route, PARTITIONS, -1, topic_configs=configs)]
    )
    admin = admin_client(bootstrap, security)
    try:
        response = admin.create_topics(
            [
                NewTopic(routed, PARTITIONS, -1, topic_configs=configs),
                NewTopic(state, PARTITIONS, -1, topic_configs={"cleanup.policy": "compact"}),
                *extra,
            ],
            raise_errors=False,
        )
    finally:
        admin.close()
    for result in response["topics"]:
        error = for_code(result["error_code"])
        if result["error_code"] and error is not TopicAlreadyExistsError:
            raise error(f"cannot create topic {result['name']}: {result['error_message']}")
