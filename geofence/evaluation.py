"""Confidence of a breach from the accuracy disc, and episode hysteresis.

The accuracy disc of a fix has radius `accuracy_m` (68 % confidence). With `sd` the signed
distance of the fix to the area (zone + buffer, or the proximity circle), and `spread` the
radius of uncertainty (one disc for zones, both persons' discs for proximity):

- `confirmed`: the whole disc is inside          sd + spread <= 0
- `probable`:  the fix itself is inside           sd <= 0
- `possible`:  only the disc reaches in           sd - spread <= 0

A fix less accurate than `max_accuracy_m` (*coarse*) is never `confirmed`: it is `probable` when
the breach holds even with every accuracy disc at twice its radius (sd + 2·spread <= 0, contract
v2 rule 10), else at most `possible`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from config.policy import Policy


class Confidence(StrEnum):
    possible = "possible"
    probable = "probable"
    confirmed = "confirmed"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Confidence.possible: 1, Confidence.probable: 2, Confidence.confirmed: 3}


def level(sd: float, spread: float, coarse: bool) -> Confidence | None:
    """Confidence that the fix is inside the area; `coarse`: accuracy above the policy's limit."""
    if sd - spread > 0.0:
        return None
    if coarse:
        return Confidence.probable if sd + 2.0 * spread <= 0.0 else Confidence.possible
    if sd + spread <= 0.0:
        return Confidence.confirmed
    if sd <= 0.0:
        return Confidence.probable
    return Confidence.possible


_DURATIONS: dict[float, timedelta] = {}


def duration(seconds: float) -> timedelta:
    """`timedelta(seconds=seconds)` for a policy setting, built once: the constructor costs
    ~0.9 µs from a float, and several settings are needed per fix. (Policies hold a handful
    of values, so the memo stays small.)"""
    d = _DURATIONS.get(seconds)
    if d is None:
        d = _DURATIONS[seconds] = timedelta(seconds=seconds)
    return d


class Transition(StrEnum):
    none = "none"  # no episode, none started
    enter = "enter"  # an episode starts
    rise = "rise"  # the episode reached a more severe confidence
    stay = "stay"  # the episode goes on
    exit = "exit"  # the episode ended (hysteresis satisfied)


@dataclass(slots=True)
class Episode:
    """The geometric part of an episode: the most severe level reached, and the count of
    consecutive observations clearly outside (beyond `exit_margin_m`)."""

    level: Confidence
    outside: int = 0


def observe(
    ep: Episode | None, lvl: Confidence | None, sd: float, spread: float, policy: Policy
) -> tuple[Episode | None, Transition]:
    """Feed one observation of an area to its episode.

    An observation is *clear* when even the near edge of the accuracy disc lies more than
    `exit_margin_m` beyond the area; `exit_fixes` clear observations in a row end the episode.
    Anything else (inside, or in the margin band) keeps it going and resets the count.
    """
    if ep is None:
        if lvl is None:
            return None, Transition.none
        return Episode(lvl), Transition.enter
    if lvl is not None:
        ep.outside = 0
        if lvl.rank > ep.level.rank:
            ep.level = lvl
            return ep, Transition.rise
        return ep, Transition.stay
    if sd - spread > policy.exit_margin_m:
        ep.outside += 1
        if ep.outside >= policy.exit_fixes:
            return None, Transition.exit
    else:
        ep.outside = 0
    return ep, Transition.stay
