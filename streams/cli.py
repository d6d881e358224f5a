"""The `banwatch` command line."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from alerts.replay import replay
from config.policy import PolicyError, load_policy
from streams.replay_files import InputFileError, read_bans, read_events


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
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (InputFileError, PolicyError) as exc:
        print(f"banwatch: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
