"""`banwatch worker`: one stream worker against the configured broker, with its metrics."""

from __future__ import annotations

import asyncio
import signal

from config.settings import Settings
from streams.cli.logs import setup_logging


def main(settings: Settings) -> int:
    """Run one worker until SIGINT/SIGTERM."""
    if settings.kafka_bootstrap is None:
        raise SystemExit(
            "banwatch: BANWATCH_KAFKA_BOOTSTRAP is not set (`banwatch up` runs an embedded broker)"
        )
    bootstrap = settings.kafka_bootstrap
    setup_logging(settings)

    async def go() -> None:
        from streams.metrics.worker import serve_worker_metrics
        from streams.worker import Worker

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        worker = Worker(settings, bootstrap)
        server = serve_worker_metrics(settings, worker)

        def on_ready() -> None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            print(f"worker: ready on {bootstrap}; metrics: {server.url}", flush=True)

        try:
            await worker.run(stop, on_ready)
        finally:
            server.close()

    asyncio.run(go())
    return 0
