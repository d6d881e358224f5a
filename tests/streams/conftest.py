"""Stream tests run against a real Kafka-protocol broker: one embedded Tansu per test session.

Tests share the broker, so each one works under its own topic prefix instead of cleaning up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from streams.kafka.broker import EmbeddedBroker, free_port


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(free_port()) as running:
        yield running


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:8]}."
