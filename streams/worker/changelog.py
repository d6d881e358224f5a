"""The worker's state in its changelog topic: what is written at a commit, what is adopted
after a rebalance, and the key format.

Keys (JSON strings) and values (`{"p": partition, "d": data}`), partitioned like `positions`:

    ban:<ban id>            a `BanState` (alerts/snapshot.py), in its restrained person's partition
    knock:<person>          the person's count of approach alerts
    outreach:<person>       the person's outreach chain and role tasks (contract v2)
    unmatched:<alert id>    the alert of an incident matched to no ban, in the incident's scope
    offset:<f|r>:<p>        the last offset of `positions` (f) or `routed` (r) partition p
                            whose changes the state above contains
    outputs:<p>             {output topic: {partition: offset}}: every output this worker
                            published after this commit lies at or past these offsets (the
                            base offsets of the outputs acknowledged by an earlier commit). The
                            next owner of p reads the output topics from there and does not
                            publish an alert or task revision it finds again (a SIGKILL's
                            replay, streams/worker/hotloop.py)

A key whose state is over is tombstoned (a null value), so that recovery does not read it
for ever: `ban:` once the ban's life ended (lifted, revoked or expired: its end-of-life
revisions leave in the same commit, and the commit sends state only after the broker has
acknowledged the outputs) or when its state holds nothing; `knock:` when the count is gone;
`unmatched:` once the engine has dropped the alert (resolved, after its retention).

A marker tells the next owner to skip records it has already applied (at-least-once delivery
made idempotent); it must never be durable before the outputs of those records are
(streams/worker/checkpoint.py keeps that order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from alerts.banstate import BanState
from alerts.engine import Engine
from alerts.routing import incident_scope
from alerts.snapshot import (
    dump_alert,
    dump_ban_state,
    dump_knock,
    dump_outreach,
    load_alert,
    load_ban_state,
    load_knock,
    load_outreach,
)
from streams.worker.routing import partition_for

log = logging.getLogger("banwatch.worker")

#: write(key, value, partition): one encoded state record for the state outbox (None: a
#: tombstone)
Write = Callable[[bytes, bytes | None, int], None]


def encode(key: str, partition: int, data: Any) -> tuple[bytes, bytes]:
    """A state record as written: orjson (the state is our own JSON, no NaN can reach it since
    inputs with NaN are rejected, and it is most of what the worker writes)."""
    return orjson.dumps(key), orjson.dumps({"p": partition, "d": data})


def mark(source: str, partition: int) -> str:
    """The marker name of a hot partition: `f:<p>` for `positions`, `r:<p>` for `routed`."""
    return f"{source}:{partition}"


def _floors_json(floors: dict[tuple[str, int], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (topic, p), off in sorted(floors.items()):
        out.setdefault(topic, {})[str(p)] = off
    return out


class ChangelogState:
    """The offsets applied per hot partition, and what of the state was last written."""

    def __init__(self) -> None:
        self.applied: dict[str, int] = {}  # "f:partition" / "r:partition" -> last applied offset
        self._knock_written: dict[str, Any] = {}  # person -> last knock state written
        self._marks_written: dict[str, int] = {}  # marker -> offset in the changelog
        self._unmatched_written: dict[str, int] = {}  # unmatched alert id -> its partition
        self._ban_partition: dict[str, int] = {}  # ban id -> partition its state was written to
        # (output topic, partition) -> base offset of the latest output batch acknowledged
        self.floors: dict[tuple[str, int], int] = {}
        self._floors_written: dict[int, dict[tuple[str, int], int]] = {}  # hot partition ->
        # after an adoption: (output topic, partition) -> lowest floor of the partitions adopted
        self.adopted_floors: dict[tuple[str, int], int] = {}

    def delivered(self, results: list[Any]) -> None:
        """Note where acknowledged outputs landed (aiokafka's `RecordMetadata`: the base offset
        of each batch)."""
        floors = self.floors
        for md in results:
            topic, partition, offset = (
                getattr(md, "topic", None),
                getattr(md, "partition", None),
                getattr(md, "offset", None),
            )
            if isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int):
                slot = (topic, partition)
                if offset > floors.get(slot, -1):
                    floors[slot] = offset

    def persist(self, engine: Engine, write: Write) -> None:
        """Write what the engine touched, and the offsets applied, each key to its partition
        (at commit time: a ban touched by many fixes is written once)."""
        e = engine

        def put(key: str, partition: int, data: Any) -> None:
            k, v = encode(key, partition, data)
            write(k, v, partition)

        def tombstone(key: str, partition: int) -> None:
            write(orjson.dumps(key), None, partition)

        for ban_id in sorted(e.touched):
            st = e.states.get(ban_id)
            held = e.registry.get(ban_id)
            if st is None:
                continue
            person = held.record.restrained_person if held is not None else None
            if person is None:
                person = next(
                    (a.restrained_person for a in st.alerts.values() if a.restrained_person),
                    None,
                )
            p = partition_for(person) if person is not None else self._ban_partition.get(ban_id)
            if p is None:
                continue
            self._ban_partition[ban_id] = p
            data = dump_ban_state(st)
            if st.ended is not None or data == dump_ban_state(BanState(ban_id)):
                tombstone(f"ban:{ban_id}", p)
            else:
                put(f"ban:{ban_id}", p, data)
            if person is None:
                continue
            knock = dump_knock(e.knock, person)
            if self._knock_written.get(person) != knock:  # changes with approach alerts
                if knock is None:
                    self._knock_written.pop(person, None)
                    tombstone(f"knock:{person}", p)
                else:
                    self._knock_written[person] = knock
                    put(f"knock:{person}", p, knock)
        for aid in sorted(e.touched_unmatched):
            a = e.unmatched.get(aid)
            if a is not None and a.incident_id is not None:
                p = partition_for(incident_scope(a.incident_id))
                self._unmatched_written[aid] = p
                put(f"unmatched:{aid}", p, dump_alert(a))
            elif a is None and aid in self._unmatched_written:  # dropped after its retention
                tombstone(f"unmatched:{aid}", self._unmatched_written.pop(aid))
        for person in sorted(e.book.touched):
            o = e.book.people.get(person)
            if o is not None:
                put(f"outreach:{person}", partition_for(person), dump_outreach(o))
        e.book.touched.clear()
        e.touched.clear()
        e.touched_unmatched.clear()
        for name, offset in self.applied.items():
            if self._marks_written.get(name) != offset:
                self._marks_written[name] = offset
                put(f"offset:{name}", int(name.split(":")[1]), offset)
        if self.floors:
            for p in sorted({int(name.split(":")[1]) for name in self.applied}):
                if self._floors_written.get(p) != self.floors:
                    self._floors_written[p] = dict(self.floors)
                    put(f"outputs:{p}", p, _floors_json(self.floors))

    def forget(self) -> None:
        """Nothing is ours until an assignment says so (after a revocation)."""
        self.applied.clear()

    def adopt(self, engine: Engine, partitions: set[int], data: dict[str, Any]) -> int:
        """After an assignment: take over the state of `partitions`, as read back from the
        changelog (key -> latest value); returns how many ban states were adopted."""
        e = engine
        e.reset_routed()
        self.applied.clear()
        self._knock_written.clear()
        self._marks_written.clear()
        self._unmatched_written.clear()
        self._ban_partition.clear()
        self._floors_written.clear()
        self.adopted_floors = {}
        bans = 0
        for key, value in data.items():
            if not isinstance(value, dict) or value.get("p") not in partitions:
                continue
            kind, _, ident = str(key).partition(":")
            d = value["d"]
            if kind == "ban":
                e.adopt(load_ban_state(d))
                self._ban_partition[ident] = int(value["p"])
                bans += 1
            elif kind == "knock":
                load_knock(e.knock, ident, d)
                self._knock_written[ident] = d
            elif kind == "unmatched":
                e.adopt_unmatched(load_alert(d))
                self._unmatched_written[ident] = int(value["p"])
            elif kind == "outreach":
                e.adopt_outreach(load_outreach(d))
            elif kind == "offset":
                self.applied[ident] = self._marks_written[ident] = int(d)
            elif kind == "outputs" and isinstance(d, dict):
                for topic, parts in d.items():
                    for p, off in parts.items():
                        slot = (str(topic), int(p))
                        held = self.adopted_floors.get(slot)
                        self.adopted_floors[slot] = int(off) if held is None else min(held, off)
        e.touched.clear()
        e.touched_unmatched.clear()
        e.book.touched.clear()
        log.info("partitions %s adopted: %d ban states", sorted(partitions), bans)
        return bans
