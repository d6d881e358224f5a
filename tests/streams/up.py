"""`banwatch up` as a user runs it, for tests: a process of its own, its output read line by
line (tests/streams/test_store_restore.py, tests/report/test_up_demo_store.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.streams.workers import ROOT


class Up:
    """`banwatch up [args]` in its own process group (as a shell starts it), its output
    collected in `lines`; `ready` is set at its `ready in` line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "up", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("ready in"):
                self.ready.set()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])

    def wait_ready(self, timeout_s: float = 90) -> None:
        assert self.ready.wait(timeout_s), self.tail()

    @property
    def console(self) -> str:
        """The console's address, from its `console: http...` line."""
        return next(x.split(" ", 1)[1] for x in self.lines if x.startswith("console: http"))

    def kill_everything(self) -> None:
        """SIGKILL `up`'s process group and every child of it (the broker runs in a session of
        its own, so that Ctrl-C reaches the worker first): nothing gets to stop cleanly."""
        children = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _ppid(p) == self.proc.pid
        ]
        os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 30, group: bool = False) -> int:
        """SIGINT to `up` (with `group`, to its whole process group, as Ctrl-C in a terminal)
        and its exit status; if it has not exited within `timeout_s`, SIGKILL of the group
        (the status is then -9)."""
        if self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, signal.SIGINT)
            else:
                self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)


def _ppid(proc_dir: Path) -> int | None:
    try:
        stat = (proc_dir / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])
