"""An aiohttp app served on 127.0.0.1 by an event loop in a thread of its own: the console
under Chromium without a broker (tests/e2e/test_console_*.py, test_map_tiles.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web


class Served:
    """`app` listening on a free port of 127.0.0.1 (`url`) until `close`."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.url = ""
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            runner = web.AppRunner(self.app)
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            server: Any = site._server
            self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            started.set()
            self.loop.run_forever()
            self.loop.run_until_complete(runner.cleanup())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10), "the console did not start"

    def call(self, fn: Any, *args: Any) -> None:
        """Run `fn(*args)` on the app's loop (where its store and streams live)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
