"""Service settings: where the broker is, which ports, which tokens, which Kafka security.

pydantic-settings reads them from the environment (`BANWATCH_*`) and, when `BANWATCH_CONFIG`
names one, from a TOML file (environment wins). A missing or invalid setting stops the process
with one clear line (`SettingsError`), never a traceback deep in a handler. The decision core
never sees this module: it gets a `Policy`, and time, as parameters.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The console's roles (CONTRACT.md v2, "Roles"): the four follow-up roles see and answer the
#: tasks of their role (the role a Task names), a patrol token the tasks of its unit.
FOLLOW_UP_ROLES = ("investigator", "negotiator", "social_services", "outreach")
Role = Literal[
    "dispatcher",
    "patrol",
    "viewer",
    "auditor",
    "investigator",
    "negotiator",
    "social_services",
    "outreach",
]


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line naming it."""


class Principal(BaseModel):
    """Who a console token belongs to. `unit` is required for the patrol role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str = Field(min_length=1, max_length=64)
    role: Role
    unit: str | None = Field(None, min_length=1, max_length=64)


#: Placeholders a tile URL may hold: XYZ (Leaflet's), and WMTS REST's names for the same
#: (`{TileMatrix}` = zoom, `{TileRow}` = y, `{TileCol}` = x; the matrix set must be Web Mercator,
#: e.g. GoogleMapsCompatible), and `{r}` (Leaflet: "@2x" on high-density screens).
_TILE_XYZ = ("{z}", "{x}", "{y}")
_TILE_WMTS = {"{TileMatrix}": "{z}", "{TileRow}": "{y}", "{TileCol}": "{x}"}
_TILE_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


class MapTiles(BaseModel):
    """A base layer for the console's map. One origin only (no `{s}` subdomains): the page's
    Content-Security-Policy allows images from exactly that origin. `attribution` is shown on
    the map as plain text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=2000)
    attribution: str = Field(min_length=1, max_length=300)
    min_zoom: int = Field(0, ge=0, le=30)
    max_zoom: int = Field(19, ge=0, le=30)

    @field_validator("url")
    @classmethod
    def _template(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http(s) URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("url must not carry credentials")
        if "{" in parts.netloc or "}" in parts.netloc:
            raise ValueError("url: no placeholder in the host (one origin only, no {s})")
        if any(c.isspace() for c in v) or '"' in v or "'" in v:
            raise ValueError("url: no spaces or quotes")
        found = set(_TILE_PLACEHOLDER.findall(v))
        unknown = sorted(found - {*_TILE_XYZ, *_TILE_WMTS, "{r}"})
        if unknown:
            raise ValueError(f"url: unknown placeholder {unknown[0]}")
        if not (set(_TILE_XYZ) <= found or set(_TILE_WMTS) <= found):
            raise ValueError("url needs {z}, {x} and {y} (or {TileMatrix}, {TileRow}, {TileCol})")
        return v

    @field_validator("max_zoom")
    @classmethod
    def _zooms(cls, v: int, info: ValidationInfo) -> int:
        if v < info.data.get("min_zoom", 0):
            raise ValueError("max_zoom is below min_zoom")
        return v

    @property
    def origin(self) -> str:
        """scheme://host[:port] of the tile server (what the CSP allows)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def template(self) -> str:
        """The URL as a Leaflet tile layer template (WMTS names as {z}, {y}, {x})."""
        out = self.url
        for wmts, xyz in _TILE_WMTS.items():
            out = out.replace(wmts, xyz)
        return out


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANWATCH_", extra="ignore", frozen=True)

    kafka_bootstrap: str | None = None
    embedded_broker_port: int = Field(9092, ge=1, le=65535)
    #: `banwatch up` warns once (stdout) when a partition of the embedded broker holds more
    #: records than this (docs/reliability.md, "The embedded broker's endurance")
    embedded_log_warn_batches: int = Field(40_000, ge=1)
    #: the hot path consumer's fetch wait (streams/kafka/clients.py `HOT_FETCH_WAIT_MS`): a
    #: fetch that costs the embedded broker longer than this comes back empty
    hot_fetch_wait_ms: int = Field(10, ge=1, le=5000)
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$", max_length=100)

    console_host: str = "127.0.0.1"
    console_port: int = Field(8080, ge=0, le=65535)
    console_tokens: dict[str, Principal] | None = None

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=0, le=65535)

    policy_file: str | None = None
    app_id: str = Field("banwatch", pattern=r"^[A-Za-z0-9._-]+$")
    # faust's own web server (health only; table views and the router are always off)
    worker_web_port: int = Field(6066, ge=0, le=65535)
    log_level: Literal["debug", "info", "warn", "error", "crit"] = "info"
    # Group membership. A join costs half the session timeout on Tansu, and a killed worker's
    # partitions move after one session timeout (FACTS.md): small values, not Kafka's 45 s.
    broker_session_timeout_s: float = Field(6.0, gt=0, le=300)
    broker_heartbeat_s: float = Field(1.0, gt=0, le=60)

    # The record store (streams/store): SQLite under data_dir unless database_url is set
    data_dir: str = "./banwatch-data"
    database_url: str | None = None
    retention_days: float = Field(90.0, gt=0)
    store_erasure_interval_s: float = Field(3600.0, gt=0)
    # `banwatch store` serves its metrics here (unset: 9465); `up` only when it is set
    store_metrics_port: int | None = Field(None, ge=0, le=65535)
    store_batch_records: int = Field(2000, ge=1, le=100_000)

    # The console map's base layer (streets) from a tile or WMTS server the police run: JSON
    # {"url": ..., "attribution": ...}; unset, the map draws only its own vector layers and
    # the page makes no request outside the console
    map_tiles: MapTiles | None = None

    # Kafka client security (kafka-python and faust/aiokafka alike)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None

    @field_validator("console_tokens", mode="before")
    @classmethod
    def _tokens_json(cls, v: Any) -> Any:
        if isinstance(v, str):
            return json.loads(v)
        return v

    @field_validator("console_tokens")
    @classmethod
    def _patrol_has_unit(cls, v: dict[str, Principal] | None) -> dict[str, Principal] | None:
        for token, who in (v or {}).items():
            if len(token) < 16:
                raise ValueError(f"token of {who.user!r} is shorter than 16 characters")
            if who.role == "patrol" and who.unit is None:
                raise ValueError(f"patrol token of {who.user!r} needs a unit")
        return v

    @field_validator("map_tiles", mode="before")
    @classmethod
    def _tiles_json(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return json.loads(v)
            except json.JSONDecodeError:
                raise ValueError(
                    'expected JSON {"url": "https://.../{z}/{x}/{y}.png", "attribution": "..."}'
                ) from None
        return v

    def kafka_security(self) -> dict[str, Any]:
        """kafka-python keyword arguments for the configured security (empty for PLAINTEXT)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        out: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            out["sasl_mechanism"] = self.kafka_sasl_mechanism or "PLAIN"
            out["sasl_plain_username"] = self.kafka_sasl_username
            out["sasl_plain_password"] = self.kafka_sasl_password
        if self.kafka_security_protocol.endswith("SSL"):
            out["ssl_cafile"] = self.kafka_ssl_cafile
            out["ssl_certfile"] = self.kafka_ssl_certfile
            out["ssl_keyfile"] = self.kafka_ssl_keyfile
        return out


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Settings from `env` (default: the process environment) and the `BANWATCH_CONFIG` TOML."""
    source = dict(os.environ if env is None else env)
    file_values: dict[str, Any] = {}
    path = source.get("BANWATCH_CONFIG")
    if path:
        try:
            file_values = tomllib.loads(Path(path).read_text("utf-8"))
        except OSError as exc:
            raise SettingsError(f"BANWATCH_CONFIG {path}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"BANWATCH_CONFIG {path}: not valid TOML: {exc}") from None
    env_values = {
        k[len("BANWATCH_") :].lower(): v
        for k, v in source.items()
        if k.startswith("BANWATCH_") and k != "BANWATCH_CONFIG"
    }
    merged = {**file_values, **env_values}
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        name = "BANWATCH_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(f"{name} ({field}): {first['msg']}") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(f"BANWATCH_CONSOLE_TOKENS: not valid JSON: {exc.msg}") from None
