"""Real worker processes and real records for stream tests (no mocks of Kafka or faust)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.kafka.blocking import follow, make_producer, produce_json

ROOT = Path(__file__).resolve().parents[2]
Json = dict[str, Any]


def ts(seconds_from_now: float = 0.0) -> str:
    t = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WorkerProc:
    """`banwatch worker` in its own process, as production runs it."""

    def __init__(self, bootstrap: str, prefix: str, **env: str) -> None:
        self.env = {
            **os.environ,
            "BANWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "BANWATCH_TOPIC_PREFIX": prefix,
            "BANWATCH_BROKER_SESSION_TIMEOUT_S": "2",
            "BANWATCH_BROKER_HEARTBEAT_S": "0.5",
            "BANWATCH_LOG_LEVEL": "warn",
            "BANWATCH_METRICS_PORT": "0",
            **env,
        }
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._ready = threading.Event()

    def start(self, timeout_s: float = 60.0) -> WorkerProc:
        self._ready.clear()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(timeout_s):
            self.kill()
            raise AssertionError("worker not ready:\n" + "\n".join(self.lines[-40:]))
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("worker: ready"):
                self._ready.set()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return self.proc.returncode


class Feed:
    """Publishes input records under a topic prefix (kafka-python, as other systems would)."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.prefix = prefix
        self.producer = make_producer(bootstrap)

    def send(self, topic: str, key: str | None, value: Any) -> None:
        produce_json(self.producer, self.prefix + topic, key, value)

    def send_raw(self, topic: str, key: str | None, raw: bytes) -> None:
        self.producer.send(
            self.prefix + topic, key=None if key is None else key.encode(), value=raw
        )

    def flush(self) -> None:
        self.producer.flush(10)

    def close(self) -> None:
        self.producer.close(5)


def collect(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Json]], bool],
    timeout_s: float = 20.0,
    settle_s: float = 0.0,
) -> list[Json]:
    """Read `topic` from the beginning until `done(records)` holds for `settle_s` seconds (so
    that duplicates or extras arriving late are seen too), or the time is out."""
    deadline = time.monotonic() + timeout_s
    settle_until: float | None = None
    out: list[Json] = []
    while time.monotonic() < deadline:
        out = [
            json.loads(rec.value)
            for rec in follow(bootstrap, topic, True, idle_timeout_s=0.3)
            if rec.value is not None
        ]
        if done(out):
            settle_until = settle_until or time.monotonic() + settle_s
            if time.monotonic() >= settle_until:
                return out
    return out


def square(lon: float, lat: float, d: float = 0.002) -> list[list[float]]:
    return [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]


def ban(ban_id: str, restrained: str, protected: str, lon: float, lat: float, **extra: Any) -> Json:
    """An extended ban with a small home zone at (lon, lat)..(lon+0.002, lat+0.002)."""
    b: Json = {
        "ban_id": ban_id,
        "version": 1,
        "kind": "extended",
        "status": "active",
        "restrained_person": restrained,
        "protected_persons": [protected],
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": "2028-01-01T00:00:00Z",
        "electronic_monitoring": True,
        "proximity_m": 300,
        "zones": {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"zone_id": "home", "buffer_m": 20},
                    "geometry": {"type": "Polygon", "coordinates": [square(lon, lat)]},
                }
            ],
        },
    }
    b.update(extra)
    return b


def fix(person: str, device: str, lat: float, lon: float, at: str, **extra: Any) -> Json:
    f: Json = {
        "person_id": person,
        "device_id": device,
        "ts": at,
        "lat": lat,
        "lon": lon,
        "accuracy_m": 5.0,
        "source": "ankle_tag",
    }
    f.update(extra)
    return f


def patrol(unit: str, lat: float, lon: float, at: str) -> Json:
    return {
        "unit_id": unit,
        "ts": at,
        "lat": lat,
        "lon": lon,
        "status": "available",
        "capabilities": ["patrol"],
    }
