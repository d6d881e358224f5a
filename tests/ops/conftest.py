"""Operations tests: metrics, Prometheus and Grafana files, docker-compose, a real Prometheus.

They need the Debian `prometheus` package (`prometheus`, `promtool`), which
scripts/system-deps.sh installs. A missing tool fails the test with that instruction: it is
never a skip, so a CI without it cannot pass quietly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka.broker import EmbeddedBroker, free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/system-deps.sh (Debian: prometheus)")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return tool("prometheus")


@pytest.fixture(scope="session")
def ops_broker() -> Iterator[EmbeddedBroker]:
    """A real Kafka-protocol broker (embedded Tansu) for the live worker."""
    with EmbeddedBroker(free_port()) as running:
        yield running
