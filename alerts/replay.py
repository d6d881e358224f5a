"""Offline, deterministic runs of the engine on an event-time clock (`banwatch replay`).

The same decisions as the stream: the same `Engine`, fed one log of records in file order.
Timers fire as event time advances (the newest event time seen), and at the end up to
`until`. Every time in the output is an event time, so the same input gives the same output.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from alerts.engine import Engine, Incoming
from alerts.model import Output
from config.policy import Policy
from geofence.decoding import BANS, decode
from geofence.records import ContactBan


def replay(
    bans: Iterable[bytes],
    events: Iterable[Incoming],
    policy: Policy,
    now: datetime,
    until: datetime | None = None,
) -> Iterator[Output]:
    """Outputs (alerts, tasks, dead letters) in the order they are decided.

    `bans` are applied first (already validated by the caller). Event records timestamped
    after `until` are not applied; timers run to `until` at the end (else to the newest event
    time). `now` is only the reference for rejecting records from the future.
    """
    engine = Engine(policy, event_clock=True)
    for raw in bans:
        engine.handle(Incoming(BANS, None, raw), now)
    for msg in events:
        if until is not None and _after(msg, until, now, policy):
            continue
        for result in engine.handle_batch([msg], now):
            yield from result.outputs
    end = until if until is not None else engine.clock
    if end is not None:
        yield from engine.tick(end)


def _after(msg: Incoming, until: datetime, now: datetime, policy: Policy) -> bool:
    d = decode(msg.topic, msg.key, msg.value, now, policy)
    ts = getattr(d, "ts", None)
    if isinstance(d, ContactBan) or not isinstance(ts, datetime):
        return False
    return ts > until
