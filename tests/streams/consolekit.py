"""Shared pieces for the console tests: tokens, records, a recording `publish`, SSE reading."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from config.settings import Principal
from streams.console.app import make_app
from streams.console.auth import Limiter
from streams.console.store import Store
from streams.store.db import engine_for, migrate, write_rows
from streams.store.queries import Records
from streams.store.records import Row, to_row
from tests.unit.catalogue import ban, rect

DISPATCHER = "dispatcher-token-0123456789"
VIEWER = "viewer-token-0123456789abc"
PATROL = "patrol-2140-token-012345678"
PATROL_OTHER = "patrol-2150-token-012345678"
AUDITOR = "auditor-token-0123456789abc"
INVESTIGATOR = "investigator-token-0123456789"
NEGOTIATOR = "negotiator-token-0123456789a"
SOCIAL = "social-services-token-0123456"
OUTREACH = "outreach-token-0123456789abc"
TOKENS = {
    DISPATCHER: Principal(user="op-17", role="dispatcher"),
    VIEWER: Principal(user="sup-3", role="viewer"),
    PATROL: Principal(user="pat-2140", role="patrol", unit="SÖ-2140"),
    PATROL_OTHER: Principal(user="pat-2150", role="patrol", unit="SÖ-2150"),
    AUDITOR: Principal(user="aud-1", role="auditor", unit=None),
    INVESTIGATOR: Principal(user="inv-4", role="investigator", unit=None),
    NEGOTIATOR: Principal(user="neg-2", role="negotiator", unit=None),
    SOCIAL: Principal(user="soc-9", role="social_services", unit=None),
    OUTREACH: Principal(user="out-5", role="outreach", unit=None),
}
ROLE_TOKENS = {
    "dispatcher": DISPATCHER,
    "viewer": VIEWER,
    "patrol": PATROL,
    "auditor": AUDITOR,
    "investigator": INVESTIGATOR,
    "negotiator": NEGOTIATOR,
    "social_services": SOCIAL,
    "outreach": OUTREACH,
}
NOW = datetime(2026, 11, 22, 21, 50, tzinfo=UTC)


def ts(seconds: float = 0) -> str:
    return (NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def alert(
    alert_id: str = "a1",
    seq: int = 1,
    state: str = "open",
    priority: int = 1,
    kind: str = "zone_breach",
    opened_s: float = 0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "seq": seq,
        "state": state,
        "kind": kind,
        "priority": priority,
        "confidence": "confirmed",
        "ban_id": "KF-2026-0042",
        "ban_version": 3,
        "restrained_person": "P-7731",
        "zone_id": "home",
        "position": {"lat": 59.1961, "lon": 17.6268, "accuracy_m": 8.5, "ts": ts(opened_s)},
        "distance_m": 0.0,
        "opened_at": ts(opened_s),
        "updated_at": ts(opened_s + seq),
        "reason": "fix inside zone 'home' (+50 m buffer), accuracy disc fully inside",
        "recommended_units": [{"unit_id": "SÖ-2140", "distance_m": 850.0}],
        "episode": "active",
        "contract_version": 2,
        **extra,
    }


def task(
    task_id: str,
    unit: str | None,
    kind: str = "respond",
    alert_id: str | None = "a1",
    role: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A task as the worker publishes it; contract v2 revisions pass `seq`, `state`,
    `updated_at`, `outcome` (and the rest) in `extra`."""
    return {
        "task_id": task_id,
        "alert_id": alert_id,
        "kind": kind,
        "priority": 1,
        "unit_id": unit,
        "role": role,
        "ban_id": "KF-2026-0042",
        "target": {"lat": 59.1961, "lon": 17.6268},
        "created_at": ts(),
        "due_by": ts(600),
        "instructions": "Priority 1: go to the restrained person's last known position.",
        **extra,
    }


