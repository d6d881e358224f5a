"""The programme report's figures (`banwatch report`): pure aggregation of stored records.

`compute(records, period, policy)` folds an iterable of `(topic, key, value)` records (alert
revisions, task revisions, task updates, dead letters, audit records, input positions) into the
report's figures: response, alerts, the outreach funnel, effect, data quality. Every figure
that counts persons is a `Cell` that knows how many persons stand behind it; `publish` turns the
figures into plain JSON with every cell of 1-4 persons suppressed, and counts them.

Nothing here reads files, the clock or the environment, and nothing here decides anything: the
figures are a function of the records and the period only. The definitions of every figure are
in docs/report.md.
"""

from __future__ import annotations

from alerts.report.cells import MIN_PERSONS, Cell, percentile, publish
from alerts.report.figures import SCHEMA_VERSION, Period, compute, figures
from alerts.report.ledger import Ledger

__all__ = [
    "MIN_PERSONS",
    "SCHEMA_VERSION",
    "Cell",
    "Ledger",
    "Period",
    "compute",
    "figures",
    "percentile",
    "publish",
]
