"""The report as one self-contained HTML page: tables, and plots as inline SVG (matplotlib, Agg).

Renders the published figures (plain JSON, suppressed cells already `"<5"`) and nothing else:
no record reaches this module, so no id, position or free text can reach the page. Readable on
a screen and printed (print CSS: no backgrounds, no section split across pages). `locale="sv"`
writes numbers the Swedish way (1 234,5 and 73,0 %); the text stays English.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, MaxNLocator

SUPPRESSED = "<5"
_PRECISE = re.compile(r"(\d\.\d\d)\d+")
_NBSP = "\u00a0"

plt.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: smaller, selectable, printable
        "svg.hashsalt": "banwatch-report",  # the same figures give the same SVG
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)

KIND_COLOURS = {
    "zone_breach": "#b2182b",
    "proximity_breach": "#d6604d",
    "reported_contact": "#f4a582",
    "sos": "#67001f",
    "tamper": "#8073ac",
    "approach": "#fdb863",
    "signal_lost": "#4393c3",
    "threat": "#e08214",
    "battery_low": "#92c5de",
    "tip": "#b8e186",
    "late_evidence": "#878787",
    "unmatched_incident": "#bababa",
}

class Numbers:
    """Number formats for one locale (`en`: 1,234.5; `sv`: 1 234,5)."""

    def __init__(self, locale: str) -> None:
        self.sv = locale == "sv"

    def num(self, x: Any, digits: int = 0) -> str:
        if x is None:
            return "–"
        if x == SUPPRESSED:
            return SUPPRESSED
        text = f"{float(x):,.{digits}f}"
        if self.sv:
            text = text.replace(",", _NBSP).replace(".", ",")
        return text

    def pct(self, x: Any) -> str:
        if x is None or x == SUPPRESSED:
            return self.num(x)
        return f"{self.num(float(x) * 100, 1)}{_NBSP}%"

    def secs(self, x: Any) -> str:
        """Seconds, in seconds under 2 minutes, else in minutes."""
        if x is None or x == SUPPRESSED:
            return self.num(x)
        x = float(x)
        return f"{self.num(x, 0)}{_NBSP}s" if x < 120 else f"{self.num(x / 60, 1)}{_NBSP}min"

    def axis(self) -> FuncFormatter:
        """Tick labels: whole numbers as such, others with one decimal."""
        return FuncFormatter(lambda v, _pos: self.num(v, 0 if float(v).is_integer() else 1))


def _value(x: Any) -> float:
    """A plottable number: suppressed and missing cells are drawn as nothing (0)."""
    return float(x) if isinstance(x, int | float) else 0.0


def _counts(ax: Any, n: Numbers, axis: str = "y") -> None:
    """A count axis: whole-number ticks in the locale's format; 0-1 when there is nothing."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_locator(MaxNLocator(integer=True))
    a.set_major_formatter(n.axis())
    _, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if hi < 1:  # whole-number counts below 1: nothing to draw
        (ax.set_ylim if axis == "y" else ax.set_xlim)(0, 1)


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    # 2 decimals are plenty for points on a page, and no number in the page then has the
    # precision of a coordinate
    return _PRECISE.sub(r"\1", text[text.index("<svg") :])


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _response(r: dict[str, Any], n: Numbers) -> str:
    t = r["total"]
    rows = [
        ["Priority-1 alerts", n.num(t["p1_alerts"])],
        ["Time to acknowledge, p50", n.secs(t["acknowledge"]["p50_s"])],
        ["Time to acknowledge, p90", n.secs(t["acknowledge"]["p90_s"])],
        [
            f"Acknowledged within the SLA ({n.num(r['ack_sla_s'])} s)",
            f"{n.pct(t['acknowledge']['share_within_sla'])} "
            f"({n.num(t['acknowledge']['within_sla'])} of {n.num(t['p1_alerts'])})",
        ],
        ["Never acknowledged", n.num(t["acknowledge"]["never_acknowledged"])],
        ["Alert → unit accepted, p50", n.secs(t["unit_accepted"]["p50_s"])],
        ["Alert → unit accepted, p90", n.secs(t["unit_accepted"]["p90_s"])],
        ["Alert → unit on scene, p50", n.secs(t["on_scene"]["p50_s"])],
        ["Alert → unit on scene, p90", n.secs(t["on_scene"]["p90_s"])],
        ["Escalations", n.num(t["escalations"])],
        ["Unit tasks expired (not accepted in time)", n.num(t["tasks_expired"])],
        ["Unit tasks declined", n.num(t["tasks_declined"])],
    ]
    weeks = r["weeks"]
    wrows = [
        [
            w["week"],
            n.num(w["p1_alerts"]),
            n.secs(w["acknowledge"]["p50_s"]),
            n.secs(w["acknowledge"]["p90_s"]),
            n.pct(w["acknowledge"]["share_within_sla"]),
            n.secs(w["unit_accepted"]["p50_s"]),
            n.secs(w["on_scene"]["p50_s"]),
            n.secs(w["on_scene"]["p90_s"]),
            n.num(w["escalations"]),
            n.num(w["tasks_expired"]),
            n.num(w["tasks_declined"]),
        ]
        for w in weeks
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.5, 2.4))
    xs = list(range(len(weeks)))
    labels = [w["week"][5:] for w in weeks]
    for ax, key, scale, unit in ((ax1, "acknowledge", 1, "s"), (ax2, "on_scene", 60, "min")):
        ax.bar(
            [x - 0.2 for x in xs],
            [_value(w[key]["p50_s"]) / scale for w in weeks],
            0.4,
            label="p50",
            color="#4393c3",
        )
        ax.bar(
            [x + 0.2 for x in xs],
            [_value(w[key]["p90_s"]) / scale for w in weeks],
            0.4,
            label="p90",
            color="#d6604d",
        )
        ax.set_xticks(xs, labels, rotation=45 if len(xs) > 6 else 0)
        ax.yaxis.set_major_formatter(n.axis())
        ax.set_ylabel(unit)
    ax1.axhline(float(r["ack_sla_s"]), color="#333", lw=0.8, ls="--", label="SLA")
    ax1.set_title("time to acknowledge", fontsize=9, loc="right")
    ax2.set_title("alert to unit on scene", fontsize=9, loc="right")
    ax1.legend(frameon=False, fontsize=8, ncols=3, loc="lower left", bbox_to_anchor=(0, 1.08))
    return (
        "<h2>Response to priority-1 alerts</h2>"
        + _table(["", "whole period"], rows, "kv")
        + _figure(_svg(fig), "Per week (local ISO weeks): p50 and p90.")
        + _table(
            [
                "week",
                "P1",
                "ack p50",
                "ack p90",
                "in SLA",
                "accepted p50",
                "on scene p50",
                "on scene p90",
                "escalated",
                "expired",
                "declined",
            ],
            wrows,
        )
    )


