"""streams/metrics/prometheus.py: exactly the contract's metrics, closed label sets, a clean
endpoint."""

from __future__ import annotations

import logging
import math
import subprocess
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from alerts.engine import Outcome
from alerts.model import Kind, State
from geofence.decoding import Reason
from streams.metrics.prometheus import CONTRACT, Metrics

# CONTRACT.md, "Metrics", copied here: CI runs on a clone of this repository alone. A change
# to the contract's table must change this copy, the registry and the dashboards together.
CONTRACT_MD = {
    "banwatch_events_total": ("counter", {"topic", "outcome"}),
    "banwatch_dead_letters_total": ("counter", {"topic", "reason"}),
    "banwatch_alerts_total": ("counter", {"kind", "priority", "state"}),
    "banwatch_tasks_total": ("counter", {"kind"}),
    "banwatch_event_to_alert_seconds": ("histogram", {"kind"}),
    "banwatch_processing_seconds": ("histogram", {"topic"}),
    "banwatch_active_bans": ("gauge", set()),
    "banwatch_open_alerts": ("gauge", {"priority"}),
    "banwatch_unacknowledged_alert_age_seconds": ("gauge", {"priority"}),
    "banwatch_consumer_lag": ("gauge", {"topic", "partition"}),
}


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def record_some(m: Metrics) -> None:
    """One value in every metric, as a worker would record them."""
    m.on_event("positions", Outcome.accepted, None)
    m.on_event("positions", Outcome.rejected, Reason.schema)
    m.on_output(("dead-letters", "P-1", {"source_topic": "positions", "reason": "schema"}))
    m.on_output(
        (
            "alerts",
            "6f1c" * 8,
            {
                "alert_id": "6f1c" * 8,
                "kind": "zone_breach",
                "priority": 1,
                "state": "open",
                "opened_at": "2027-01-15T08:00:00Z",
                "position": {"ts": "2027-01-15T08:00:00Z"},
            },
        )
    )
    m.on_output(("patrol-tasks", "SÖ-2140", {"kind": "respond", "unit_id": "SÖ-2140"}))
    m.processing("positions", 0.002)
    m.set_active_bans(3)
    m.set_consumer_lag("positions", 0, 17)


def families(m: Metrics) -> dict[str, tuple[str, set[str]]]:
    out: dict[str, tuple[str, set[str]]] = {}
    for fam in m.registry.collect():
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        labels = {k for s in fam.samples for k in s.labels if k != "le"}
        out[name] = (fam.type, labels)
    return out


def test_the_vendored_table_is_the_modules_table() -> None:
    assert {k: (t, set(ls)) for k, (t, ls) in CONTRACT.items()} == CONTRACT_MD


def test_the_registry_holds_exactly_the_contracts_metrics() -> None:
    m = Metrics(clock=Clock(1_800_000_000.0))
    record_some(m)
    assert families(m) == CONTRACT_MD


def test_series_that_dashboards_and_rules_need_exist_before_any_record() -> None:
    text = Metrics().text()
    for line in (
        'banwatch_events_total{outcome="accepted",topic="positions"} 0.0',
        'banwatch_dead_letters_total{reason="internal",topic="routed"} 0.0',
        'banwatch_alerts_total{kind="zone_breach",priority="1",state="open"} 0.0',
        'banwatch_tasks_total{kind="respond"} 0.0',
        'banwatch_open_alerts{priority="1"} 0.0',
        'banwatch_unacknowledged_alert_age_seconds{priority="1"} 0.0',
        "banwatch_active_bans 0.0",
    ):
        assert line in text.splitlines()


ID_LIKE = ["P-7731", "KF-2026-0042", "EM-0091", "SÖ-2140", "6f1c" * 8, "I-88123", "op-17", ""]

REFUSALS: list[tuple[str, Callable[[Metrics, Any], None]]] = [
    ("event topic", lambda m, v: m.event(v, "accepted")),
    ("event outcome", lambda m, v: m.event("positions", v)),
    ("dead-letter topic", lambda m, v: m.dead_letter(v, "schema")),
    ("dead-letter reason", lambda m, v: m.dead_letter("positions", v)),
    ("alert kind", lambda m, v: m.alert(v, 1, "open")),
    ("alert priority", lambda m, v: m.alert("zone_breach", v, "open")),
    ("alert state", lambda m, v: m.alert("zone_breach", 1, v)),
    ("task kind", lambda m, v: m.task(v)),
    ("latency kind", lambda m, v: m.event_to_alert(v, 0.1)),
    ("processing topic", lambda m, v: m.processing(v, 0.1)),
    ("lag topic", lambda m, v: m.set_consumer_lag(v, 0, 1)),
    ("lag partition", lambda m, v: m.set_consumer_lag("positions", v, 1)),
    ("open alerts priority", lambda m, v: m.set_open_alerts({v: 1})),
    ("unacked age priority", lambda m, v: m.set_unacked_age({v: 1.0})),
]


