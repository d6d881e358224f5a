"""Producer-side commands: `banwatch bans import` and `banwatch tail` (kafka-python, blocking)."""

from __future__ import annotations

import getpass
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from config.policy import load_policy
from config.settings import Settings
from config.topics import TopicNames
from streams.cli.replay_files import read_bans
from streams.kafka.blocking import follow, make_producer, produce_json
from streams.kafka.clients import bootstrap_of


def import_bans(settings: Settings, path: str, by: str) -> int:
    """Validate every ban in `path` first (any error: exit 2 naming line and field, nothing
    published), then publish them all keyed by ban id, with one `audit` record each."""
    policy = load_policy(settings.policy_file)
    now = datetime.now(UTC)
    raws = read_bans(path, policy, now)  # raises InputFileError before anything is sent
    names = TopicNames.with_prefix(settings.topic_prefix)
    bootstrap = bootstrap_of(settings)
    producer = make_producer(bootstrap, **settings.kafka_security())
    try:
        for raw in raws:
            ban = json.loads(raw)
            produce_json(producer, names.contact_bans, ban["ban_id"], ban)
            produce_json(
                producer,
                names.audit,
                f"ban:{ban['ban_id']}",
                {
                    "ts": now.isoformat().replace("+00:00", "Z"),
                    "actor": by,
                    "role": "registry",
                    "action": "import",
                    "object": f"ban:{ban['ban_id']}",
                    "reason": f"bans import of version {ban['version']}",
                },
            )
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)
    print(f"imported {len(raws)} bans to {names.contact_bans} on {bootstrap}")
    return 0


def _alert_line(a: dict[str, Any]) -> str:
    where = f"zone {a['zone_id']}" if a.get("zone_id") else ""
    if a.get("protected_person"):
        where = f"near {a['protected_person']}"
    dist = "" if a.get("distance_m") is None else f"{a['distance_m']:.0f} m"
    units = ",".join(u["unit_id"] for u in a.get("recommended_units") or [])
    parts = [
        a.get("updated_at") or a.get("opened_at") or "",
        f"P{a.get('priority')}",
        f"{a.get('kind', ''):<18}",
        f"{a.get('state', ''):<12}",
        a.get("ban_id") or "-",
        a.get("restrained_person") or "-",
        where,
        a.get("confidence") or "",
        dist,
        f"units {units}" if units else "",
        f"[{str(a.get('alert_id', ''))[:12]} rev {a.get('seq')}]",
    ]
    return "  ".join(p for p in parts if p)


def _task_line(t: dict[str, Any]) -> str:
    """One task revision: contract v2 tasks show their lifecycle (`rev` seq and state, the
    attempt, the outcome once done); the instructions only on the first revision."""
    who = t.get("unit_id") or f"role {t.get('role')}"
    seq, state, outcome = t.get("seq"), t.get("state"), t.get("outcome")
    first = seq is None or seq == 1
    parts = [
        t.get("updated_at") or t.get("created_at") or "",
        f"P{t.get('priority')}",
        f"{t.get('kind', ''):<17}",
        who,
        t.get("ban_id") or "-",
        f"{state:<9}" if state else "",
        f"attempt {t['attempt']}" if t.get("attempt") else "",
        f"outcome {outcome}" if outcome else "",
        f"due {t.get('due_by')}",
        (t.get("instructions") or "") if first else "",
        f"[{str(t.get('task_id', ''))[:12]}" + (f" rev {seq}]" if seq is not None else "]"),
    ]
    return "  ".join(p for p in parts if p)


def _notification_line(n: dict[str, Any]) -> str:
    """One protected-person notification, as her device would show it."""
    parts = [
        n.get("ts") or "",
        f"{str(n.get('level', '')).upper():<9}",
        f"{n.get('code', ''):<12}",
        n.get("person_id") or "-",
        n.get("ban_id") or "-",
        "police dispatched" if n.get("police_dispatched") else "",
        f"[alert {str(n.get('alert_id', ''))[:12]}]",
    ]
    return "  ".join(p for p in parts if p)


#: What `banwatch tail` follows: the topic (TopicNames attribute), how a line reads, and
#: which filters apply (field of the record each compares).
TAIL_TOPICS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "alerts": ("alerts", _alert_line),
    "tasks": ("patrol_tasks", _task_line),
    "notifications": ("protected_notifications", _notification_line),
}
TAIL_FILTERS = {
    "alerts": {"unit"},
    "tasks": {"unit", "role"},
    "notifications": {"person"},
}


def _keep(which: str, value: dict[str, Any], filters: dict[str, str]) -> bool:
    unit, role, person = filters.get("unit"), filters.get("role"), filters.get("person")
    if unit is not None:
        if which == "tasks" and value.get("unit_id") != unit:
            return False
        if which == "alerts":
            units = {u.get("unit_id") for u in value.get("recommended_units") or []}
            response = value.get("response") or {}
            if unit not in units and response.get("unit_id") != unit:
                return False
    if role is not None and value.get("role") != role:
        return False
    return person is None or value.get("person_id") == person


def _audit_tail(settings: Settings, names: TopicNames, which: str) -> None:
    """Reading alerts, tasks or notifications from the command line is a consultation: audit
    it first."""
    producer = make_producer(bootstrap_of(settings), **settings.kafka_security())
    try:
        produce_json(
            producer,
            names.audit,
            f"topic:{which}",
            {
                "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "actor": getpass.getuser(),
                "role": "cli",
                "action": "consult",
                "object": f"topic:{which}",
                "reason": "banwatch tail",
            },
        ).get(timeout=30)
    finally:
        producer.close(timeout=5)


def tail(
    settings: Settings,
    which: str,
    unit: str | None,
    as_json: bool,
    beginning: bool,
    role: str | None = None,
    person: str | None = None,
) -> int:
    """Follow `alerts`, `patrol-tasks` or `protected-notifications` until Ctrl-C; `--unit`
    keeps one unit's tasks (or the alerts recommending it), `--role` one role's tasks,
    `--person` one protected person's notifications."""
    filters = {
        k: v for k, v in (("unit", unit), ("role", role), ("person", person)) if v is not None
    }
    wrong = sorted(set(filters) - TAIL_FILTERS[which])
    if wrong:
        print(f"banwatch tail {which}: --{wrong[0]} does not apply", file=sys.stderr)
        return 2
    names = TopicNames.with_prefix(settings.topic_prefix)
    attr, line = TAIL_TOPICS[which]
    topic = getattr(names, attr)
    out = sys.stdout
    _audit_tail(settings, names, which)
    with stop_on_signals() as stop:
        records = follow(
            bootstrap_of(settings), topic, beginning, stop=stop, **settings.kafka_security()
        )
        for rec in records:
            _print_tailed(out, which, line, rec.value, filters, as_json)
    return 0


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM instead of an exception: `follow` then ends between
    two polls and closes its consumer, so the interrupt never lands inside the Kafka client (a
    KeyboardInterrupt there could leave `tail` hanging on its way out)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _print_tailed(
    out: Any,
    which: str,
    line: Callable[[dict[str, Any]], str],
    raw: bytes | None,
    filters: dict[str, str],
    as_json: bool,
) -> None:
    if raw is None:
        return
    try:
        value = json.loads(raw)
    except ValueError:
        return
    if not isinstance(value, dict) or not _keep(which, value, filters):
        return
    if as_json:
        out.write(json.dumps(value, ensure_ascii=False, sort_keys=True) + "\n")
    else:
        out.write(line(value) + "\n")
    out.flush()


