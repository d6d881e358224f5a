"""`banwatch store` (the sink on its own) and the store's part in `banwatch up`.

`up` calls `StoreInUp.restore` after creating the topics and before the worker starts, then runs
`StoreInUp.run` next to the worker; `banwatch store` runs the same sink until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime

from config.settings import Settings
from config.topics import TopicNames
from streams.store.db import engine_for, migrate
from streams.store.metrics import StoreMetrics
from streams.store.restore import bans_in_force, publish_bans, registry_is_empty
from streams.store.sink import Sink

log = logging.getLogger("banwatch.store")

#: `banwatch store`'s metrics port when BANWATCH_STORE_METRICS_PORT is unset
DEFAULT_METRICS_PORT = 9465


class StoreInUp:
    """The record store inside `banwatch up`: restore, then the sink."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.engine = engine_for(settings.database_url, settings.data_dir)
        self.metrics = StoreMetrics()
        self.sink = Sink(settings, bootstrap, self.engine, self.metrics)

    def where(self) -> str:
        """The database, without its password."""
        return self.engine.url.render_as_string(hide_password=True)

    async def restore(self, embedded: bool) -> str | None:
        """Publish the bans in force from the store when the (embedded) registry is empty;
        returns the line to print, or None when there was nothing to do."""
        await asyncio.to_thread(migrate, self.engine)
        if not embedded:  # a real broker keeps its registry; re-publishing would only add noise
            return None
        names = TopicNames.with_prefix(self.settings.topic_prefix)
        security = self.settings.kafka_security()
        if not await asyncio.to_thread(
            registry_is_empty, self.bootstrap, names.contact_bans, **security
        ):
            return None
        now = datetime.now(UTC)
        bans = await asyncio.to_thread(bans_in_force, self.engine, now)
        if not bans:
            return None
        await asyncio.to_thread(
            publish_bans, self.bootstrap, names.contact_bans, names.audit, bans, now, **security
        )
        return f"store: restored {len(bans)} bans in force from {self.where()}"

    def describe(self) -> str:
        """`up`'s line about the store: the database, and the sink's metrics endpoint when
        BANWATCH_STORE_METRICS_PORT asks for one (by default `up` opens no extra port)."""
        port = self.settings.store_metrics_port
        if port is None:
            return self.where()
        return f"{self.where()}; metrics: {self.metrics.serve(self.settings.metrics_host, port)}"

    async def run(self, stop: asyncio.Event) -> None:
        """The sink until `stop`. A sink that fails is reported and does not take the alerting
        down with it (`up` stops everything when any of its parts returns): alerts go on, and
        the line on stderr says that nothing is stored any more."""
        try:
            await self.sink.run(stop)
        except Exception as exc:
            log.exception("store: the sink stopped")
            print(
                f"banwatch: store: the sink stopped ({type(exc).__name__}: {exc}); alerts go "
                "on, nothing is stored until banwatch restarts",
                file=sys.stderr,
                flush=True,
            )
        await stop.wait()
