"""Undo what a failed batch did to the engine's routed state.

A batch is decided in one `Engine.handle_batch` call (one vectorised pass over the zones: a
record at a time costs ~2.6 times the CPU per fix). When that call raises half-way, the records
before the failing one have already moved their bans' states, and their outputs were never
returned. Before the call, the hot loop takes a `Snapshot` of every state the batch can touch
(the bans of each record's scope, their restrained person's knock count, and for a record of
an unmatched incident every unmatched alert), in the changelog's own codec; when the call
raises, `restore` puts those states back exactly as they were, through the same adoption path
as a rebalance, so the batch can be decided again record by record without applying anything
twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alerts.engine import Engine, Incoming
from alerts.snapshot import (
    dump_alert,
    dump_ban_state,
    dump_knock,
    load_alert,
    load_ban_state,
    load_knock,
)
from geofence.decoding import POSITIONS


class Snapshot:
    """The states `msgs` can touch, as they are now."""

    def __init__(self, engine: Engine, msgs: Iterable[Incoming]) -> None:
        e = self.engine = engine
        reg = e.registry
        self.bans: dict[str, dict[str, Any] | None] = {}
        self.knocks: dict[str, dict[str, Any] | None] = {}
        self.unmatched: dict[str, dict[str, Any]] | None = None
        self.touched = set(e.touched)
        self.touched_unmatched = set(e.touched_unmatched)
        msgs = list(msgs)
        scopes = {m.scope for m in msgs}
        # a lifted ban's state is reached only through an alert id (an acknowledgement)
        fixes_only = all(m.topic == POSITIONS for m in msgs)
        orphans: list[str] | None = None  # states whose ban left the registry (lifted)
        for scope in scopes:
            ids = reg.restraining_ids(scope) if scope is not None else ()
            if not ids and self.unmatched is None:  # an incident's own scope, or unknown
                self.unmatched = {a: dump_alert(al) for a, al in e.unmatched.items()}
            if scope is None:
                continue
            self.knocks[scope] = dump_knock(e.knock, scope)
            for ban_id in ids:
                st = e.states.get(ban_id)
                self.bans[ban_id] = None if st is None else dump_ban_state(st)
            if fixes_only:
                continue
            if orphans is None:
                orphans = [b for b in e.states if reg.get(b) is None]
            for ban_id in orphans:
                if ban_id not in self.bans:
                    self.bans[ban_id] = dump_ban_state(e.states[ban_id])

    def restore(self) -> None:
        """Put every state taken back (a ban that had none has none again)."""
        e = self.engine
        taken = set(self.bans)
        for alert_id in [a for a, owner in e.alert_owner.items() if owner in taken]:
            del e.alert_owner[alert_id]
        for ban_id, data in self.bans.items():
            if data is None:
                e.states.pop(ban_id, None)
            else:
                e.adopt(load_ban_state(data))
        for person, knock in self.knocks.items():
            load_knock(e.knock, person, knock)
        if self.unmatched is not None:
            for alert_id in [a for a in e.unmatched if a not in self.unmatched]:
                del e.unmatched[alert_id]
                e.alert_owner.pop(alert_id, None)
            for data in self.unmatched.values():
                e.adopt_unmatched(load_alert(data))
        # a state put back may differ from the one last written: written again (harmless)
        e.touched |= self.touched
        e.touched_unmatched |= self.touched_unmatched