def _alerts(a: dict[str, Any], n: Numbers) -> str:
    kinds: list[str] = a["kinds"]
    days = a["per_day"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7.5, 4.6), sharex=True)
    xs = list(range(len(days)))
    bottom = [0.0] * len(days)
    for k in kinds:
        ys = [_value(d["by_kind"][k]["all"]) for d in days]
        ax1.bar(xs, ys, 0.8, bottom=bottom, label=k, color=KIND_COLOURS.get(k, "#999"))
        bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
    ax1.set_ylabel("alerts by kind")
    ax1.legend(frameon=False, fontsize=7, ncols=4, loc="upper left", bbox_to_anchor=(0, 1.35))
    bottom = [0.0] * len(days)
    for p, colour in (("1", "#b2182b"), ("2", "#f4a582"), ("3", "#92c5de")):
        ys = [_value(d["by_priority"][p]) for d in days]
        ax2.bar(xs, ys, 0.8, bottom=bottom, label=f"priority {p}", color=colour)
        bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
    ax2.set_ylabel("alerts by priority")
    ax2.legend(frameon=False, fontsize=7, ncols=3)
    step = max(1, math.ceil(len(days) / 8))
    ax2.set_xticks(xs[::step], [d["day"][5:] for d in days][::step])
    for ax in (ax1, ax2):
        _counts(ax, n)
    per_day = _figure(_svg(fig), "Alerts opened per day (local time), stacked.")

    hours = a["by_hour"]
    fig, ax = plt.subplots(figsize=(7.5, 2.3))
    ax.bar(range(24), [_value(h["alerts"]) for h in hours], 0.8, color="#bababa", label="all")
    ax.bar(
        range(24),
        [_value(h["violations"]) for h in hours],
        0.5,
        color="#b2182b",
        label="violations (zone, proximity, reported contact)",
    )
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel("hour of day (local time)")
    _counts(ax, n)
    ax.legend(frameon=False, fontsize=8)
    by_hour = _figure(_svg(fig), "When alerts open: by hour of day.")

    fa = a["false_alarms"]
    rows = [
        [
            k,
            n.num(fa[k]["alerts"]),
            n.num(fa[k]["false_alarm_outcome"]),
            n.num(fa[k]["resolved_without_response"]),
            n.pct(fa[k]["share"]),
        ]
        for k in kinds
    ]
    return (
        "<h2>Alerts</h2>"
        + f"<p>Alerts opened in the period: <b>{n.num(a['total'])}</b>.</p>"
        + per_day
        + by_hour
        + "<h3>False alarms per kind</h3>"
        + _table(
            ["kind", "alerts", "unit found false alarm", "resolved without response", "share"],
            rows,
        )
    )


