"""The contact-ban registry: which bans exist, which version is held, who they concern.

Versions only move forward: a record with a lower version than the one held is ignored (and
reported as stale), also after a tombstone lifted the ban. Zones of held bans live in one
`ZoneTable`, indexed for position lookups. The registry says nothing about time: whether a ban
is in force is asked with an event time (`ContactBan.in_force`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from geofence.records import ContactBan
from geofence.spatial import ZoneIndex, ZoneTable
from geofence.zones import Zone, compile_zone


@dataclass(frozen=True, slots=True)
class CompiledBan:
    """A validated ban with its zones compiled; building one never touches the registry."""

    record: ContactBan
    zones: tuple[Zone, ...]

    @classmethod
    def build(cls, record: ContactBan) -> CompiledBan:
        """Compile every zone; raises `ZoneError` naming the first bad zone."""
        feats = record.zones.features if record.zones is not None else []
        return cls(record, tuple(compile_zone(f) for f in feats))

    @property
    def ban_id(self) -> str:
        return self.record.ban_id


@dataclass(slots=True)
class HeldBan:
    record: ContactBan
    zones: dict[str, Zone]
    slots: dict[str, int]


class Applied(StrEnum):
    applied = "applied"
    stale = "stale"  # lower version than held: ignored
    duplicate = "duplicate"  # same version again: nothing to do


class BanRegistry:
    def __init__(self) -> None:
        self.table = ZoneTable()
        self.index = ZoneIndex(self.table)
        self._held: dict[str, HeldBan] = {}
        #: ban id -> held ban, read-only: `get` without a call per ban (routing asks for
        #: every fix)
        self.held: Mapping[str, HeldBan] = self._held
        self._versions: dict[str, int] = {}
        self._by_restrained: dict[str, set[str]] = {}
        self._by_protected: dict[str, set[str]] = {}
        # the same, sorted, kept up to date on every change: asked for every fix
        self._restraining: dict[str, tuple[str, ...]] = {}
        self._protecting: dict[str, tuple[str, ...]] = {}
        self._slot_owner: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, ban_id: object) -> bool:
        return ban_id in self._held

    def get(self, ban_id: str) -> HeldBan | None:
        return self._held.get(ban_id)

    def ban_ids(self) -> list[str]:
        return sorted(self._held)

    def restraining(self, person_id: str) -> list[str]:
        """Ids of held bans where `person_id` is the restrained person, sorted."""
        return list(self._restraining.get(person_id, ()))

    def protecting(self, person_id: str) -> list[str]:
        """Ids of held bans that protect `person_id`, sorted."""
        return list(self._protecting.get(person_id, ()))

    def restraining_ids(self, person_id: str) -> tuple[str, ...]:
        """`restraining` without the copy (the engine asks for every fix)."""
        return self._restraining.get(person_id, ())

    def protecting_ids(self, person_id: str) -> tuple[str, ...]:
        """`protecting` without the copy."""
        return self._protecting.get(person_id, ())

    def apply(self, ban: CompiledBan) -> Applied:
        rec = ban.record
        held_version = self._versions.get(rec.ban_id)
        if held_version is not None:
            if rec.version < held_version:
                return Applied.stale
            if rec.version == held_version:
                return Applied.duplicate
        self._drop(rec.ban_id)
        slots = {}
        for z in ban.zones:
            slot = self.table.add(z)
            self.index.add(slot)
            self._slot_owner[slot] = rec.ban_id
            slots[z.zone_id] = slot
        self._held[rec.ban_id] = HeldBan(rec, {z.zone_id: z for z in ban.zones}, slots)
        self._versions[rec.ban_id] = rec.version
        self._add(self._by_restrained, self._restraining, rec.restrained_person, rec.ban_id)
        for p in rec.protected_persons:
            self._add(self._by_protected, self._protecting, p, rec.ban_id)
        return Applied.applied

    def lift(self, ban_id: str) -> bool:
        """Tombstone: forget the ban but remember its version. True if it was held."""
        return self._drop(ban_id)

    def _drop(self, ban_id: str) -> bool:
        held = self._held.pop(ban_id, None)
        if held is None:
            return False
        for slot in held.slots.values():
            self.index.remove(slot)
            self.table.remove(slot)
            del self._slot_owner[slot]
        rec = held.record
        self._discard(self._by_restrained, self._restraining, rec.restrained_person, ban_id)
        for p in rec.protected_persons:
            self._discard(self._by_protected, self._protecting, p, ban_id)
        return True

    @staticmethod
    def _add(
        index: dict[str, set[str]], ordered: dict[str, tuple[str, ...]], person: str, ban_id: str
    ) -> None:
        s = index.setdefault(person, set())
        s.add(ban_id)
        ordered[person] = tuple(sorted(s))

    @staticmethod
    def _discard(
        index: dict[str, set[str]], ordered: dict[str, tuple[str, ...]], person: str, ban_id: str
    ) -> None:
        s = index.get(person)
        if s is not None:
            s.discard(ban_id)
            if s:
                ordered[person] = tuple(sorted(s))
            else:
                del index[person]
                del ordered[person]

    def zones_containing(self, lat: float, lon: float) -> list[tuple[str, str]]:
        """(ban_id, zone_id) of every held zone whose zone + buffer covers the point, sorted."""
        out = []
        for slot in self.index.containing(lat, lon):
            zone = self.table.zones[int(slot)]
            assert zone is not None
            out.append((self._slot_owner[int(slot)], zone.zone_id))
        return sorted(out)

    def slots_of(self, ban_id: str) -> dict[str, int]:
        held = self._held.get(ban_id)
        return dict(held.slots) if held else {}

    def signed_distances(
        self, slots: list[int], lats: list[float], lons: list[float]
    ) -> np.ndarray:
        return self.table.signed_distances(
            np.asarray(slots, dtype=np.int64),
            np.asarray(lats, dtype=np.float64),
            np.asarray(lons, dtype=np.float64),
        )
