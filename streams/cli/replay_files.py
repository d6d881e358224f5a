"""Reading `banwatch replay` and `banwatch bans import` input files, with precise errors.

A file that cannot be read as the command expects raises `InputFileError` naming the file,
the line and the field; the CLI turns it into exit status 2.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from alerts.engine import Incoming
from config.policy import Policy
from geofence.decoding import BANS, INPUT_TOPICS, Rejected, decode


class InputFileError(Exception):
    """One line: `FILE line N: field: problem`."""


def _read(path: str) -> str:
    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: not UTF-8 text") from None


def _json_records(path: str) -> list[tuple[int, Any]]:
    """JSON lines, or one JSON array: (line number, parsed value) pairs."""
    text = _read(path)
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{path} line {exc.lineno}: invalid JSON: {exc.msg}") from None
        return [(i + 1, item) for i, item in enumerate(items)]
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{path} line {n}: invalid JSON: {exc.msg}") from None
    return out


def read_bans(path: str, policy: Policy, now: datetime) -> list[bytes]:
    """Every ban validated (schema and geometry) before any is used: all or nothing."""
    out = []
    for n, item in _json_records(path):
        if not isinstance(item, dict):
            raise InputFileError(f"{path} line {n}: a ban must be a JSON object")
        raw = json.dumps(item).encode("utf-8")
        d = decode(BANS, None, raw, now, policy)
        if isinstance(d, Rejected):
            ban_id = item.get("ban_id")
            who = f" (ban {ban_id})" if isinstance(ban_id, str) else ""
            raise InputFileError(f"{path} line {n}{who}: {d.error}")
        out.append(raw)
    return out


def read_events(path: str) -> list[Incoming]:
    """`{"topic", "key", "value"}` lines. `value`: a JSON object (the message), null (a
    tombstone), or a string holding the raw message text; `value_b64` gives raw bytes."""
    out = []
    for n, item in _json_records(path):
        if not isinstance(item, dict) or "topic" not in item:
            raise InputFileError(f'{path} line {n}: expected {{"topic", "key", "value"}}')
        topic = item["topic"]
        if topic not in INPUT_TOPICS:
            raise InputFileError(
                f"{path} line {n}: topic: {topic!r} is not an input topic "
                f"({', '.join(INPUT_TOPICS)})"
            )
        key = item.get("key")
        if key is not None and not isinstance(key, str):
            raise InputFileError(f"{path} line {n}: key: must be a string or null")
        value: bytes | None
        if "value_b64" in item:
            try:
                value = base64.b64decode(item["value_b64"], validate=True)
            except (ValueError, TypeError):
                raise InputFileError(f"{path} line {n}: value_b64: not base64") from None
        else:
            v = item.get("value")
            if v is None:
                value = None
            elif isinstance(v, str):
                value = v.encode("utf-8")
            else:
                value = json.dumps(v, ensure_ascii=False).encode("utf-8")
        out.append(Incoming(topic, key, value, 0, n))
    return out
