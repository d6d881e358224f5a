"""The console's searches over the store (CONTRACT.md v2): alert history and audit.

`GET /api/alerts?state=all&ban_id=&person=&from=&to=` (dispatcher) maps onto `alert_history`,
`GET /api/audit?object=&actor=&from=&to=` (auditor) onto `audit_search`. Both are paginated
(`limit`, `offset`; newest first) and return the records as they were published. The console
must audit each search itself (who searched for what), like any consultation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from streams.store import schema

MAX_LIMIT = 500


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def _naive_utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    if t.tzinfo is None:
        raise ValueError("times need an offset")
    return t.astimezone(UTC).replace(tzinfo=None)


def _page(engine: Engine, query: Any, order: Any, limit: int, offset: int) -> Page:
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(query.order_by(*order).limit(limit).offset(offset)).scalars().all()
    return Page([r for r in rows if r is not None], int(total), limit, offset)


def alert_history(
    engine: Engine,
    *,
    state: str = "all",
    ban_id: str | None = None,
    person: str | None = None,
    kind: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """The latest stored revision of each alert matching every filter given; `person` is the
    restrained or the protected person; `start`/`end` (aware) bound the revision's time,
    `end` exclusive; `state` "all" or one state (of the latest revision)."""
    a = schema.alerts
    latest = (
        sa.select(a.c.alert_id, sa.func.max(a.c.seq).label("seq")).group_by(a.c.alert_id)
    ).subquery()
    q = sa.select(a.c.payload).join(
        latest, sa.and_(a.c.alert_id == latest.c.alert_id, a.c.seq == latest.c.seq)
    )
    if state != "all":
        q = q.where(a.c.state == state)
    if ban_id:
        q = q.where(a.c.ban_id == ban_id)
    if person:
        q = q.where(sa.or_(a.c.restrained_person == person, a.c.protected_person == person))
    if kind:
        q = q.where(a.c.kind == kind)
    if (t := _naive_utc(start)) is not None:
        q = q.where(a.c.ts >= t)
    if (t := _naive_utc(end)) is not None:
        q = q.where(a.c.ts < t)
    return _page(engine, q, (a.c.ts.desc(), a.c.alert_id), limit, offset)


def audit_search(
    engine: Engine,
    *,
    object: str | None = None,  # the contract's parameter name
    actor: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Audit records matching every filter given, newest first; `end` exclusive."""
    au = schema.audit
    q = sa.select(au.c.payload)
    if object:
        q = q.where(au.c.object == object)
    if actor:
        q = q.where(au.c.actor == actor)
    if (t := _naive_utc(start)) is not None:
        q = q.where(au.c.ts >= t)
    if (t := _naive_utc(end)) is not None:
        q = q.where(au.c.ts < t)
    return _page(engine, q, (au.c.ts.desc(), au.c.digest), limit, offset)


#: The audit action with which a dispatcher takes a restored alert off the board (the stream
#: worker no longer tracks it, so no revision can close it; see `restorable_alerts`).
RESOLVE_RESTORED = "resolve_restored"


def alert_revisions(engine: Engine, alert_id: str) -> list[dict[str, Any]]:
    """Every stored revision of one alert, oldest first."""
    a = schema.alerts
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(a.c.payload).where(a.c.alert_id == alert_id).order_by(a.c.seq)
        ).scalars()
        return [r for r in rows if r is not None]


def restorable_alerts(engine: Engine, limit: int = 1000) -> list[dict[str, Any]]:
    """The latest stored revision of each alert that was not resolved, newest first (at most
    `limit`), leaving out the ones a dispatcher closed after a restart (an audit record with
    action `resolve_restored` on `alert:<id>`). After the embedded broker lost its topics these
    are the alerts that were still on the board."""
    a = schema.alerts
    au = schema.audit
    latest = (
        sa.select(a.c.alert_id, sa.func.max(a.c.seq).label("seq")).group_by(a.c.alert_id)
    ).subquery()
    closed = sa.exists().where(
        au.c.action == RESOLVE_RESTORED, au.c.object == sa.literal("alert:") + a.c.alert_id
    )
    q = (
        sa.select(a.c.payload)
        .join(latest, sa.and_(a.c.alert_id == latest.c.alert_id, a.c.seq == latest.c.seq))
        .where(sa.or_(a.c.state.is_(None), a.c.state != "resolved"), sa.not_(closed))
        .order_by(a.c.ts.desc(), a.c.alert_id)
        .limit(max(1, limit))
    )
    with engine.connect() as conn:
        return [r for r in conn.execute(q).scalars() if r is not None]


class Records:
    """The console's read-only handle on the store: the searches above on one engine (made by
    `streams.store.db.reader_engine`). Blocking: the console calls it in a thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, database: str | None, data_dir: str) -> Records:
        from streams.store.db import reader_engine

        return cls(reader_engine(database, data_dir))

    def alert_history(self, **filters: Any) -> Page:
        return alert_history(self.engine, **filters)

    def audit_search(self, **filters: Any) -> Page:
        return audit_search(self.engine, **filters)

    def alert_revisions(self, alert_id: str) -> list[dict[str, Any]]:
        return alert_revisions(self.engine, alert_id)

    def restorable_alerts(self, limit: int = 1000) -> list[dict[str, Any]]:
        return restorable_alerts(self.engine, limit)

    def close(self) -> None:
        self.engine.dispose()