def revision(
    task_id: str,
    unit: str | None,
    kind: str = "respond",
    seq: int = 1,
    state: str = "assigned",
    role: str | None = None,
    alert_id: str | None = "a1",
    outcome: str | None = None,
    due_s: float = 600,
) -> dict[str, Any]:
    """A contract v2 task revision (`seq`, `state`, `updated_at`, `outcome`); a role task
    carries `restrained_person` and no target."""
    extra: dict[str, Any] = {
        "seq": seq,
        "state": state,
        "updated_at": ts(seq),
        "outcome": outcome,
        "due_by": ts(due_s),
        "contract_version": 2,
    }
    if role is not None:
        extra.update(restrained_person="P-7731", target=None, priority=3)
    return task(task_id, unit, kind=kind, alert_id=alert_id, role=role, **extra)


# the contract's example ban, with the Södertälje home zone of the golden scenarios
BAN = ban(
    features=[rect("home", 17.62795, 59.1951, 17.63005, 59.1959, label="Bostad", buffer_m=50)]
)


def filled_store() -> Store:
    store = Store("test")
    store.apply_ban("KF-2026-0042", BAN)
    store.apply_unit(
        {
            "unit_id": "SÖ-2140",
            "ts": ts(),
            "lat": 59.1966,
            "lon": 17.6268,
            "status": "available",
            "capabilities": ["patrol"],
        }
    )
    store.apply_alert(alert("a1"))
    store.apply_alert(alert("a2", priority=2, kind="approach", opened_s=-60))
    store.apply_task(task("t1", "SÖ-2140"))
    store.apply_task(task("t2", "SÖ-2150", kind="protect"))
    store.apply_task(task("t3", None, kind="interview", role="investigator"))
    return store


@dataclass
class Recorder:
    """A `publish` that remembers every record, or fails when told to."""

    records: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail: bool = False

    async def __call__(self, topic: str, key: str, value: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("broker unavailable")
        self.records.append((topic, key, value))

    def on(self, topic: str) -> list[tuple[str, dict[str, Any]]]:
        return [(k, v) for t, k, v in self.records if t == topic]


@dataclass
class Harness:
    client: TestClient[Any, Any]
    store: Store
    published: Recorder
    healthy: list[bool]


@contextlib.asynccontextmanager
async def console(store: Store | None = None, **kwargs: Any) -> AsyncIterator[Harness]:
    store = store if store is not None else filled_store()
    published = Recorder()
    healthy = [True]
    kwargs.setdefault("limiter", Limiter(per_client=5, window_s=60))
    app = make_app(store, published, TOKENS, health=lambda: healthy[0], clock=lambda: NOW, **kwargs)
    async with TestClient(TestServer(app)) as client:
        yield Harness(client, store, published, healthy)


def stored_records(
    data_dir: str,
    alerts: list[dict[str, Any]] = (),  # type: ignore[assignment]
    audits: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> Records:
    """A record store (SQLite under `data_dir`) holding `alerts` and `audits`, written the way
    the sink writes them (`to_row`, `write_rows`), and the console's read-only handle on it."""
    engine = engine_for(None, data_dir)
    migrate(engine)
    now = NOW.replace(tzinfo=None)
    rows = []
    for topic, values in (("alerts", alerts), ("audit", audits)):
        for v in values:
            row = to_row(topic, None, json.dumps(v).encode(), 0, now)
            assert isinstance(row, Row), row
            rows.append((row.table, row.values))
    with engine.begin() as conn:
        write_rows(conn, rows)
    engine.dispose()
    return Records.open(None, data_dir)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def read_event(resp: ClientResponse, timeout: float = 3.0) -> dict[str, Any]:
    """The next SSE frame that is not a `clock` tick: {"id", "event", "data"}."""
    while True:
        frame: dict[str, Any] = {}
        while True:
            line = (await asyncio.wait_for(resp.content.readline(), timeout)).decode()
            if line in ("\n", ""):
                if line == "":
                    raise EOFError("the stream ended")
                break
            name, _, value = line.rstrip("\n").partition(": ")
            frame[name] = value
        if "event" not in frame or frame["event"] == "clock":
            continue
        frame["data"] = json.loads(frame["data"])
        return frame
