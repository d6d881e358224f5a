"""Warnings to the protected person's alarm device (contract v2, "Protected-person warnings").

Derived from the alert revisions the engine publishes, never from anything else: the engine
hands every revision it emits, with the protected persons it concerns, to `derive`, which
returns the `protected-notifications` records it calls for:

- `warning` (code `approach`): an approach towards her, or towards her ban's zones;
- `danger`: a priority-1 `zone_breach` (code `zone_breach`) or `proximity_breach`
  (`proximity`) of her ban, a priority-1 `signal_lost` (`signal_lost`), and an `sos` alert of
  her ban (`sos_received`, whatever its priority: an SOS is always priority 1);
- `all_clear`: the episode of an alert she was warned of ended (`episode: ended`) or the alert
  was resolved.

At most one record per protected person, alert and level: the levels already sent for an
alert are kept in a set of strings (`mark`) that the engine stores on the alert itself, so it
is in the snapshot with the alert. Ids are derived from (person, alert, level) only.

A notification never carries the restrained person's position, distance or direction, nor
hers: its keys are exactly `NOTIFICATION_KEYS`, its values ids, a time, closed-set words and
one flag. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum

from alerts.model import (
    CONTRACT_VERSION,
    POSITION_LOST,
    Kind,
    Output,
    State,
    Value,
    stable_id,
)
from config.topics import PROTECTED_NOTIFICATIONS

NOTIFICATION_KEYS = frozenset(
    {
        "notification_id",
        "person_id",
        "ban_id",
        "alert_id",
        "ts",
        "level",
        "code",
        "police_dispatched",
        "contract_version",
    }
)


class Level(StrEnum):
    warning = "warning"
    danger = "danger"
    all_clear = "all_clear"


class Code(StrEnum):
    approach = "approach"
    proximity = "proximity"
    zone_breach = "zone_breach"
    signal_lost = "signal_lost"
    sos_received = "sos_received"


_CODE = {
    Kind.approach.value: Code.approach,
    Kind.proximity_breach.value: Code.proximity,
    Kind.zone_breach.value: Code.zone_breach,
    Kind.signal_lost.value: Code.signal_lost,
    Kind.sos.value: Code.sos_received,
}


def level_now(revision: Value) -> Level | None:
    """The warning or danger a live revision calls for, or None (a priority-2 breach or
    signal loss is not one: the contract names only priority 1)."""
    kind = revision["kind"]
    if kind == Kind.approach.value:
        return Level.warning
    if kind == Kind.sos.value:
        return Level.danger
    if kind in _CODE and revision["priority"] == 1:
        return Level.danger
    return None


def recipients(revision: Value, protected: Sequence[str], caller: str | None) -> list[str]:
    """Whom a revision concerns: the protected person a proximity or approach episode follows;
    otherwise every protected person of the ban (`protected`: a ban protecting two warns
    both); for an SOS that matched no ban, the person the incident named (`caller`), if any."""
    person = revision.get("protected_person")
    if isinstance(person, str):
        return [person]
    if revision.get("ban_id") is None:
        return [caller] if caller is not None and revision["kind"] == Kind.sos.value else []
    return list(dict.fromkeys(protected))


def derive(
    revision: Value,
    persons: Iterable[str],
    sent: set[str],
    police_dispatched: bool,
) -> list[Output]:
    """The notifications `revision` (an alert revision as published) calls for, to `persons`
    (see `recipients`); `sent` holds what was already sent for this alert and is updated.
    An all-clear goes to whoever was warned of this alert (from `sent`), not to `persons`."""
    code = _CODE.get(revision["kind"])
    if code is None:
        return []
    out: list[Output] = []
    # an episode that ended because her own device stopped reporting is no all-clear: the
    # restrained person may still be there; it comes when the alert is resolved
    over = revision.get("episode") == "ended"
    lost = over and POSITION_LOST in str(revision.get("reason") or "")
    ended = revision["state"] == State.resolved.value or (over and not lost)
    if lost and not ended:
        return []
    if ended:
        warned = sorted(
            {p for level, p in _entries(sent) if level in (Level.warning, Level.danger)}
        )
        for p in warned:
            if mark(sent, p, Level.all_clear):
                out.append(_record(revision, p, Level.all_clear, code, police_dispatched))
        return out
    level = level_now(revision)
    if level is None:
        return out
    for p in persons:
        if mark(sent, p, level):
            out.append(_record(revision, p, level, code, police_dispatched))
    return out


def mark(sent: set[str], person: str, level: Level) -> bool:
    """Note that `level` went to `person`; False if it already had."""
    entry = f"{level.value}:{person}"
    if entry in sent:
        return False
    sent.add(entry)
    return True


def _entries(sent: set[str]) -> list[tuple[Level, str]]:
    out = []
    for entry in sent:
        level, _, person = entry.partition(":")
        out.append((Level(level), person))
    return out


def _record(revision: Value, person: str, level: Level, code: Code, dispatched: bool) -> Output:
    alert_id = revision["alert_id"]
    value: Value = {
        "notification_id": stable_id("notification", person, alert_id, level.value),
        "person_id": person,
        "ban_id": revision.get("ban_id"),
        "alert_id": alert_id,
        "ts": revision["updated_at"],
        "level": level.value,
        "code": code.value,
        "police_dispatched": dispatched,
        "contract_version": CONTRACT_VERSION,
    }
    return (PROTECTED_NOTIFICATIONS, person, value)
