"""The order the whole suite runs in, and the quick bench run beside it (CI time).

`banwatch bench --quick` is in the suite as a smoke run (issue 6: the JSON complete; its figures
are not checked). It takes 3.5-5 minutes of one process mostly waiting on its own workers and
broker; run in line it was a fifth of CI's test time. So when the smoke test is selected it is
started as a process of its own as the session's tests begin, and the test at the end only
waits for it and reads its JSON. Its figures are then measured beside other tests: they are not
the bench's figures (README, docs/bench.md: run `banwatch bench` on a quiet machine).

The tests it runs beside are the ones that do not time anything tight: whole modules, in
buckets, each keeping its collected order (module-scoped fixtures set up once):
0 modules without a slow test; 1 slow modules that wait for a browser, a database or files
with generous timeouts; 2 the other broker and worker tests; 3 tests/chaos, whose latency
and duplicate counts want a machine not shared with the bench; 4 tests/bench (the smoke test
waits for the background run, which has finished by then on this machine).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "tests/bench/test_bench_smoke.py::test_a_quick_run_writes_every_figure"

#: slow modules that time nothing tight: they run while the background bench does
BESIDE_THE_BENCH = (
    "tests/e2e/",
    "tests/store/",
    "tests/hostile/test_bans_import.py",
    "tests/streams/test_tls.py",
    "tests/streams/test_store_postgres.py",
    "tests/report/test_browser.py",
    "tests/report/test_store_postgres.py",
    "tests/report/test_up_demo_store.py",
)


def bucket(module: str, slow: bool) -> int:
    if module.startswith("tests/bench/"):
        return 4
    if not slow:
        return 0
    if module.startswith("tests/chaos/"):
        return 3
    return 1 if module.startswith(BESIDE_THE_BENCH) else 2


def reorder(items: list[pytest.Item]) -> None:
    """Sort `items` in place by their module's bucket (stable: the collected order within)."""
    slow: dict[str, bool] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        slow[module] = slow.get(module, False) or item.get_closest_marker("slow") is not None
    items.sort(key=lambda item: bucket(m := item.nodeid.split("::", 1)[0], slow[m]))


@dataclass
class QuickBench:
    """`banwatch bench --quick --json FILE` running in a process of its own."""

    proc: subprocess.Popen[bytes]
    json: Path
    stdout: Path
    stderr: Path

    @classmethod
    def start(cls) -> QuickBench:
        out = Path(tempfile.mkdtemp(prefix="banwatch-quick-bench-"))
        files = out / "bench.json", out / "stdout.txt", out / "stderr.txt"
        with files[1].open("wb") as so, files[2].open("wb") as se:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "bench", "--quick", "--json", str(files[0])],
                cwd=ROOT,
                stdout=so,
                stderr=se,
            )
        return cls(proc, *files)

    def wait(self, timeout_s: float) -> tuple[int, str, str]:
        """Its exit status, stdout and stderr once it ended (killed after `timeout_s`)."""
        try:
            rc = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            rc = self.proc.returncode
        return rc, _text(self.stdout), _text(self.stderr)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def _text(path: Path) -> str:
    return path.read_text("utf-8", errors="replace")


_KEY = pytest.StashKey[QuickBench]()


def start_beside(session: pytest.Session) -> None:
    """Start the quick bench if its smoke test is among those about to run."""
    if session.config.option.collectonly:
        return
    if any(item.nodeid == SMOKE for item in session.items):
        session.config.stash[_KEY] = QuickBench.start()


def started(config: pytest.Config) -> QuickBench | None:
    return config.stash.get(_KEY, None)


def stop_beside(config: pytest.Config) -> None:
    run = started(config)
    if run is not None:
        run.stop()
