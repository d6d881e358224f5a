"""The suite's order (tests/order.py): the tests beside the background quick bench exist and
time nothing tight; chaos runs after every other slow test; the bench's test runs last."""

from __future__ import annotations

from tests import order
from tests.streams.workers import ROOT


def test_every_module_named_beside_the_bench_exists() -> None:
    for name in order.BESIDE_THE_BENCH:
        assert (ROOT / name).exists(), name  # a renamed module would silently move


def test_the_buckets() -> None:
    assert order.bucket("tests/unit/test_geometry.py", slow=False) == 0
    assert order.bucket("tests/e2e/test_console_browser.py", slow=True) == 1
    assert order.bucket("tests/streams/test_worker.py", slow=True) == 2
    assert order.bucket("tests/report/test_month.py", slow=True) == 2  # times itself (30 s)
    assert order.bucket("tests/chaos/test_kill.py", slow=True) == 3
    assert order.bucket("tests/chaos/test_tally.py", slow=False) == 0
    assert order.bucket("tests/bench/test_bench_smoke.py", slow=False) == 4
    assert order.SMOKE.split("::")[0] == "tests/bench/test_bench_smoke.py"
