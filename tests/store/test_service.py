"""The store's part in `banwatch up`: a sink that fails does not end the service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from config.settings import Settings
from streams.store.service import StoreInUp


class FailingSink:
    async def run(self, stop: asyncio.Event) -> None:
        raise RuntimeError("disk on fire")


def test_a_failing_sink_is_reported_and_waits_for_the_service_to_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = StoreInUp(Settings(data_dir=str(tmp_path)), "127.0.0.1:1")
    store.sink = FailingSink()  # type: ignore[assignment]

    async def scenario() -> bool:
        stop = asyncio.Event()
        task = asyncio.create_task(store.run(stop))
        await asyncio.sleep(0.2)
        still_running = not task.done()  # `up` stops everything when a part returns
        stop.set()
        await asyncio.wait_for(task, 5)
        return still_running

    assert asyncio.run(scenario())
    err = capsys.readouterr().err
    assert "store: the sink stopped (RuntimeError: disk on fire)" in err
    assert "alerts go on" in err