@pytest.mark.parametrize("what,call", REFUSALS, ids=[r[0] for r in REFUSALS])
@pytest.mark.parametrize("value", ID_LIKE)
def test_a_value_outside_the_closed_set_is_refused(
    what: str, call: Callable[[Metrics, Any], None], value: str
) -> None:
    m = Metrics()
    before = m.text()
    with pytest.raises(ValueError) as err:
        call(m, value)
    assert value not in str(err.value) or value == ""  # the refused value may be an id
    assert m.text() == before


@pytest.mark.parametrize("priority", [0, 4, True, 1.0, "p1", None])
def test_priorities_are_1_2_3_only(priority: object) -> None:
    with pytest.raises(ValueError):
        Metrics().alert("zone_breach", priority, "open")


@pytest.mark.parametrize("partition", [-1, 1024, "0", True, 1.5])
def test_partitions_are_small_integers(partition: object) -> None:
    with pytest.raises(ValueError):
        Metrics().set_consumer_lag("positions", partition, 1)


def test_every_member_of_the_codes_enums_is_accepted() -> None:
    m = Metrics()
    for kind in Kind:
        for p in (1, 2, 3, "1", "2", "3"):
            for state in State:
                m.alert(kind, p, state)
        m.event_to_alert(kind.value, 0.5)
    for outcome in Outcome:
        m.event("incidents", outcome)
    for reason in Reason:
        m.dead_letter("alert-acks", reason)
    for kind_name in ("respond", "protect", "interview", "motivational_talk", "referral", "knock"):
        m.task(kind_name)
    m.set_consumer_lag("routed", 1023, 5)


def test_deployed_topic_names_lose_their_prefix_and_foreign_ones_are_refused() -> None:
    m = Metrics(topic_prefix="prod.", internal={"prod.banwatch-routed": "routed"})
    m.event("prod.positions", "accepted")
    m.set_consumer_lag("prod.banwatch-routed", 2, 9)
    text = m.text()
    assert 'banwatch_events_total{outcome="accepted",topic="positions"} 1.0' in text
    assert 'banwatch_consumer_lag{partition="2",topic="routed"} 9.0' in text
    assert "prod." not in text
    for foreign in ("test.positions", "prod.positions-2", "prod.banwatch-other"):
        with pytest.raises(ValueError):
            m.event(foreign, "accepted")
    with pytest.raises(ValueError):
        Metrics(internal={"x": "P-7731"})


