"""The `banwatch` command line."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from alerts.replay import replay
from config.policy import PolicyError, load_policy
from config.settings import SettingsError, load_settings
from streams.cli.replay_files import InputFileError, read_bans, read_events


def _timestamp(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 timestamp: {text!r}") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"timestamp needs an offset (e.g. Z): {text!r}")
    return t


def _dump(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cmd_replay(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    now = args.now or datetime.now(UTC)
    bans = read_bans(args.bans, policy, now)
    events = read_events(args.events)
    out = sys.stdout
    for topic, key, value in replay(bans, events, policy, now, args.until):
        out.write(_dump({"topic": topic, "key": key, "value": value}) + "\n")
    out.flush()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from streams.cli.up import up

    return up(load_settings(), demo=args.demo)


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.cli.worker import main as worker_main

    return worker_main(load_settings())


def cmd_console(args: argparse.Namespace) -> int:
    from streams.cli.console import main as console_main

    return int(console_main(load_settings()))


def cmd_store(args: argparse.Namespace) -> int:  # the record store (streams/store)
    from streams.cli.store import main as store_main

    return store_main(load_settings())


def cmd_bans_import(args: argparse.Namespace) -> int:
    from streams.cli.commands import import_bans

    return import_bans(load_settings(), args.file, args.by)


def cmd_tail(args: argparse.Namespace) -> int:
    from streams.cli.commands import tail

    return tail(
        load_settings(),
        args.topic,
        args.unit,
        args.json,
        args.from_beginning,
        role=args.role,
        person=args.person,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from streams.bench.suite import main as bench_main

    return int(bench_main(quick=args.quick, json_path=args.json, smoke=args.smoke))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="banwatch", description="contact-ban violation alerting")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="the decision logic, offline and deterministic")
    r.add_argument("--bans", required=True, help="bans: JSON lines or a JSON array")
    r.add_argument("--events", required=True, help='JSON lines {"topic", "key", "value"}')
    r.add_argument("--until", type=_timestamp, help="apply records up to and run timers to TS")
    r.add_argument("--now", type=_timestamp, help="reference for future timestamps (default: now)")
    r.add_argument("--policy", help="policy TOML overriding config/policy.toml")
    r.set_defaults(func=cmd_replay)

    u = sub.add_parser("up", help="the whole service on one machine (embedded broker if unset)")
    u.add_argument("--demo", action="store_true", help="feed a scripted scenario in real time")
    u.set_defaults(func=cmd_up)
    sub.add_parser("worker", help="one stream worker on BANWATCH_KAFKA_BOOTSTRAP").set_defaults(
        func=cmd_worker
    )
    sub.add_parser("console", help="the dispatch console web server").set_defaults(func=cmd_console)
    sub.add_parser("store", help="the record-store sink: topics -> database").set_defaults(
        func=cmd_store
    )
    b = sub.add_parser("bans", help="the contact-ban registry")
    bsub = b.add_subparsers(dest="bans_command", required=True)
    bi = bsub.add_parser("import", help="validate every ban, then publish them all")
    bi.add_argument("file", help="bans: JSON lines or a JSON array")
    bi.add_argument("--by", default="cli", help="who imports (for the audit record)")
    bi.set_defaults(func=cmd_bans_import)
    t = sub.add_parser("tail", help="follow alerts, patrol tasks or protected-person warnings")
    t.add_argument("topic", choices=["alerts", "tasks", "notifications"])
    t.add_argument("--unit", help="only tasks (or alerts recommending) this unit")
    t.add_argument("--role", help="only tasks for this role (investigator, negotiator, ...)")
    t.add_argument("--person", help="only notifications to this protected person")
    t.add_argument("--json", action="store_true", help="one JSON record per line")
    t.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record, not now"
    )
    t.set_defaults(func=cmd_tail)
    be = sub.add_parser("bench", help="the benchmark suite: a table, and JSON")
    be.add_argument("--quick", action="store_true", help="smaller sizes, under 5 minutes")
    be.add_argument("--json", help="write the results to this file")
    be.add_argument("--smoke", action="store_true", help="tiny sizes: checks the JSON, ~1 min")
    be.set_defaults(func=cmd_bench)
    from streams.report.command import add_parser as add_report

    add_report(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (InputFileError, PolicyError, SettingsError) as exc:
        print(f"banwatch: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
