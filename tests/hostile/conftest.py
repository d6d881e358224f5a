"""Hostile-input tests: the stream run reports one summary line at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

LINES: list[str] = []


@pytest.fixture
def report_rows() -> Iterator[list[str]]:
    rows: list[str] = []
    yield rows
    LINES.extend(rows)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if LINES:
        terminalreporter.section("banwatch hostile input")
        for line in LINES:
            terminalreporter.write_line(line)
