"""Which version of each ban the registry holds, according to the store.

The worker reads `contact-bans` in order: a version lower than the one held is ignored, a
tombstone lifts the ban (CONTRACT.md, "ContactBan"). The store keeps every version with the last
time it was seen (`last_seen_ms`) and every lift with its time, which is enough to answer what
the worker holds after reading the whole topic: the highest version seen since the ban's last
lift; nothing if it was lifted after every sighting. Restore publishes exactly that, and
retention never erases those versions' zones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from streams.store import schema


def in_force_versions(
    seen: Iterable[tuple[str, int, int]], lifted: Mapping[str, int]
) -> dict[str, int]:
    """`seen`: (ban_id, version, last_seen_ms); `lifted`: ban_id -> latest lift (ms). A lift at
    the same millisecond as a sighting wins (the safe side: a restore never revives it)."""
    held: dict[str, int] = {}
    for ban_id, version, last_seen in seen:
        if last_seen > lifted.get(ban_id, -1):
            held[ban_id] = max(held.get(ban_id, version), version)
    return held


def ban_rows(conn: Connection) -> tuple[list[Any], dict[str, int]]:
    """Every stored ban version (without payload) and the latest lift of each ban."""
    b, lifts = schema.bans, schema.ban_lifts
    rows = list(
        conn.execute(
            sa.select(
                b.c.ban_id, b.c.version, b.c.last_seen_ms, b.c.valid_until, b.c.erased_at
            ).order_by(b.c.ban_id, b.c.version)
        ).all()
    )
    lifted: dict[str, int] = dict(
        conn.execute(
            sa.select(lifts.c.ban_id, sa.func.max(lifts.c.lifted_ms)).group_by(lifts.c.ban_id)
        )
        .tuples()
        .all()
    )
    return rows, lifted