STEP_LABELS = {
    "confirmed_violation": "Confirmed violation",
    "interview_held": "Interview held",
    "talk_held": "Motivational talk held",
    "accepted_help": "Accepted help",
    "consent": "Consent to share",
    "referral_contact_made": "Social services contact made",
}


def _funnel(f: dict[str, Any], n: Numbers) -> str:
    steps = f["steps"]
    fig, ax = plt.subplots(figsize=(7.5, 2.4))
    ys = list(range(len(steps)))[::-1]
    ax.barh(ys, [_value(s["persons"]) for s in steps], color="#4393c3")
    ax.set_yticks(ys, [STEP_LABELS[s["step"]] for s in steps])
    _counts(ax, n, "x")
    ax.set_xlabel("persons")
    rows = []
    for s in steps:
        dropped = ", ".join(f"{k}: {n.num(v)}" for k, v in s.get("dropped", {}).items())
        rows.append(
            [
                STEP_LABELS[s["step"]],
                n.num(s["persons"]),
                n.pct(s.get("share_of_previous")) if "share_of_previous" in s else "",
                dropped,
            ]
        )
    return (
        "<h2>The outreach chain</h2>"
        "<p>Persons with a confirmed violation in the period, and how far each got in the chain "
        "(interview → motivational talk → help → consent → social services).</p>"
        + _figure(_svg(fig), "Persons reaching each step.")
        + _table(["step", "persons", "of previous step", "did not pass: outcome"], rows)
    )


def _effect(e: dict[str, Any], n: Numbers) -> str:
    parts = [
        "<h2>Effect after a motivational talk</h2>",
        '<p class="note"><b>Descriptive, not causal.</b> Confirmed violations of each person '
        "whose talk was held in the period, in the same number of days before and after the "
        "talk. Persons who choose to talk differ from those who do not, violations fall after a "
        "peak without any talk (regression to the mean), and a person not seen violating may be "
        "unmonitored. Only persons with the whole window inside the data are counted.</p>",
        f"<p>Talks held in the period: <b>{n.num(e['talks_held'])}</b>.</p>",
    ]
    fig, axes = plt.subplots(1, len(e["windows"]), figsize=(7.5, 2.4), sharey=False)
    groups = ("all", "accepts", "declines")
    for ax, w in zip(axes, e["windows"], strict=True):
        xs = list(range(len(groups)))
        ax.bar(
            [x - 0.2 for x in xs],
            [_value(w[g]["violations_before"]) for g in groups],
            0.4,
            label="before",
            color="#b2182b",
        )
        ax.bar(
            [x + 0.2 for x in xs],
            [_value(w[g]["violations_after"]) for g in groups],
            0.4,
            label="after",
            color="#4393c3",
        )
        ax.set_xticks(xs, ["all", "accepts help", "declines help"])
        ax.set_title(f"{w['days']} days", fontsize=9)
        _counts(ax, n)
        ax.legend(frameon=False, fontsize=8)
    parts.append(_figure(_svg(fig), "Confirmed violations before and after the talk."))
    for w in e["windows"]:
        rows = []
        for g, label in zip(groups, ("all", "accepts help", "declines help"), strict=True):
            c = w[g]
            rows.append(
                [
                    label,
                    n.num(c["persons"]),
                    n.num(c["violations_before"]),
                    n.num(c["violations_after"]),
                    f"{n.pct(c['share_none_after'])} "
                    f"({n.num(c['persons_none_after'])} of {n.num(c['persons'])})",
                    f"{n.pct(c['share_of_them_none_after'])} "
                    f"({n.num(c['of_them_none_after'])} of "
                    f"{n.num(c['persons_with_violations_before'])})",
                    f"{n.num(c['persons_fewer_after'])} / {n.num(c['persons_same'])} / "
                    f"{n.num(c['persons_more_after'])}",
                ]
            )
        parts.append(
            f"<h3>{w['days']} days before and after</h3>"
            + _table(
                [
                    "talk outcome",
                    "persons",
                    "violations before",
                    "after",
                    "none after",
                    "of those with violations before: none after",
                    "fewer / same / more",
                ],
                rows,
            )
            + f"<p>Not counted (window reaches outside the data): "
            f"{n.num(w['incomplete_follow_up'])}.</p>"
        )
    return "".join(parts)


