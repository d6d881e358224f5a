"""`banwatch store`: the record-store sink on its own, against the configured broker and
database, until SIGINT/SIGTERM (streams/store/; `banwatch up` runs the same sink in process)."""

from __future__ import annotations

import asyncio
import logging
import signal

from config.settings import Settings
from streams.cli.logs import setup_logging
from streams.kafka.clients import bootstrap_of
from streams.store.db import engine_for
from streams.store.metrics import StoreMetrics
from streams.store.service import DEFAULT_METRICS_PORT
from streams.store.sink import Sink


def main(settings: Settings) -> int:
    """Run the sink until a signal; one line on stdout once it consumes."""
    setup_logging(settings, client_floor=logging.WARNING)  # connection chatter at INFO
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations print every step
    bootstrap = bootstrap_of(settings)
    engine = engine_for(settings.database_url, settings.data_dir)
    metrics = StoreMetrics()
    port = settings.store_metrics_port
    url = metrics.serve(settings.metrics_host, DEFAULT_METRICS_PORT if port is None else port)
    sink = Sink(settings, bootstrap, engine, metrics)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready() -> None:
            print(
                f"store: {sink.group} on {bootstrap} -> "
                f"{engine.url.render_as_string(hide_password=True)}; metrics: {url}",
                flush=True,
            )

        await sink.run(stop, ready)

    asyncio.run(go())
    return 0
