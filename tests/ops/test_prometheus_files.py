"""deploy/prometheus and deploy/grafana: promtool accepts them, every rule has unit tests and a
runbook, and every metric the rules and the dashboard query is one the workers export."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.metrics.prometheus import Metrics
from streams.store.metrics import StoreMetrics
from tests.ops.conftest import DEPLOY, ROOT

PROM = DEPLOY / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
BANWATCH = re.compile(r"\bbanwatch_[a-z0-9_]+\b")
OTHER_METRICS = {"up"}  # Prometheus's own, per target


def exported_names() -> set[str]:
    """Every series name a worker's endpoint can carry."""
    names: set[str] = set()
    for fam in Metrics().registry.collect():
        if fam.type == "counter":
            names.add(fam.name + "_total")
        elif fam.type == "histogram":
            names |= {fam.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(fam.name)
    return names


def store_names() -> set[str]:
    """Every series name the record-store sink's endpoint can carry (job banwatch-store)."""
    return {
        fam.name + "_total" if fam.type == "counter" else fam.name
        for fam in StoreMetrics().registry.collect()
    }


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)


def rules() -> Iterator[dict[str, Any]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text("utf-8"))["groups"]:
            yield from group["rules"]


def alert_names() -> list[str]:
    return [r["alert"] for r in rules() if "alert" in r]


def dashboard_exprs(path: Path) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel, rows included."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    doc = json.loads(path.read_text("utf-8"))
    return [
        (p.get("title", ""), t["expr"])
        for p in panels(doc["panels"])
        for t in p.get("targets", [])
        if "expr" in t
    ]


def grafana_to_promql(expr: str) -> str:
    for var, value in (("$__rate_interval", "1m"), ("$__interval", "15s"), ("$__range", "1h")):
        expr = expr.replace(var, value)
    return expr


def test_prometheus_config_passes_promtool(promtool: str) -> None:
    out = run(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in out.stdout + out.stderr


def test_alert_rules_pass_promtool(promtool: str) -> None:
    assert RULE_FILES
    out = run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_alert_rules_unit_tests_pass(promtool: str) -> None:
    assert RULE_TESTS
    out = run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_command_centres_alerts_are_all_there() -> None:
    names = set(alert_names())
    assert {
        "BanwatchPriority1Unacknowledged",
        "BanwatchConsumerLagGrowing",
        "BanwatchDeadLetters",
        "BanwatchNoFixes",
        "BanwatchWorkerDown",
    } <= names
    assert len(names) == len(alert_names()), "alert names must be unique"


def test_every_alert_has_a_firing_unit_test() -> None:
    fired: set[str] = set()
    for path in RULE_TESTS:
        for t in yaml.safe_load(path.read_text("utf-8"))["tests"]:
            for case in t.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    assert set(alert_names()) <= fired


def test_every_alert_has_a_severity_and_a_runbook_section() -> None:
    for rule in rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        target, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert anchor == name.lower(), name
        doc = (ROOT / target).read_text("utf-8")
        assert re.search(rf"^#+ `?{name}`?\s*$", doc, re.M), f"{target} has no section {name}"


def test_rules_query_only_exported_metrics() -> None:
    names = exported_names() | store_names()
    for rule in rules():
        expr = rule["expr"]
        for metric in BANWATCH.findall(expr):
            assert metric in names, f"{rule.get('alert')}: {metric} is not exported"
        for metric in SELECTOR.findall(expr):
            assert metric in names | OTHER_METRICS, f"{rule.get('alert')}: {metric}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_queries_only_exported_metrics(path: Path) -> None:
    names = exported_names()
    exprs = dashboard_exprs(path)
    assert exprs
    used: set[str] = set()
    for title, expr in exprs:
        found = BANWATCH.findall(expr)
        for metric in found:
            assert metric in names, f"panel {title!r}: {metric} is not exported"
        for metric in SELECTOR.findall(expr):
            assert metric in names | OTHER_METRICS, f"panel {title!r}: {metric}"
        used |= {re.sub(r"_(bucket|sum|count)$", "", m) for m in found}
    # the dashboard shows every metric of the contract
    contract = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    assert used == contract


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_queries_are_valid_promql(path: Path, promtool: str, tmp_path: Path) -> None:
    exprs = dashboard_exprs(path)
    groups = [
        {
            "name": "dashboard",
            "rules": [
                {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(e)}
                for i, (_, e) in enumerate(exprs)
            ],
        }
    ]
    rules_file = tmp_path / "dashboard.yml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}), "utf-8")
    out = run(promtool, "check", "rules", str(rules_file))
    assert out.returncode == 0, out.stdout + out.stderr
    # and the same check rejects a broken query
    groups[0]["rules"].append({"record": "dashboard:broken", "expr": "sum by (topic (x)"})
    rules_file.write_text(yaml.safe_dump({"groups": groups}), "utf-8")
    assert run(promtool, "check", "rules", str(rules_file)).returncode != 0


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    ds = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text("utf-8")
    )["datasources"]
    uids = {d["uid"] for d in ds}
    assert [d["type"] for d in ds] == ["prometheus"]
    for path in DASHBOARDS:
        doc = json.loads(path.read_text("utf-8"))
        assert doc["uid"] and doc["title"]
        for p in doc["panels"]:
            if p["type"] == "row":
                continue
            assert p["datasource"]["uid"] in uids, p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] in uids, p["title"]


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    titles = " | ".join(t for path in DASHBOARDS for t, _ in dashboard_exprs(path)).lower()
    for words in (
        "alerts by kind and priority",
        "latency",
        "open alerts",
        "unacknowledged",
        "per topic",
        "lag",
        "dead letters",
    ):
        assert words in titles, words
