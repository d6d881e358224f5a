"""The core never reads the clock or the environment: time and settings are parameters.

import-linter (run in CI) keeps Kafka, Faust, the web and metrics out of the core; this test
covers what an import contract cannot see.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = [ROOT / "geofence", ROOT / "alerts", ROOT / "config"]
FORBIDDEN = re.compile(
    r"datetime\.now|datetime\.utcnow|date\.today|time\.time\(|time\.monotonic|"
    r"os\.environ|os\.getenv|import time\b|import random\b|uuid\.uuid[14]"
)


def core_files() -> list[Path]:
    files = []
    for d in CORE:
        for p in d.rglob("*.py"):
            if "console" in p.relative_to(ROOT).parts:
                continue  # the console is a consumer of the stream, outside the pure core
            if p == ROOT / "config" / "settings.py":
                continue  # the one module whose job is reading BANWATCH_* (STYLE: config/)
            files.append(p)
    return files


def test_core_files_exist() -> None:
    names = {p.name for p in core_files()}
    assert {"engine.py", "banstate.py", "zones.py", "policy.py"} <= names


def test_core_reads_no_clock_or_environment() -> None:
    offenders = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in core_files()
        for n, line in enumerate(p.read_text().splitlines(), start=1)
        if FORBIDDEN.search(line)
    ]
    assert offenders == []
