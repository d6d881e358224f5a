"""Where a record goes on Kafka: partitions (murmur2) and the `routed` envelope.

Decisions for a ban need the restrained person's and the protected persons' fixes in one
place. State lives per restrained person's partition: a restrained person's own fixes already
arrive keyed by that person on `positions` and are decided where they land; everything else
that concerns the person (protected persons' fixes, incidents, acknowledgements) is re-keyed to
the person through the internal `routed` topic, co-partitioned with `positions`.

Nothing here touches a client: the hot loop and the faust agents both use it, and the
in-process tests (tests/streams/test_worker_inprocess.py) drive it without a broker. Which
persons and bans a record concerns is the core's answer (alerts/routing.py).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from alerts.engine import Incoming
from alerts.routing import fix_routes
from config.topics import PARTITIONS
from geofence.bans import BanRegistry
from geofence.decoding import POSITIONS
from geofence.records import LocationFix

#: Task states after which no update is valid (contract v2, "Tasks have a lifecycle").
TASK_END_STATES = frozenset({"done", "declined", "expired", "cancelled"})

_partitioner = DefaultPartitioner()
_ALL = list(range(PARTITIONS))


@functools.lru_cache(maxsize=1 << 16)  # persons report again and again: murmur2 in Python
def partition_for(key: str) -> int:
    """The partition Kafka's default partitioner gives `key` (murmur2, as Java and aiokafka)."""
    return int(_partitioner(key.encode("utf-8"), _ALL, _ALL))


def record_key(raw: bytes | None) -> str | None:
    """A record's key as text (undecodable bytes replaced: keys are only compared)."""
    return None if raw is None else raw.decode("utf-8", "replace")


def envelope(msg: Incoming, matched: Iterable[Any] | None = None) -> bytes:
    """`msg` wrapped for `routed`: its source topic, key, value, partition and offset (the
    dead letters and the engine see the original record), and for an incident the bans it was
    matched to."""
    env: dict[str, Any] = {
        "t": msg.topic,
        "k": msg.key,
        "v": (msg.value or b"").decode("utf-8"),
        "p": msg.partition,
        "o": msg.offset,
    }
    if matched is not None:
        env["m"] = [list(x) for x in matched]
    return orjson.dumps(env)


def unwrap(scope: str | None, value: bytes) -> Incoming:
    """A `routed` record back into the message it carries, scoped to the key it came under."""
    env = orjson.loads(value)
    matched = env.get("m")
    return Incoming(
        env["t"],
        env["k"],
        env["v"].encode("utf-8"),
        env["p"],
        env["o"],
        scope=scope,
        matched=None if matched is None else tuple((b, h) for b, h in matched),
    )


def route_fix(
    registry: BanRegistry, fix: LocationFix, msg: Incoming
) -> tuple[Incoming | None, list[str]]:
    """A valid fix read from `positions` partition `msg.partition`, routed by the core
    (alerts/routing.py `fix_routes`): the message to decide here (a restrained person's fix on
    the partition their state lives on, with the bans it concerns there), and the restrained
    persons it must be re-keyed to (a protected person's fix goes to the restrained person of
    each of their bans; a restrained person's fix produced with another partitioner goes to
    where the person's state is)."""
    person = fix.person_id
    local: Incoming | None = None
    targets: list[str] = []
    for target, bans in fix_routes(registry, fix).items():
        if target == person and partition_for(person) == msg.partition:
            local = Incoming(
                POSITIONS,
                msg.key,
                msg.value,
                msg.partition,
                msg.offset,
                scope=person,
                decoded=fix,
                bans=bans,
            )
        else:
            targets.append(target)
    return local, targets


@dataclass(frozen=True, slots=True)
class TaskRoute:
    """Where a task's state lives, as its revisions on `patrol-tasks` say: its restrained
    person (role tasks carry one), else its alert (respond and protect tasks), whose owner the
    alert index knows. `ended_at` (epoch seconds): when it reached an end state."""

    person: str | None
    alert_id: str | None
    seq: int
    ended_at: float | None


class TaskIndex:
    """task id -> where the task's state lives, from every task revision on `patrol-tasks`.

    Every worker reads `patrol-tasks` whole from the beginning (a global feed, like the ban
    registry), so every worker holds the whole index and rebuilds it after a restart or a
    rebalance from the topic itself: a task update is routed by whichever worker owns its
    `task-updates` partition. Ended tasks are dropped `retention_s` after they ended (`prune`),
    as the engine drops them from its state; an update for one is then an unknown task."""

    def __init__(self) -> None:
        self._routes: dict[str, TaskRoute] = {}

    def __len__(self) -> int:
        return len(self._routes)

    def get(self, task_id: str) -> TaskRoute | None:
        return self._routes.get(task_id)

    def observe(self, task: Mapping[str, Any], at_s: float) -> None:
        """Index one task revision (seen at `at_s`, epoch seconds); the highest `seq` wins,
        a revision without `seq` (contract v1) counts as the first."""
        task_id = task.get("task_id")
        if not isinstance(task_id, str):
            return
        seq = task.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else 1
        old = self._routes.get(task_id)
        if old is not None and old.seq >= seq:
            return
        person = task.get("restrained_person")
        alert_id = task.get("alert_id")
        ended = task.get("state") in TASK_END_STATES
        self._routes[task_id] = TaskRoute(
            person if isinstance(person, str) else None,
            alert_id if isinstance(alert_id, str) else None,
            seq,
            (old.ended_at if old is not None and old.ended_at is not None else at_s)
            if ended
            else None,
        )

    def prune(self, now_s: float, retention_s: float) -> int:
        """Drop the tasks that ended at least `retention_s` ago; how many went."""
        due = [
            k
            for k, r in self._routes.items()
            if r.ended_at is not None and r.ended_at + retention_s <= now_s
        ]
        for k in due:
            del self._routes[k]
        return len(due)
