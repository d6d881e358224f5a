"""The report's sections, computed from a `Ledger` for one period.

Each section is a function of the ledger, the period and the policy; the figures' definitions
(and where the contract is silent, the choices made) are in docs/report.md. Days, weeks and
hours of day are local to the period's time zone (Europe/Stockholm by default): a violation at
23:30 local time belongs to that evening, not to the next UTC day.

One module over ~400 lines on purpose: the five sections share the period, the person-counted
cells and the suppression helpers, and a reader checks a figure against docs/report.md here in
one place; each section is one function of 30-90 lines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alerts.banstate import LastFix
from alerts.detectors.plausibility import judge
from alerts.model import Kind
from alerts.report.cells import Cell, combine, percentile, protect
from alerts.report.ledger import UNIT_TASKS, VIOLATION_KINDS, AlertLog, Ledger, TaskLog
from config.policy import Policy

#: Version of the JSON the report writes; a change of meaning or shape bumps it.
SCHEMA_VERSION = 1

#: The contract's alert kinds in its order (the plots' and tables' order).
ALERT_KINDS = tuple(k.value for k in Kind)
#: The outreach chain's steps, in order, as they are named in the JSON.
FUNNEL_STEPS = (
    "confirmed_violation",
    "interview_held",
    "talk_held",
    "accepted_help",
    "consent",
    "referral_contact_made",
)
EFFECT_WINDOWS_DAYS = (30, 90)


@dataclass(frozen=True, slots=True)
class Period:
    """Local calendar days `first` .. `last` (both included) in time zone `tz`."""

    first: date
    last: date
    tz: str = "Europe/Stockholm"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time(), self.zone)

    @property
    def end(self) -> datetime:
        """The first instant after the period (midnight after `last`, local)."""
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time(), self.zone)

    def __contains__(self, t: object) -> bool:
        return isinstance(t, datetime) and self.start <= t < self.end

    def days(self) -> list[date]:
        n = (self.last - self.first).days + 1
        return [self.first + timedelta(days=i) for i in range(n)]

    def local(self, t: datetime) -> datetime:
        return t.astimezone(self.zone)

    def week(self, t: datetime) -> str:
        y, w, _ = self.local(t).isocalendar()
        return f"{y}-W{w:02d}"

    def weeks(self) -> list[str]:
        out: list[str] = []
        for d in self.days():
            y, w, _ = d.isocalendar()
            label = f"{y}-W{w:02d}"
            if not out or out[-1] != label:
                out.append(label)
        return out


def _protect_dict(cells: dict[str, Cell]) -> dict[str, Cell]:
    """`protect` over a dict of cells whose sum is published."""
    return dict(zip(cells, protect(list(cells.values())), strict=True))


def _protect_rows(rows: list[dict[str, Any]], *path: str) -> None:
    """`protect` over the cell at `path` in each row (weeks, hours), in place."""
    holders = []
    for row in rows:
        for k in path[:-1]:
            row = row[k]
        holders.append(row)
    for holder, cell in zip(holders, protect([h[path[-1]] for h in holders]), strict=True):
        holder[path[-1]] = cell


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else (b - a).total_seconds()


def _stats(values: dict[str, list[float]]) -> dict[str, Cell]:
    """p50 and p90 of durations (seconds) keyed by person: persons = who has a duration."""
    flat = [x for xs in values.values() for x in xs]
    return {
        "n": Cell(len(flat), len(values)),
        "p50_s": Cell.of(percentile(flat, 50), values),
        "p90_s": Cell.of(percentile(flat, 90), values),
    }


def _response_block(
    alerts: list[AlertLog], tasks_by_alert: dict[str, list[TaskLog]], policy: Policy
) -> dict[str, Any]:
    """Response figures for priority-1 alerts (those in `alerts`)."""
    persons = {a.who for a in alerts}
    ack: dict[str, list[float]] = defaultdict(list)
    accept: dict[str, list[float]] = defaultdict(list)
    scene: dict[str, list[float]] = defaultdict(list)
    within: set[str] = set()
    n_within = 0
    escalated: set[str] = set()
    n_escalated = 0
    never_answered: set[str] = set()
    n_never = 0
    expired: set[str] = set()
    declined: set[str] = set()
    n_expired = n_declined = 0
    for a in alerts:
        t_ack = _seconds(a.p1_at, a.answered_at)
        if t_ack is not None:
            t_ack = max(0.0, t_ack)
            ack[a.who].append(t_ack)
            if t_ack <= policy.ack_sla_s:
                within.add(a.who)
                n_within += 1
        else:
            never_answered.add(a.who)
            n_never += 1
        if a.escalated:
            escalated.add(a.who)
            n_escalated += 1
        accepted_at, on_scene_at = a.accepted_at, a.on_scene_at
        for t in tasks_by_alert.get(a.alert_id, []):
            if t.kind not in UNIT_TASKS:
                continue
            if t.accepted_at is not None and (accepted_at is None or t.accepted_at < accepted_at):
                accepted_at = t.accepted_at
            if t.on_scene_at is not None and (on_scene_at is None or t.on_scene_at < on_scene_at):
                on_scene_at = t.on_scene_at
            if t.expired:
                expired.add(a.who)
                n_expired += 1
            if t.declined:
                declined.add(a.who)
                n_declined += 1
        t_acc = _seconds(a.p1_at, accepted_at)
        if t_acc is not None:
            accept[a.who].append(max(0.0, t_acc))
        t_scene = _seconds(a.p1_at, on_scene_at)
        if t_scene is not None:
            scene[a.who].append(max(0.0, t_scene))
    total = Cell(len(alerts), len(persons))
    within_cell = Cell(n_within, len(within))
    return {
        "p1_alerts": total,
        "acknowledge": {
            **_stats(ack),
            "within_sla": within_cell,
            "share_within_sla": Cell(
                round(n_within / len(alerts), 4) if alerts else None,
                combine(total, within_cell),
            ),
            "never_acknowledged": Cell(n_never, len(never_answered)),
        },
        "unit_accepted": _stats(accept),
        "on_scene": _stats(scene),
        "escalations": Cell(n_escalated, len(escalated)),
        "tasks_expired": Cell(n_expired, len(expired)),
        "tasks_declined": Cell(n_declined, len(declined)),
    }


def _response(ledger: Ledger, period: Period, policy: Policy) -> dict[str, Any]:
    p1 = [
        a
        for a in ledger.alerts.values()
        if a.top_priority == 1 and a.p1_at is not None and a.p1_at in period
    ]
    by_alert: dict[str, list[TaskLog]] = defaultdict(list)
    for t in ledger.tasks.values():
        if t.alert_id is not None:
            by_alert[t.alert_id].append(t)
    weekly: dict[str, list[AlertLog]] = {w: [] for w in period.weeks()}
    for a in p1:
        assert a.p1_at is not None
        weekly.setdefault(period.week(a.p1_at), []).append(a)
    weeks = [{"week": w, **_response_block(xs, by_alert, policy)} for w, xs in weekly.items()]
    # the weeks sum to the whole period's counts
    for path in (
        ("p1_alerts",),
        ("acknowledge", "within_sla"),
        ("acknowledge", "never_acknowledged"),
        ("escalations",),
        ("tasks_expired",),
        ("tasks_declined",),
        ("acknowledge", "n"),
        ("unit_accepted", "n"),
        ("on_scene", "n"),
    ):
        _protect_rows(weeks, *path)
    for w in weeks:  # the share would give a suppressed count away
        ack = w["acknowledge"]
        if ack["within_sla"].forced or w["p1_alerts"].forced:
            c = ack["share_within_sla"]
            ack["share_within_sla"] = Cell(c.value, c.persons, c.persons > 0)
    return {
        "ack_sla_s": policy.ack_sla_s,
        "total": _response_block(p1, by_alert, policy),
        "weeks": weeks,
    }


def _false_alarm(a: AlertLog, tasks: list[TaskLog]) -> tuple[bool, bool]:
    """(a unit's task ended `false_alarm`, resolved by an operator with no unit response).

    Only alerts that were priority 1 are sent a unit, so only they can be "resolved without a
    response"; a priority-2/3 alert resolved by an operator is the normal course."""
    outcome = a.response_outcome == "false_alarm" or any(
        t.outcome == "false_alarm" for t in tasks if t.kind in UNIT_TASKS
    )
    responded = a.accepted_at is not None or any(
        t.accepted_at is not None for t in tasks if t.kind in UNIT_TASKS
    )
    unanswered = (
        a.top_priority == 1
        and a.resolved_at is not None
        and not a.resolved_by_system
        and not responded
    )
    return outcome, unanswered


def _alerts(ledger: Ledger, period: Period) -> dict[str, Any]:
    opened = [
        a for a in ledger.alerts.values() if a.opened_at is not None and a.opened_at in period
    ]
    by_alert: dict[str, list[TaskLog]] = defaultdict(list)
    for t in ledger.tasks.values():
        if t.alert_id is not None:
            by_alert[t.alert_id].append(t)
    day_cells: dict[tuple[str, str, int], list[AlertLog]] = defaultdict(list)
    hour_cells: dict[int, list[AlertLog]] = defaultdict(list)
    hour_violations: dict[int, list[AlertLog]] = defaultdict(list)
    kinds: dict[str, list[AlertLog]] = defaultdict(list)
    for a in opened:
        assert a.opened_at is not None
        local = period.local(a.opened_at)
        prio = a.top_priority if a.top_priority in (1, 2, 3) else 3
        day_cells[(local.date().isoformat(), a.kind, prio)].append(a)
        hour_cells[local.hour].append(a)
        if a.kind in VIOLATION_KINDS:
            hour_violations[local.hour].append(a)
        kinds[a.kind].append(a)

    def count(xs: list[AlertLog]) -> Cell:
        return Cell(len(xs), len({a.who for a in xs}))

    seen_kinds = [k for k in ALERT_KINDS if k in kinds] + sorted(set(kinds) - set(ALERT_KINDS))
    per_day: list[dict[str, Any]] = []
    for d in period.days():
        day = d.isoformat()
        by_kind: dict[str, Any] = {}
        for k in seen_kinds:
            cells = {p: day_cells.get((day, k, p), []) for p in (1, 2, 3)}
            by_kind[k] = {
                "all": count([a for xs in cells.values() for a in xs]),
                **_protect_dict({str(p): count(xs) for p, xs in cells.items()}),
            }
        by_priority = {
            str(p): count([a for k in seen_kinds for a in day_cells.get((day, k, p), [])])
            for p in (1, 2, 3)
        }
        per_day.append(
            {"day": day, "by_kind": by_kind, "by_priority": _protect_dict(by_priority)}
        )
    # a day's kinds sum to its total (the sum of its priorities)
    for day_row in per_day:
        alls = _protect_dict({k: day_row["by_kind"][k]["all"] for k in seen_kinds})
        for k, cell in alls.items():
            day_row["by_kind"][k]["all"] = cell
    by_kind_total = _protect_dict({k: count(kinds[k]) for k in seen_kinds})
    false_alarms = {}
    for k in seen_kinds:
        xs = kinds[k]
        fa_outcome = [a for a in xs if _false_alarm(a, by_alert.get(a.alert_id, []))[0]]
        fa_unanswered = [a for a in xs if _false_alarm(a, by_alert.get(a.alert_id, []))[1]]
        either = {a.alert_id: a for a in fa_outcome + fa_unanswered}
        total, union = by_kind_total[k], count(list(either.values()))
        fa_row: dict[str, Cell] = {
            "false_alarm_outcome": count(fa_outcome),
            "resolved_without_response": count(fa_unanswered),
            "false_alarms": union,
            "share": Cell(
                round(len(either) / len(xs), 4) if xs else None, combine(total, union)
            ),
        }
        # one of them small: the union and the share would give it away, they go too
        if any(c.small for c in fa_row.values()):
            for n in ("false_alarms", "share"):
                c = fa_row[n]
                fa_row[n] = Cell(c.value, c.persons, c.persons > 0)
        false_alarms[k] = {"alerts": total, **fa_row}
    by_hour = [
        {
            "hour": h,
            "alerts": count(hour_cells.get(h, [])),
            "violations": count(hour_violations.get(h, [])),
        }
        for h in range(24)
    ]
    _protect_rows(by_hour, "alerts")
    _protect_rows(by_hour, "violations")
    return {
        "kinds": seen_kinds,
        "total": count(opened),
        "by_kind": by_kind_total,
        "per_day": per_day,
        "by_hour": by_hour,
        "false_alarms": false_alarms,
    }


def _violations(ledger: Ledger) -> dict[str, list[datetime]]:
    """Confirmed violations per restrained person: the time each violation alert first reached
    confidence `confirmed` (the moment the outreach chain opens or grows)."""
    out: dict[str, list[datetime]] = defaultdict(list)
    for a in ledger.alerts.values():
        if a.kind in VIOLATION_KINDS and a.confirmed_at is not None and a.subject:
            out[a.subject].append(a.confirmed_at)
    for xs in out.values():
        xs.sort()
    return out


def _role_tasks(ledger: Ledger) -> dict[str, list[TaskLog]]:
    """Interview, talk and referral tasks per restrained person (v2 role tasks carry
    `restrained_person`; otherwise the person of the task's alert)."""
    out: dict[str, list[TaskLog]] = defaultdict(list)
    for t in ledger.tasks.values():
        if t.kind not in ("interview", "motivational_talk", "referral"):
            continue
        who = t.subject
        if not who and t.alert_id is not None and t.alert_id in ledger.alerts:
            who = ledger.alerts[t.alert_id].subject
        if who:
            out[who].append(t)
    return out


def _funnel(ledger: Ledger, period: Period) -> dict[str, Any]:
    violations = _violations(ledger)
    tasks = _role_tasks(ledger)
    reached: dict[str, set[str]] = {s: set() for s in FUNNEL_STEPS}
    # drop-out at each step: the outcome of the step that was not passed, per person
    dropped: dict[str, dict[str, set[str]]] = {s: defaultdict(set) for s in FUNNEL_STEPS[1:]}
    for person, times in violations.items():
        in_period = [t for t in times if t in period]
        if not in_period:
            continue
        since = in_period[0]
        theirs = tasks.get(person, [])
        start = _chain_start(theirs, since)
        mine = [t for t in theirs if t.created_at is None or t.created_at >= start]
        passed, stop = _chain(mine, since)
        for s in passed:
            reached[s].add(person)
        if stop is not None:
            dropped[stop[0]][stop[1]].add(person)
    steps = []
    previous: set[str] | None = None
    for s in FUNNEL_STEPS:
        here = reached[s]
        row: dict[str, Any] = {"step": s, "persons": Cell(len(here), len(here))}
        if previous is not None:
            row["share_of_previous"] = Cell(
                round(len(here) / len(previous), 4) if previous else None,
                combine(Cell(0, len(here)), Cell(0, len(previous))),
            )
            row["dropped"] = _protect_dict(
                {outcome: Cell(len(ps), len(ps)) for outcome, ps in sorted(dropped[s].items())}
            )
        steps.append(row)
        previous = here
    return {"steps": steps}


#: An interview created this long after a violation still belongs to it (processing lag).
CHAIN_LAG = timedelta(hours=1)


def _chain_start(tasks: list[TaskLog], since: datetime) -> datetime:
    """When the chain that a violation at `since` belongs to opened: the newest interview
    created before it (a violation while a chain is open joins that chain; one after a closed
    chain opens a new one, whose interview is created at the violation), else `since`."""
    opened = [
        t.created_at
        for t in tasks
        if t.kind == "interview" and t.created_at is not None and t.created_at <= since + CHAIN_LAG
    ]
    return min(max(opened), since) if opened else since


def _chain(mine: list[TaskLog], since: datetime) -> tuple[list[str], tuple[str, str] | None]:
    """The steps one person passed (from a confirmed violation at `since`, with the role tasks
    created since then), and the step not passed with its outcome (None: all passed)."""

    def of(kind: str) -> list[TaskLog]:
        xs = [t for t in mine if t.kind == kind]
        xs.sort(key=lambda t: t.done_at or t.created_at or since)
        return xs

    def last_outcome(xs: list[TaskLog]) -> str:
        done = [t.outcome for t in xs if t.outcome is not None]
        return done[-1] if done else _open(xs)

    passed = ["confirmed_violation"]
    interviews = of("interview")
    if not any(t.outcome == "held" for t in interviews):
        return passed, ("interview_held", last_outcome(interviews))
    passed.append("interview_held")
    talks = of("motivational_talk")
    held = [t for t in talks if t.outcome in ("held_accepts_help", "held_declines_help")]
    if not held:
        return passed, ("talk_held", last_outcome(talks))
    passed.append("talk_held")
    accepts = [t for t in held if t.outcome == "held_accepts_help"]
    if not accepts:
        return passed, ("accepted_help", "held_declines_help")
    passed.append("accepted_help")
    referrals = of("referral")
    if not (any(t.consent is True for t in accepts) or referrals):
        return passed, ("consent", "no_consent")
    passed.append("consent")
    if not any(t.outcome == "contact_made" for t in referrals):
        return passed, ("referral_contact_made", last_outcome(referrals))
    passed.append("referral_contact_made")
    return passed, None


def _open(xs: list[TaskLog]) -> str:
    """Why a step has no outcome: no task for it at all, or a task still open."""
    return "pending" if xs else "no_task"


def _effect(ledger: Ledger, period: Period) -> dict[str, Any]:
    violations = _violations(ledger)
    talks: dict[str, tuple[datetime, str]] = {}
    for person, tasks in _role_tasks(ledger).items():
        for task in tasks:
            done = task.done_at
            if (
                task.kind == "motivational_talk"
                and task.outcome in ("held_accepts_help", "held_declines_help")
                and done is not None
                and done in period
                and (person not in talks or done < talks[person][0])
            ):
                talks[person] = (done, task.outcome)
    out: dict[str, Any] = {"talks_held": Cell(len(talks), len(talks)), "windows": []}
    for days in EFFECT_WINDOWS_DAYS:
        w = timedelta(days=days)
        groups: dict[str, list[tuple[int, int]]] = {"all": [], "accepts": [], "declines": []}
        incomplete: set[str] = set()
        for person, (t, outcome) in talks.items():
            if (
                ledger.first_seen is None
                or ledger.last_seen is None
                or t - w < ledger.first_seen
                or t + w > ledger.last_seen
            ):
                incomplete.add(person)
                continue
            vs = violations.get(person, [])
            before = sum(1 for v in vs if t - w <= v < t)
            after = sum(1 for v in vs if t < v <= t + w)
            groups["all"].append((before, after))
            key = "accepts" if outcome == "held_accepts_help" else "declines"
            groups[key].append((before, after))
        block: dict[str, Any] = {
            "days": days,
            "incomplete_follow_up": Cell(len(incomplete), len(incomplete)),
        }
        for name, pairs in groups.items():
            block[name] = _paired(pairs)
        out["windows"].append(block)
    return out


def _paired(pairs: list[tuple[int, int]]) -> dict[str, Cell]:
    """Before/after counts of one group of persons (one pair per person)."""
    n = len(pairs)
    none_after = sum(1 for _, a in pairs if a == 0)
    with_before = [(b, a) for b, a in pairs if b > 0]
    stopped = sum(1 for _, a in with_before if a == 0)
    fewer = sum(1 for b, a in pairs if a < b)
    same = sum(1 for b, a in pairs if a == b)
    more = sum(1 for b, a in pairs if a > b)
    persons = Cell(n, n)

    def c(k: int) -> Cell:
        return Cell(k, k)

    def share(k: int, of: int) -> Cell:
        return Cell(round(k / of, 4) if of else None, combine(c(k), c(of)))

    return {
        "persons": persons,
        "violations_before": Cell(sum(b for b, _ in pairs), n),
        "violations_after": Cell(sum(a for _, a in pairs), n),
        "persons_none_after": c(none_after),
        "share_none_after": share(none_after, n),
        "persons_with_violations_before": c(len(with_before)),
        "of_them_none_after": c(stopped),
        "share_of_them_none_after": share(stopped, len(with_before)),
        # fewer + same + more = persons
        **_protect_dict(
            {
                "persons_fewer_after": c(fewer),
                "persons_same": c(same),
                "persons_more_after": c(more),
            }
        ),
    }


def _signal_loss(ledger: Ledger, period: Period, policy: Policy) -> dict[str, Cell]:
    seconds = 0.0
    episodes = 0
    persons: set[str] = set()
    end_of_data = ledger.last_seen or period.end
    for a in ledger.alerts.values():
        if a.kind != "signal_lost" or a.opened_at is None:
            continue
        since = a.lost_since or a.opened_at - timedelta(seconds=policy.signal_timeout_s)
        until = a.episode_end or a.resolved_at or end_of_data
        lo, hi = max(since, period.start), min(until, period.end)
        if hi > lo:
            seconds += (hi - lo).total_seconds()
            episodes += 1
            persons.add(a.who)
    return {
        "hours": Cell(round(seconds / 3600, 2), len(persons)),
        "episodes": Cell(episodes, len(persons)),
    }


def _implausible_from_positions(ledger: Ledger, period: Period, policy: Policy) -> Cell:
    """Rule 3 as the fix path decides it (`alerts.detectors.plausibility.judge`, the one
    implementation), over each device's input positions in time order: fixes in the period
    whose implied speed from the device's previous fix, and from its newest plausible one,
    exceeds `max_speed_mps`."""
    count = 0
    persons: set[str] = set()
    last: dict[str, LastFix] = {}
    anchor: dict[str, LastFix] = {}
    for (device, ts), (person, lat, lon, acc) in sorted(ledger.positions.items()):
        me = LastFix(lat, lon, acc, ts, device)
        jump = judge(last.get(device), anchor.get(device), me, policy.max_speed_mps)
        last[device] = me
        if not jump:
            anchor[device] = me
        elif ts in period:
            count += 1
            persons.add(person)
    return Cell(count, len(persons))


def _data_quality(ledger: Ledger, period: Period, policy: Policy) -> dict[str, Any]:
    reasons: dict[str, list[str]] = defaultdict(list)
    for d in ledger.dead_letters.values():
        if d.ts is not None and d.ts in period:
            reasons[d.reason].append(d.subject)
    flagged: set[tuple[str, str]] = set()
    flagged_persons: set[str] = set()
    for a in ledger.alerts.values():
        for ts in a.implausible:
            t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            if t.tzinfo is not None and t in period:
                flagged.add((a.who, ts))
                flagged_persons.add(a.who)
    quality: dict[str, Any] = {
        "signal_loss": _signal_loss(ledger, period, policy),
        "dead_letters": {r: Cell(len(xs), len(set(xs))) for r, xs in sorted(reasons.items())},
        "implausible_fixes": {
            "in_alerts": Cell(len(flagged), len(flagged_persons)),
            "in_positions": _implausible_from_positions(ledger, period, policy)
            if ledger.positions
            else None,
        },
    }
    return quality


def compute(
    records: Iterable[tuple[str, str | None, Any]], period: Period, policy: Policy
) -> dict[str, Any]:
    """Every figure of the report for `period`, as `Cell`s (see `publish`)."""
    ledger = Ledger()
    for topic, key, value in records:
        ledger.add(topic, key, value)
    return figures(ledger, period, policy)


def _day(t: datetime, period: Period) -> str:
    return period.local(t).date().isoformat()


def figures(ledger: Ledger, period: Period, policy: Policy) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "period": {
            "from": period.first.isoformat(),
            "to": period.last.isoformat(),
            "time_zone": period.tz,
        },
        "source": {  # the span of the data, to the day (an exact time could single out a record)
            "records": ledger.records,
            "first_day": None if ledger.first_seen is None else _day(ledger.first_seen, period),
            "last_day": None if ledger.last_seen is None else _day(ledger.last_seen, period),
        },
        "response": _response(ledger, period, policy),
        "alerts": _alerts(ledger, period),
        "funnel": _funnel(ledger, period),
        "effect": _effect(ledger, period),
        "data_quality": _data_quality(ledger, period, policy),
    }
