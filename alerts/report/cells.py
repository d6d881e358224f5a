"""Figures that know how many persons stand behind them, and their suppression.

A `Cell` is one published number (a count, a share, a duration) with the set of subjects
(persons, or for records without one, the record itself) it was computed from. `publish` walks
the figures and writes each cell as its value, or as null when 1 to 4 persons stand behind it
as the string `"<5"` when 1 to 4 persons stand behind it. A cell of 0 persons is empty, not
small: it is shown (a count of 0, or null where there is nothing to compute).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

#: A cell computed from fewer persons than this (but at least one) is suppressed.
MIN_PERSONS = 5
#: What a suppressed cell is published as.
SUPPRESSED = "<5"


@dataclass(frozen=True, slots=True)
class Cell:
    """`value` (None when there is nothing to compute, e.g. the median of no times) and the
    number of distinct persons it was computed from."""

    value: float | int | None
    persons: int
    forced: bool = False  # suppressed to protect a small cell beside it (see `protect`)

    @property
    def small(self) -> bool:
        return self.forced or 0 < self.persons < MIN_PERSONS

    @staticmethod
    def of(value: float | int | None, subjects: Collection[str]) -> Cell:
        return Cell(value, len(subjects))


def protect(group: list[Cell]) -> list[Cell]:
    """Complementary suppression within a group of cells whose sum is published (a day's
    priorities against the day's total, the drop-outs of a step against the two step counts):
    when exactly one cell of the group is small, the smallest other non-empty cell is suppressed
    as well, so that the small one cannot be recovered by subtraction."""
    small = [c for c in group if c.small]
    others = [c for c in group if not c.small and c.persons > 0]
    if len(small) != 1 or not others:
        return group
    victim = min(others, key=lambda c: (c.value if isinstance(c.value, int | float) else 0))
    return [Cell(c.value, c.persons, True) if c is victim else c for c in group]


def combine(*cells: Cell) -> int:
    """Persons of a figure derived from several cells: the smallest non-zero one (a share whose
    numerator stands for 2 persons reveals them even if its denominator is large)."""
    nonzero = [c.persons for c in cells if c.persons > 0]
    return min(nonzero) if nonzero else 0


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `p` % of the values at or
    below it (p50 of [1, 2, 3, 4] is 2). None for no values. Exact and computable by hand."""
    xs = sorted(values)
    if not xs:
        return None
    k = max(1, math.ceil(p / 100 * len(xs)))
    return xs[k - 1]


def publish(figures: Any, min_persons: int = MIN_PERSONS) -> tuple[Any, int]:
    """(plain JSON, number of suppressed cells). A `Cell` becomes its value, or `SUPPRESSED`
    when it stands for 1 to `min_persons` - 1 persons."""
    suppressed = 0

    def walk(x: Any) -> Any:
        nonlocal suppressed
        if isinstance(x, Cell):
            if x.forced or 0 < x.persons < min_persons:
                suppressed += 1
                return SUPPRESSED
            return x.value
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [walk(v) for v in x]
        return x

    out = walk(figures)
    return out, suppressed
