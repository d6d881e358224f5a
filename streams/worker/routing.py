"""Where a record goes: partitions, the `routed` envelope, which persons a fix concerns.

Decisions for a ban need the restrained person's and the protected persons' fixes in one
place. State lives per restrained person's partition: a restrained person's own fixes already
arrive keyed by that person on `positions` and are decided where they land; everything else
that concerns the person (protected persons' fixes, incidents, acknowledgements) is re-keyed to
the person through the internal `routed` topic, co-partitioned with `positions`.

Nothing here touches a client: the hot loop and the faust agents both use it, and the
in-process tests (tests/streams/test_worker_inprocess.py) drive it without a broker.
(Issue 13, item 1, moves the "which bans does this concern" half into the core.)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from alerts.engine import Incoming, incident_scope
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


def alert_route_key(alert: dict[str, Any]) -> str | None:
    """Where an alert's state lives: its restrained person, or its unmatched incident."""
    person = alert.get("restrained_person")
    if isinstance(person, str):
        return person
    inc = alert.get("incident_id")
    return incident_scope(inc) if isinstance(inc, str) else None


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
    """A valid fix read from `positions` partition `msg.partition`: the message to decide here
    (a restrained person's fix on the partition their state lives on), and the restrained
    persons it must be re-keyed to (a protected person's fix goes to the restrained person of
    each of their bans; a restrained person's fix produced with another partitioner goes to
    where the person's state is)."""
    person = fix.person_id
    local: Incoming | None = None
    targets: set[str] = set()
    if registry.restraining_ids(person):
        if partition_for(person) == msg.partition:
            local = Incoming(
                POSITIONS,
                msg.key,
                msg.value,
                msg.partition,
                msg.offset,
                scope=person,
                decoded=fix,
            )
        else:
            targets.add(person)
    for ban_id in registry.protecting_ids(person):
        held = registry.get(ban_id)
        if held is not None:
            targets.add(held.record.restrained_person)
    return local, sorted(targets)


def incident_targets(
    registry: BanRegistry, matches: Iterable[tuple[str, str]], incident_id: str
) -> list[tuple[str, list[tuple[str, str]]]]:
    """Where an incident goes: every restrained person concerned, each with the WHOLE match
    list (each applies it to its own bans, and the list's first ban alone sends the incident's
    respond and protect tasks: one response per incident, contract v2 rule 9); an incident
    matched to no ban goes, with no match, to its own scope."""
    matched = list(matches)
    persons: set[str] = set()
    for ban_id, _how in matched:
        held = registry.get(ban_id)
        if held is not None:
            persons.add(held.record.restrained_person)
    if not persons:
        return [(incident_scope(incident_id), [])]
    return [(person, matched) for person in sorted(persons)]
