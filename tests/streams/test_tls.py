"""Kafka security end to end: the embedded broker with TLS (a throwaway CA made here), client
certificates and SASL/PLAIN, and banwatch's own clients (kafka-python, aiokafka, faust)
configured only through `BANWATCH_KAFKA_*` settings, as production configures them.

Every refusal has a control: the same client with the one missing piece added is let in, so a
test cannot pass because the broker refuses everything.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from config.settings import load_settings
from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker, free_port
from tests.streams.certs import Pki, make_pki
from tests.streams.workers import ROOT, WorkerProc, ban, fix, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(180)]

USER, PASSWORD = "banwatch", "correct horse battery staple"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure(pki: Pki) -> Iterator[EmbeddedBroker]:
    """TLS, client certificates and SASL/PLAIN: everything at once, as in production."""
    with EmbeddedBroker(
        free_port(),
        cert=pki.server_cert,
        key=pki.server_key,
        client_ca=pki.ca,
        users={USER: PASSWORD},
    ) as b:
        yield b


def full(pki: Pki, **changes: Any) -> dict[str, Any]:
    """kafka-python arguments for the secure broker; `None` in `changes` drops an argument."""
    sec: dict[str, Any] = {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(pki.ca),
        "ssl_certfile": str(pki.client_cert),
        "ssl_keyfile": str(pki.client_key),
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD,
    }
    sec.update(changes)
    return {k: v for k, v in sec.items() if v is not None}


def let_in(bootstrap: str, **security: Any) -> bool:
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=3000,
            bootstrap_timeout_ms=2500,
            **security,
        )
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def test_a_tls_broker_refuses_plaintext_and_untrusted_clients(pki: Pki) -> None:
    with EmbeddedBroker(free_port(), cert=pki.server_cert, key=pki.server_key) as b:
        assert b.tls
        assert not let_in(b.bootstrap)  # plaintext
        assert not let_in(b.bootstrap, security_protocol="SSL", ssl_cafile=str(pki.rogue_ca))
        assert not let_in(b.bootstrap, security_protocol="SSL")  # the system's CAs only
        assert let_in(b.bootstrap, security_protocol="SSL", ssl_cafile=str(pki.ca))
        # and the wire really is TLS, with the certificate our CA signed
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        with (
            socket.create_connection((b.host, b.port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            cert = tls.getpeercert()
            assert cert is not None and ("commonName", "localhost") in cert["subject"][0]


def test_client_certificates_from_our_ca_are_required(pki: Pki) -> None:
    with EmbeddedBroker(
        free_port(), cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca
    ) as b:
        tls = {"security_protocol": "SSL", "ssl_cafile": str(pki.ca)}
        assert not let_in(b.bootstrap, **tls)  # no certificate
        rogue = {
            "ssl_certfile": str(pki.rogue_client_cert),
            "ssl_keyfile": str(pki.rogue_client_key),
        }
        assert not let_in(b.bootstrap, **tls, **rogue)
        ours = {"ssl_certfile": str(pki.client_cert), "ssl_keyfile": str(pki.client_key)}
        assert let_in(b.bootstrap, **tls, **ours)


def test_sasl_plain_needs_a_known_user_its_password_and_plain(
    pki: Pki, secure: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="banwatch.broker")
    assert not let_in(secure.bootstrap, **full(pki, sasl_plain_password="wrong"))
    assert not let_in(secure.bootstrap, **full(pki, sasl_plain_username="mallory"))
    assert "SASL/PLAIN authentication failed" in caplog.text
    assert "wrong" not in caplog.text and PASSWORD not in caplog.text  # no password logged
    assert not let_in(secure.bootstrap, **full(pki, sasl_mechanism="SCRAM-SHA-512"))
    assert not let_in(secure.bootstrap, **full(pki, security_protocol="SSL"))  # no SASL at all
    assert let_in(secure.bootstrap, **full(pki))


def _frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def test_no_request_reaches_the_broker_before_authentication(
    pki: Pki, secure: EmbeddedBroker
) -> None:
    """A client that skips SASL and asks for metadata straight away gets nothing back."""
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    metadata_v1 = struct.pack(">hhih", 3, 1, 7, 1) + b"x" + struct.pack(">i", -1)
    with (
        socket.create_connection((secure.host, secure.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        conn.sendall(_frame(metadata_v1))
        assert conn.recv(4) == b""  # closed, no response
    # control: the same request after SASL/PLAIN (handshake v1, authenticate v1) is answered
    with (
        socket.create_connection((secure.host, secure.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        conn.sendall(
            _frame(struct.pack(">hhih", 17, 1, 1, 1) + b"x" + struct.pack(">h", 5) + b"PLAIN")
        )
        (n,) = struct.unpack(">i", conn.recv(4))
        assert struct.unpack(">ih", conn.recv(n)[:6]) == (1, 0)
        token = b"\x00" + USER.encode() + b"\x00" + PASSWORD.encode()
        auth = struct.pack(">hhih", 36, 1, 2, 1) + b"x" + struct.pack(">i", len(token)) + token
        conn.sendall(_frame(auth))
        (n,) = struct.unpack(">i", conn.recv(4))
        assert struct.unpack(">ih", conn.recv(n)[:6]) == (2, 0)
        conn.sendall(_frame(metadata_v1))
        (n,) = struct.unpack(">i", conn.recv(4))
        assert n > 0 and struct.unpack(">i", conn.recv(4)) == (7,)


def _env(pki: Pki, bootstrap: str, prefix: str) -> dict[str, str]:
    return {
        "BANWATCH_KAFKA_BOOTSTRAP": bootstrap,
        "BANWATCH_TOPIC_PREFIX": prefix,
        "BANWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "BANWATCH_KAFKA_SASL_MECHANISM": "PLAIN",
        "BANWATCH_KAFKA_SASL_USERNAME": USER,
        "BANWATCH_KAFKA_SASL_PASSWORD": PASSWORD,
        "BANWATCH_KAFKA_SSL_CAFILE": str(pki.ca),
        "BANWATCH_KAFKA_SSL_CERTFILE": str(pki.client_cert),
        "BANWATCH_KAFKA_SSL_KEYFILE": str(pki.client_key),
    }


def test_bans_import_the_worker_and_alerts_over_sasl_ssl_with_client_certificates(
    pki: Pki, secure: EmbeddedBroker, tmp_path: Path
) -> None:
    """`banwatch bans import` (kafka-python), `banwatch worker` (faust, aiokafka feeds,
    kafka-python table recovery) and a reader of `alerts`, all from the settings alone."""
    prefix = f"tls{time.monotonic_ns() % 10**6}."
    env = _env(pki, secure.bootstrap, prefix)
    security = load_settings(env).kafka_security()
    assert security == full(pki)  # the settings give exactly the arguments tested above

    bans = tmp_path / "bans.jsonl"
    bans.write_text(json.dumps(ban("KF-T1", "P-T1", "P-T1V", 18.05, 59.30)) + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "streams.cli", "bans", "import", str(bans), "--by", "op-17"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    w = WorkerProc(secure.bootstrap, prefix, **env).start(timeout_s=90)
    producer = make_producer(secure.bootstrap, **security)
    try:
        produce_json(
            producer, prefix + "positions", "P-T1", fix("P-T1", "EM-T1", 59.301, 18.051, ts())
        ).get(10)
        alerts: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not alerts and time.monotonic() < deadline:
            alerts = [
                json.loads(rec.value)
                for rec in follow(
                    secure.bootstrap, prefix + "alerts", True, idle_timeout_s=0.5, **security
                )
                if rec.value is not None
            ]
        audit = [
            json.loads(rec.value)
            for rec in follow(
                secure.bootstrap, prefix + "audit", True, idle_timeout_s=0.5, **security
            )
        ]
    finally:
        producer.close(5)
        assert w.stop() == 0, "\n".join(w.lines[-30:])
    assert [(a["ban_id"], a["kind"]) for a in alerts][:1] == [("KF-T1", "zone_breach")]
    assert [(a["actor"], a["action"], a["object"]) for a in audit] == [
        ("op-17", "import", "ban:KF-T1")
    ]
    assert not let_in(secure.bootstrap)  # and the same broker refuses a plaintext reader
