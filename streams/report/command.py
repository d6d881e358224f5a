"""`banwatch report --from DATE --to DATE`: read a source, compute, write HTML and JSON, audit.

Exit 2 with one line for a bad date range, an unreadable source, or a source without records
in the period. The report's generation is itself an `audit` record (action `consult`, object
`report:FROM..TO`), written to the source's audit sink.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.model import rfc3339
from alerts.report import MIN_PERSONS, Ledger, Period, figures, publish
from config.policy import load_policy
from streams.report.sources import FileSource, Source, SourceError, StoreSource

#: Records this far before and after the period are read: the effect's longest window.
MARGIN = timedelta(days=90)


class ReportError(Exception):
    """A usage or input problem; one line, exit status 2."""


def _date(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{flag}: not a date (YYYY-MM-DD): {text!r}") from None


def period_of(first: str, last: str, tz: str) -> Period:
    a, b = _date(first, "--from"), _date(last, "--to")
    if b < a:
        raise ReportError(f"--to {b} is before --from {a}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"--tz: unknown time zone {tz!r}") from None
    return Period(a, b, tz)


def open_source(args: argparse.Namespace) -> Source:
    """`--records FILE`, else the record store (`BANWATCH_DATABASE_URL`, else the SQLite file
    under `BANWATCH_DATA_DIR`); the report's audit record is also published to the configured
    broker (else the embedded one of `banwatch up`) when it answers."""
    if args.records is not None:
        path = Path(args.records)
        if not path.is_file():
            raise ReportError(f"--records: no such file: {path}")
        return FileSource(path, Path(args.audit) if args.audit else None, progress=not args.quiet)
    from config.settings import load_settings
    from config.topics import TopicNames
    from streams.store.db import SQLITE_FILE, database_url

    settings = load_settings()
    if not settings.database_url:
        file = Path(settings.data_dir) / SQLITE_FILE
        if not file.is_file():
            raise ReportError(
                f"an empty store: no record store at {file} (BANWATCH_DATA_DIR="
                f"{settings.data_dir}); run `banwatch up` or `banwatch store` first, set "
                "BANWATCH_DATABASE_URL, or give --records FILE"
            )
    if args.audit:
        raise ReportError("--audit is for --records FILE; the store keeps the audit record")
    return StoreSource(
        database_url(settings.database_url, settings.data_dir),
        bootstrap=settings.kafka_bootstrap or f"127.0.0.1:{settings.embedded_broker_port}",
        topic=TopicNames.with_prefix(settings.topic_prefix).audit,
        security=settings.kafka_security(),
        progress=not args.quiet,
    )


def build(source: Source, period: Period, policy_path: str | None) -> tuple[dict[str, Any], int]:
    """(published figures, records read). Raises ReportError when the source has nothing in
    the period."""
    policy = load_policy(policy_path)
    ledger = Ledger()
    try:
        for topic, key, value in source.records(period.start - MARGIN, period.end + MARGIN):
            ledger.add(topic, key, value)
    except SourceError as exc:
        raise ReportError(str(exc)) from None
    if (
        ledger.first_seen is None
        or ledger.last_seen is None
        or ledger.last_seen < period.start
        or ledger.first_seen >= period.end
    ):
        raise ReportError(
            f"{source.description}: no records between {period.first} and {period.last} "
            f"({ledger.records} records read)"
        )
    published, suppressed = publish(figures(ledger, period, policy))
    published["privacy"] = {"min_persons": MIN_PERSONS, "suppressed_cells": suppressed}
    return published, ledger.records


def audit_record(period: Period, by: str, at: datetime) -> dict[str, Any]:
    return {
        "ts": rfc3339(at),
        "actor": by,
        "role": "viewer",
        "action": "consult",
        "object": f"report:{period.first}..{period.last}",
        "reason": "programme report (aggregates only)",
    }


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    try:
        period = period_of(args.date_from, args.date_to, args.tz)
        source = open_source(args)
        published, n = build(source, period, args.policy)
    except ReportError as exc:
        print(f"banwatch report: {exc}", file=sys.stderr)
        return 2
    from streams.report.render import render_html  # matplotlib: only when a report is made

    now = datetime.now(UTC)
    page = render_html(published, rfc3339(now.replace(microsecond=0)), args.locale)
    out = Path(args.out)
    out.write_text(page, "utf-8")
    print(f"report: {out} ({len(page) // 1024} KiB)")
    if args.json:
        Path(args.json).write_text(json.dumps(published, indent=1, ensure_ascii=False), "utf-8")
        print(f"figures: {args.json}")
    try:
        where = source.write_audit(audit_record(period, args.by or _user(), now))
    except SourceError as exc:
        print(
            f"banwatch report: the report is written, its audit record is not: {exc}",
            file=sys.stderr,
        )
        return 1
    print(f"audit record: {where}")
    print(
        f"{n:,} records, {published['privacy']['suppressed_cells']} cells suppressed, "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def add_parser(sub: Any) -> None:
    """Register `report` on the CLI's subparsers."""
    r = sub.add_parser("report", help="the programme's effect and response report (HTML, JSON)")
    r.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
    r.add_argument("--to", dest="date_to", required=True, help="last day (included)")
    r.add_argument("--out", default="report.html", help="the HTML page (default report.html)")
    r.add_argument("--json", help="also write the figures as JSON here")
    r.add_argument(
        "--records",
        help='source: JSON lines {"topic", "key", "value"} (default: the record store, '
        "BANWATCH_DATABASE_URL or BANWATCH_DATA_DIR)",
    )
    r.add_argument("--audit", help="append the report's audit record here (file source)")
    r.add_argument("--by", help="who runs the report, for the audit record (default: user)")
    r.add_argument("--locale", choices=["en", "sv"], default="en", help="number format")
    r.add_argument("--tz", default="Europe/Stockholm", help="time zone of days and hours")
    r.add_argument("--policy", help="policy TOML (ack_sla_s, signal_timeout_s, ...)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=run)
