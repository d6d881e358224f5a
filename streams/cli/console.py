"""`banwatch console`: the dispatch console against the configured broker, with its metrics."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from config.settings import Settings
from streams.cli.logs import setup_logging
from streams.console.service import serve_console
from streams.metrics.prometheus import Metrics


def main(settings: Settings) -> int:
    """`banwatch console`: the console against `BANWATCH_KAFKA_BOOTSTRAP` until SIGINT/SIGTERM,
    with the console's metrics on `BANWATCH_METRICS_HOST:BANWATCH_METRICS_PORT`."""
    if settings.kafka_bootstrap is None:
        print(
            "banwatch: BANWATCH_KAFKA_BOOTSTRAP is not set (`banwatch up` runs an embedded broker)",
            file=sys.stderr,
        )
        return 2
    if not settings.console_tokens:
        print(
            "banwatch: BANWATCH_CONSOLE_TOKENS is not set: "
            '{"<token>": {"user": "op-17", "role": "dispatcher"}}',
            file=sys.stderr,
        )
        return 2
    setup_logging(settings, client_floor=logging.WARNING)  # connection chatter at INFO
    bootstrap = settings.kafka_bootstrap
    tokens = dict(settings.console_tokens)
    metrics = Metrics(topic_prefix=settings.topic_prefix)
    try:
        metrics_server = metrics.serve(settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        print(
            f"banwatch: cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} "
            f"({exc.strerror}); set BANWATCH_METRICS_PORT",
            file=sys.stderr,
        )
        return 2

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def on_ready(url: str) -> None:
            print(f"console: {url}", flush=True)
            print(f"metrics: {metrics_server.url}", flush=True)

        await serve_console(
            settings, bootstrap, tokens=tokens, stop=stop, ready=on_ready, metrics=metrics
        )

    try:
        asyncio.run(go())
    except OSError as exc:
        print(f"banwatch: console: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        metrics_server.close()
    return 0