def test_the_worker_hooks_never_raise_and_count_nothing_they_refuse(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = Metrics()
    before = m.text()
    with caplog.at_level(logging.ERROR, logger="banwatch.metrics"):
        m.on_event("P-7731", Outcome.accepted, None)
        m.on_output(("alerts", "x", {"alert_id": "x", "kind": "P-7731", "priority": 1}))
        m.on_output(("patrol-tasks", "SÖ-2140", {"kind": "SÖ-2140"}))
        m.on_output(("dead-letters", "k", {"source_topic": "positions", "reason": "EM-0091"}))
        m.on_output(("dead-letters", "k", {"source_topic": "positions", "reason": "EM-0092"}))
    assert m.text() == before
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3  # once per refused label (topic, kind, reason), not per record
    assert not any(i in msg for msg in messages for i in ("P-7731", "SÖ-2140", "EM-009"))


def alert(aid: str, state: str, priority: int = 1, opened: str = "2027-01-15T08:00:00Z") -> Any:
    return ("alerts", aid, {
        "alert_id": aid, "kind": "zone_breach", "priority": priority, "state": state,
        "opened_at": opened, "position": {"ts": opened},
    })  # fmt: skip


def gauge(m: Metrics, name: str, priority: str) -> float:
    value = m.registry.get_sample_value(name, {"priority": priority})
    assert value is not None
    return value


def test_open_and_unacknowledged_alerts_follow_the_revisions() -> None:
    t0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    clock = Clock(t0 + 0.4)
    m = Metrics(clock=clock)
    m.on_output(alert("a" * 32, "open", opened="2027-01-15T08:00:00Z"))
    m.on_output(alert("b" * 32, "open", opened="2027-01-15T08:00:30Z"))
    m.on_output(alert("c" * 32, "open", priority=3, opened="2027-01-15T07:00:00Z"))
    latency = m.registry.get_sample_value(
        "banwatch_event_to_alert_seconds_sum", {"kind": "zone_breach"}
    )
    # 0.4 s; a fix "from the future" (clock skew) counts as 0; an hour-old incident as an hour
    assert latency == pytest.approx(0.4 + 0.0 + 3600.4)
    clock.t = t0 + 75
    assert gauge(m, "banwatch_open_alerts", "1") == 2
    assert gauge(m, "banwatch_unacknowledged_alert_age_seconds", "1") == pytest.approx(75)
    assert gauge(m, "banwatch_unacknowledged_alert_age_seconds", "3") == pytest.approx(3675)
    assert gauge(m, "banwatch_unacknowledged_alert_age_seconds", "2") == 0
    m.on_output(alert("a" * 32, "escalated"))
    assert gauge(m, "banwatch_unacknowledged_alert_age_seconds", "1") == pytest.approx(75)
    m.on_output(alert("a" * 32, "acknowledged"))
    assert gauge(m, "banwatch_open_alerts", "1") == 2
    assert gauge(m, "banwatch_unacknowledged_alert_age_seconds", "1") == pytest.approx(45)
    m.on_output(alert("b" * 32, "acknowledged"))
    assert gauge(m, "banwatch_unacknowledged_alert_age_seconds", "1") == 0
    m.on_output(alert("a" * 32, "resolved"))
    m.on_output(alert("b" * 32, "resolved"))
    assert gauge(m, "banwatch_open_alerts", "1") == 0
    assert gauge(m, "banwatch_open_alerts", "3") == 1
    m.forget_alerts()
    assert gauge(m, "banwatch_open_alerts", "3") == 0
    assert (
        m.registry.get_sample_value(
            "banwatch_alerts_total", {"kind": "zone_breach", "priority": "1", "state": "resolved"}
        )
        == 2
    )


def test_signal_lost_and_late_evidence_are_not_latencies() -> None:
    m = Metrics(clock=Clock(1_800_000_000.0 + 600))
    for kind in ("signal_lost", "late_evidence"):
        out = alert(kind[0] * 32, "open")
        out[2]["kind"] = kind
        m.on_output(out)
    m.on_output(alert("z" * 32, "open"))
    assert (
        m.registry.get_sample_value(
            "banwatch_event_to_alert_seconds_count", {"kind": "signal_lost"}
        )
        is None
    )
    assert (
        m.registry.get_sample_value(
            "banwatch_event_to_alert_seconds_count", {"kind": "zone_breach"}
        )
        == 1
    )


def test_direct_gauges_replace_the_book() -> None:
    m = Metrics()
    m.on_output(alert("a" * 32, "open"))
    m.set_open_alerts({1: 4, "2": 1})
    m.set_unacked_age({"1": 12.5})
    assert gauge(m, "banwatch_open_alerts", "1") == 4
    assert gauge(m, "banwatch_open_alerts", "2") == 1
    assert gauge(m, "banwatch_open_alerts", "3") == 0
    assert gauge(m, "banwatch_unacknowledged_alert_age_seconds", "1") == 12.5


def test_lag_of_a_partition_no_longer_owned_disappears() -> None:
    m = Metrics()
    m.set_consumer_lag("positions", 3, 40)
    assert 'banwatch_consumer_lag{partition="3",topic="positions"} 40.0' in m.text()
    m.forget_consumer_lag("positions", 3)
    m.forget_consumer_lag("positions", 3)
    assert "banwatch_consumer_lag{" not in m.text()


@pytest.mark.parametrize("seconds", [0.0, 0.0004, 0.001, 0.0123, 0.25, 3.0, 1e9])
def test_a_batch_is_n_observations_of_its_processing_time(seconds: float) -> None:
    # Metrics.processing observes a batch in one step (observe_many): the exposition must be
    # what n separate observations give, bucket by bucket, boundaries included
    bulk, loop = Metrics(), Metrics()
    bulk.processing("positions", seconds, 1500)
    bulk.processing("positions", 0.002, 1)
    child = loop.processing_seconds.labels("positions")
    for _ in range(1500):
        child.observe(seconds)
    child.observe(0.002)

    def series(m: Metrics) -> dict[str, float]:
        lines = [x for x in m.text().splitlines() if x.startswith("banwatch_processing_seconds")]
        return {name: float(v) for name, _, v in (x.rpartition(" ") for x in lines)}

    got, want = series(bulk), series(loop)
    assert got.keys() == want.keys()
    for name, value in want.items():
        if "_sum{" in name:  # value * n here, n additions there: equal up to rounding
            assert math.isclose(got[name], value, rel_tol=1e-12), name
        else:  # bucket counts and the count: exactly
            assert got[name] == value, name
    assert got['banwatch_processing_seconds_count{topic="positions"}'] == 1501


def test_no_observation_for_an_empty_batch() -> None:
    m = Metrics()
    m.processing("positions", 0.5, 0)
    assert 'banwatch_processing_seconds_count{topic="positions"} 0.0' in m.text()


def test_the_served_endpoint_passes_promtool_check_metrics(promtool: str) -> None:
    m = Metrics(clock=Clock(1_800_000_000.0 + 2))
    record_some(m)
    server = m.serve("127.0.0.1", 0)
    try:
        assert server.port != 0
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            body = resp.read()
    finally:
        server.close()
    assert b"banwatch_events_total" in body
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30
    )
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_promtool_check_metrics_can_fail(promtool: str) -> None:
    """The check above means something: promtool rejects a badly named counter."""
    bad = b"# HELP banwatch_events A counter without _total\n# TYPE banwatch_events counter\n"
    bad += b"banwatch_events 1\n"
    check = subprocess.run([promtool, "check", "metrics"], input=bad, capture_output=True)
    assert check.returncode != 0 or check.stdout.strip()