def _quality(q: dict[str, Any], n: Numbers) -> str:
    imp = q["implausible_fixes"]
    rows = [
        ["Hours of signal loss (monitored devices)", n.num(q["signal_loss"]["hours"], 1)],
        ["Signal-loss episodes", n.num(q["signal_loss"]["episodes"])],
        ["Implausible fixes named in alerts (rule 3)", n.num(imp["in_alerts"])],
        [
            "Implausible fixes among input positions",
            "not in source" if imp["in_positions"] is None else n.num(imp["in_positions"]),
        ],
    ]
    dl = [[reason, n.num(v)] for reason, v in q["dead_letters"].items()]
    return (
        "<h2>Data quality</h2>"
        + _table(["", ""], rows, "kv")
        + "<h3>Dead letters by reason</h3>"
        + (_table(["reason", "records"], dl) if dl else "<p>None.</p>")
    )


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111;
 max-width:60rem;margin:1.5rem auto;padding:0 1rem;background:#fff}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:2px solid #333;
 margin-top:2rem;padding-bottom:.2rem}h3{font-size:1rem;margin-top:1.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #bbb;padding:.2rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left;white-space:nowrap}
thead th{background:#eee}table.kv td:first-child{min-width:22rem}
figure{margin:.8rem 0}figure svg{width:100%;height:auto}
figcaption{font-size:.85rem;color:#444}.note{background:#fff6d6;border-left:4px solid #e0b000;
 padding:.5rem .8rem}.meta{color:#444}section{break-inside:avoid-page}
@media print{body{max-width:none;margin:0;font-size:10pt}thead th{background:none}
 .note{background:none;border:1px solid #999}section,figure,table{break-inside:avoid}
 h2{break-after:avoid}}
"""


def render_html(published: dict[str, Any], generated_at: str, locale: str = "en") -> str:
    """The whole page from the published figures (suppression already applied)."""
    n = Numbers(locale)
    p = published["period"]
    privacy = published["privacy"]
    sections: list[Callable[[], str]] = [
        lambda: _response(published["response"], n),
        lambda: _alerts(published["alerts"], n),
        lambda: _funnel(published["funnel"], n),
        lambda: _effect(published["effect"], n),
        lambda: _quality(published["data_quality"], n),
    ]
    body = "".join(f"<section>{s()}</section>" for s in sections)
    return (
        f'<!DOCTYPE html><html lang="{html.escape(locale)}"><head><meta charset="utf-8">'
        f"<title>banwatch: programme report {html.escape(p['from'])} – {html.escape(p['to'])}"
        f"</title><style>{CSS}</style></head><body>"
        "<h1>banwatch: programme report</h1>"
        f'<p class="meta">Period {html.escape(p["from"])} – {html.escape(p["to"])} '
        f"(local days and hours: {html.escape(p['time_zone'])}). Generated "
        f"{html.escape(generated_at)}. Schema version {published['schema_version']}.</p>"
        f'<p class="note">Aggregates only: no person, ban, alert or unit is named and no '
        f"position is shown. Every figure that stands for 1 to 4 persons is suppressed "
        f"(shown as “&lt;5”, drawn as nothing): <b>{n.num(privacy['suppressed_cells'])}</b> "
        f"figures were suppressed in this report.</p>"
        f"{body}</body></html>"
    )
