"""Chaos tests: real worker processes and the real embedded broker, with faults injected.

Every test gets a broker of its own (pausing or restarting a shared one would disturb others)
and reports one row of the fault table (docs/reliability.md): printed at the end of the run and
written as JSON to `$BANWATCH_CHAOS_REPORT` when that is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from streams.kafka.broker import EmbeddedBroker, free_port
from tests.chaos.harness import ROWS, Row


@pytest.fixture
def chaos_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(free_port()) as running:
        yield running


@pytest.fixture
def report() -> Iterator[list[Row]]:
    rows: list[Row] = []
    yield rows
    ROWS.extend(rows)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    tr = terminalreporter
    tr.section("banwatch fault table")
    tr.write_line(Row.header())
    for row in ROWS:
        tr.write_line(row.markdown())
    path = os.environ.get("BANWATCH_CHAOS_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump([r.__dict__ for r in ROWS], f, indent=2)
