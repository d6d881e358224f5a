"""Records as the topics carry them, and writing them through the store's own path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from streams.store.db import write_rows
from streams.store.records import Row, to_row


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ban_value(ban_id: str, version: int, *, until: datetime | None = None) -> dict[str, Any]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "ban_id": ban_id,
        "version": version,
        "kind": "extended",
        "status": "active",
        "restrained_person": f"P-{ban_id}",
        "protected_persons": [f"V-{ban_id}"],
        "valid_from": iso(start),
        "valid_until": iso(until or start + timedelta(days=3650)),
        "electronic_monitoring": True,
        "proximity_m": None,
        "zones": {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"zone_id": "home", "radius_m": 200},
                    "geometry": {"type": "Point", "coordinates": [17.6, 59.2]},
                }
            ],
        },
    }


def store(engine: Engine, topic: str, key: str | None, value: Any, at: datetime) -> dict[str, int]:
    """Write one record as the sink would (record time `at`)."""
    raw = None if value is None else json.dumps(value).encode()
    now = datetime.now(UTC).replace(tzinfo=None)
    out = to_row(topic, None if key is None else key.encode(), raw, int(at.timestamp() * 1000), now)
    assert isinstance(out, Row), out
    with engine.begin() as conn:
        return write_rows(conn, [(out.table, out.values)])
