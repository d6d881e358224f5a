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
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from alerts.engine import Incoming
from alerts.routing import fix_routes
from config.topics import PARTITIONS
from geofence.bans import BanRegistry
from geofence.decoding import POSITIONS
from geofence.records import LocationFix

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
