"""The decision policy: thresholds from CONTRACT.md as validated data.

Loaded once at start from the packaged `policy.toml`, optionally overlaid by an operator's TOML
file. A broken file stops the process with one clear line (`PolicyError`), never a traceback in
a handler. This module reads files only when asked to; it never reads the environment.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PolicyError(Exception):
    """A policy file is unreadable or holds an invalid value; the message is one line."""


class Policy(BaseModel):
    """Thresholds used by every detector. Distances in metres, durations in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approach_m: float = Field(1000.0, gt=0, allow_inf_nan=False)
    max_fix_age_s: float = Field(120.0, gt=0, allow_inf_nan=False)
    max_patrol_age_s: float = Field(120.0, gt=0, allow_inf_nan=False)
    max_accuracy_m: float = Field(100.0, gt=0, allow_inf_nan=False)
    exit_margin_m: float = Field(50.0, ge=0, allow_inf_nan=False)
    exit_fixes: int = Field(3, ge=1)
    update_interval_s: float = Field(10.0, ge=0, allow_inf_nan=False)
    ack_sla_s: float = Field(60.0, gt=0, allow_inf_nan=False)
    signal_timeout_s: float = Field(300.0, gt=0, allow_inf_nan=False)
    max_speed_mps: float = Field(40.0, gt=0, allow_inf_nan=False)
    max_future_skew_s: float = Field(30.0, ge=0, allow_inf_nan=False)
    knock_after_approaches: int = Field(3, ge=1)
    task_accept_sla_s: float = Field(30.0, gt=0, allow_inf_nan=False)

    knock_window_s: float = Field(604800.0, gt=0, allow_inf_nan=False)
    approach_window_s: float = Field(300.0, gt=0, allow_inf_nan=False)
    approach_min_closing_m: float = Field(50.0, ge=0, allow_inf_nan=False)
    approach_confirm_fixes: int = Field(3, ge=1, le=8)
    approach_unpaired_closing_m: float = Field(300.0, ge=0, allow_inf_nan=False)
    approach_revision_m: float = Field(50.0, ge=0, allow_inf_nan=False)
    knock_event_gap_s: float = Field(1800.0, ge=0, allow_inf_nan=False)
    recommended_units: int = Field(3, ge=1, le=20)
    respond_due_s: float = Field(600.0, gt=0, allow_inf_nan=False)
    interview_due_s: float = Field(86400.0, gt=0, allow_inf_nan=False)
    motivational_talk_due_s: float = Field(259200.0, gt=0, allow_inf_nan=False)
    referral_due_s: float = Field(604800.0, gt=0, allow_inf_nan=False)
    resolved_retention_s: float = Field(86400.0, gt=0, allow_inf_nan=False)
    closed_retention_s: float = Field(604800.0, gt=0, allow_inf_nan=False)
    max_record_bytes: int = Field(65536, ge=256)
    max_ban_record_bytes: int = Field(1048576, ge=1024)


def _read_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {origin}: not valid TOML: {exc}") from None


def load_policy(path: str | Path | None = None) -> Policy:
    """The packaged defaults, overlaid with the TOML file at `path` when one is given."""
    base = _read_toml(
        resources.files("config").joinpath("policy.toml").read_text("utf-8"), "config/policy.toml"
    )
    if path is not None:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise PolicyError(f"policy file {path}: cannot read: {exc.strerror}") from None
        base.update(_read_toml(text, str(path)))
    try:
        return Policy.model_validate(base)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        origin = path if path is not None else "config/policy.toml"
        raise PolicyError(f"policy file {origin}: {field}: {first['msg']}") from None
