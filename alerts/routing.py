"""Which bans a record concerns, and under which partition key it is decided.

State lives per restrained person (the partition key of the stream): every decision for a ban
needs its restrained person's and protected persons' fixes in one place. This module answers,
for one record and the bans held now:

- a fix: the in-force bans it concerns (`fix_bans`), and the same grouped by restrained person
  (`fix_routes`): a restrained person's fix is decided under that person, a protected person's
  fix is re-keyed to the restrained person of each of their bans;
- an incident: the bans it matches (`match_incident`, contract v2 rule 8) and where it goes
  (`incident_targets`: the WHOLE match list to every restrained person concerned, rule 9);
- an acknowledgement: where its alert's state lives (`alert_route_key`).

The stream worker uses it to route (streams/worker/routing.py adds only partition numbers and
the Kafka envelope), `replay` and the engine to decide: the engine takes the bans decided here
along with the record and does not ask the registry again. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from geofence.bans import BanRegistry, HeldBan
from geofence.records import ContactBan, Incident, IncidentKind, LocationFix

#: One ban a fix concerns: (ban id, the held ban, whether the fix is its restrained person's).
Concern = tuple[str, HeldBan, bool]

#: An SOS is also matched to bans that ended (validity over, or revoked) this long ago (rule 8).
SOS_AFTER_END = timedelta(days=30)


def incident_scope(incident_id: str) -> str:
    """The routing key of an incident that matched no ban (and of its unmatched alert)."""
    return f"incident:{incident_id}"


# ----------------------------------------------------------------------------------- fixes
def fix_bans(registry: BanRegistry, fix: LocationFix) -> list[Concern]:
    """The bans in force at the fix's time that it concerns, in the order they are decided:
    those restraining its person, then those protecting its person (each sorted by ban id)."""
    person, ts = fix.person_id, fix.ts
    held_bans = registry.held  # the ids below are all held
    out: list[Concern] = []
    for ban_id in registry.restraining_ids(person):
        held = held_bans[ban_id]
        if held.record.in_force(ts):
            out.append((ban_id, held, True))
    for ban_id in registry.protecting_ids(person):
        held = held_bans[ban_id]
        if held.record.in_force(ts):
            out.append((ban_id, held, False))
    return out


def fix_routes(registry: BanRegistry, fix: LocationFix) -> dict[str, list[Concern]]:
    """Restrained person -> the in-force bans of that person the fix concerns (in `fix_bans`
    order), for every restrained person of a held ban that restrains or protects the fix's
    person: a key with no ban in force still receives the fix (it is decided there as
    concerning nothing), as the stream has always forwarded it. Sorted by person."""
    person, ts = fix.person_id, fix.ts
    held_bans = registry.held  # the ids below are all held
    routes: dict[str, list[Concern]] = {}
    for ban_id in registry.restraining_ids(person):
        held = held_bans[ban_id]
        mine = routes.setdefault(person, [])
        if held.record.in_force(ts):
            mine.append((ban_id, held, True))
    for ban_id in registry.protecting_ids(person):
        held = held_bans[ban_id]
        rec = held.record
        mine = routes.setdefault(rec.restrained_person, [])
        if rec.in_force(ts):
            mine.append((ban_id, held, False))
    return dict(sorted(routes.items()))


def scoped(bans: Iterable[Concern], scope: str) -> list[Concern]:
    """The bans of restrained person `scope` among `bans`."""
    return [c for c in bans if c[1].record.restrained_person == scope]


# ------------------------------------------------------------------------------- incidents
def sos_matches(ban: ContactBan, t: datetime) -> bool:
    """An SOS at `t` matches the ban while it is in force and for `SOS_AFTER_END` after it
    ended: its validity over, or revoked. A revoked ban carries no time of revocation: it
    counts as ended at `valid_until` at the latest (an open-ended revoked ban matches from
    `valid_from` on)."""
    if t < ban.valid_from:
        return False
    return ban.valid_until is None or t < ban.valid_until + SOS_AFTER_END


def match_incident(registry: BanRegistry, inc: Incident) -> list[tuple[str, str]]:
    """Match by ban id, else by person (restrained or protected), else by position inside
    a ban's zone: (ban_id, how) pairs, sorted by ban id. Bans in force at the incident's
    time; for an SOS also bans that ended within `SOS_AFTER_END` (rule 8)."""
    reg = registry

    def ok(ban_id: str, t: datetime) -> bool:
        held = reg.get(ban_id)
        if held is None:
            return False
        if inc.kind is IncidentKind.sos:
            return sos_matches(held.record, t)
        return held.record.in_force(t)

    matched: list[tuple[str, str]] = []
    if inc.ban_id is not None and ok(inc.ban_id, inc.ts):
        matched = [(inc.ban_id, "ban id")]
    if not matched and inc.person_id is not None:
        ids = sorted(set(reg.restraining(inc.person_id)) | set(reg.protecting(inc.person_id)))
        matched = [(b, "person") for b in ids if ok(b, inc.ts)]
    if not matched and inc.lat is not None and inc.lon is not None:
        ids = sorted({b for b, _ in reg.zones_containing(inc.lat, inc.lon)})
        matched = [(b, "position inside a zone") for b in ids if ok(b, inc.ts)]
    return matched


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


# ------------------------------------------------------------------------------------ acks
def alert_route_key(alert: dict[str, Any]) -> str | None:
    """Where an alert's state lives (and so where an acknowledgement of it goes): its
    restrained person, or its unmatched incident's scope."""
    person = alert.get("restrained_person")
    if isinstance(person, str):
        return person
    inc = alert.get("incident_id")
    return incident_scope(inc) if isinstance(inc, str) else None
