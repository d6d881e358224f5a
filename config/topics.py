"""The contract's topic names (CONTRACT.md, "Topics"): the one registry.

Every layer needs them (the decoder names its inputs, the engine its outputs, the worker and
the console subscribe and publish, the metrics label by them), so they live here, at the
bottom of the layers, where everyone may import them. How each topic is created (partitions,
retention) is the broker's business: streams/kafka/topics.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

CONTACT_BANS = "contact-bans"
POSITIONS = "positions"
PATROL_POSITIONS = "patrol-positions"
INCIDENTS = "incidents"
ALERT_ACKS = "alert-acks"
ALERTS = "alerts"
PATROL_TASKS = "patrol-tasks"
DEAD_LETTERS = "dead-letters"
AUDIT = "audit"
TASK_UPDATES = "task-updates"  # contract v2: patrol units and roles report on their tasks
PROTECTED_NOTIFICATIONS = "protected-notifications"  # contract v2: warnings to the protected

#: Partitions of every topic, and the faust app's `topic_partitions`: one number for all keeps
#: any co-partitioned join possible (streams/kafka/topics.py says why).
PARTITIONS = 4

#: What the worker reads (the input side of the contract), in the contract's order.
INPUT_TOPICS = (CONTACT_BANS, POSITIONS, PATROL_POSITIONS, INCIDENTS, ALERT_ACKS)
#: What the worker writes.
OUTPUT_TOPICS = (ALERTS, PATROL_TASKS, DEAD_LETTERS, PROTECTED_NOTIFICATIONS)


@dataclass(frozen=True)
class TopicNames:
    """The contract's topic names as deployed, i.e. with `BANWATCH_TOPIC_PREFIX` applied."""

    contact_bans: str = CONTACT_BANS
    positions: str = POSITIONS
    patrol_positions: str = PATROL_POSITIONS
    incidents: str = INCIDENTS
    alert_acks: str = ALERT_ACKS
    alerts: str = ALERTS
    patrol_tasks: str = PATROL_TASKS
    dead_letters: str = DEAD_LETTERS
    audit: str = AUDIT
    task_updates: str = TASK_UPDATES
    protected_notifications: str = PROTECTED_NOTIFICATIONS

    @classmethod
    def with_prefix(cls, prefix: str = "") -> TopicNames:
        base = cls()
        return cls(**{f.name: prefix + getattr(base, f.name) for f in fields(base)})

    def all(self) -> tuple[str, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def deployed(self) -> dict[str, str]:
        """Contract name -> name as deployed, for every contract topic."""
        base = type(self)()
        return {getattr(base, f.name): getattr(self, f.name) for f in fields(self)}
