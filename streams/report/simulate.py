"""A simulated quarter of records for `banwatch report`: the bench's workload plus task outcomes.

Persons, bans and positions come from the bench's workload generator (`streams.workload`: bans
spread over Sweden, fixes around each ban's home zone). On top of it, per restrained person,
alert episodes arrive at random (more in the evening and at night), and each one goes through
the contract version 2 lifecycle as the records would show it: alert revisions (acknowledged,
escalated, resolved, `response`), `respond` tasks with revisions (`assigned`, `expired`,
`declined`, ...) and `task-updates` with outcomes, and for confirmed violations the outreach
chain (interview, motivational talk, referral) with its outcomes. After a talk, a person's
violations become rarer (more so when help was accepted), so that the effect section has
something to show. Signal-loss episodes, dead letters and a stream of input positions (with a
few implausible jumps) complete it.

The numbers are invented: they exercise every figure at a realistic volume, they measure
nothing about the real programme. Deterministic for a seed. Run:
`python3 -m streams.report.simulate --bans 3000 --out month.jsonl` (1 Oct - 31 Dec 2026; report
on November).
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from alerts.model import stable_id
from streams.bench import workload

START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)

#: Episodes per restrained person per day, by kind (before any talk).
RATES = {
    "approach": 0.05,
    "zone_breach": 0.02,
    "proximity_breach": 0.005,
    "signal_lost": 0.03,
    "battery_low": 0.01,
    "tamper": 0.002,
    "reported_contact": 0.003,
    "sos": 0.001,
    "threat": 0.002,
    "tip": 0.003,
}
VIOLATIONS = ("zone_breach", "proximity_breach", "reported_contact")
#: Relative weight of each hour of the day (UTC) for an alert to open: evenings and nights.
HOURS = [3, 3, 2, 2, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 4, 5, 6, 6, 6, 5, 4]

Rec = tuple[str, str | None, dict[str, Any]]


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S") + "Z"


@dataclass
class Person:
    site: workload.Site
    chain_open_until: datetime | None = None
    factor_after: datetime | None = None  # violations rarer after this time
    factor: float = 1.0


class Simulation:
    def __init__(self, bans: int, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.sites = workload.sites(bans, seed=seed)
        self.out: list[Rec] = []
        self.n = 0

    def _id(self, *parts: str) -> str:
        self.n += 1
        return stable_id("sim", *parts, str(self.n))

    def _lognormal(self, median: float, sigma: float) -> float:
        return median * math.exp(self.rnd.gauss(0.0, sigma))

    def _when(self, day: datetime) -> datetime:
        hour = self.rnd.choices(range(24), weights=HOURS)[0]
        return day + timedelta(hours=hour, seconds=self.rnd.uniform(0, 3600))

    # ------------------------------------------------------------- records
    def _alert(self, a: dict[str, Any], state: str, at: datetime, **extra: Any) -> None:
        a["seq"] += 1
        v = {
            **{k: a[k] for k in a if not k.startswith("_")},
            "state": state,
            "updated_at": _ts(at),
        }
        v.update(extra)
        self.out.append(("alerts", a["alert_id"], v))

    def _task(self, t: dict[str, Any], state: str, at: datetime) -> None:
        t["seq"] += 1
        self.out.append(
            (
                "patrol-tasks",
                t["unit_id"] or t["role"],
                {**t, "state": state, "updated_at": _ts(at)},
            )
        )

    def _update(self, tid: str, by: str, action: str, at: datetime, **extra: Any) -> None:
        v = {
            "task_id": tid,
            "by": by,
            "role": "patrol",
            "ts": _ts(at),
            "action": action,
            "outcome": None,
            "consent_to_share": None,
            "note": "simulated",
        }
        v.update(extra)
        self.out.append(("task-updates", tid, v))

    # ------------------------------------------------------------- episodes
    def episode(self, p: Person, kind: str, t0: datetime) -> None:
        s = self.site_fix(p.site, t0)
        confidence: str | None = None
        priority = {"approach": 2, "signal_lost": 2, "threat": 2, "battery_low": 3, "tip": 3}.get(
            kind, 1
        )
        if kind in ("zone_breach", "proximity_breach"):
            confidence = self.rnd.choices(["confirmed", "probable", "possible"], [6, 3, 1])[0]
            priority = 2 if confidence == "possible" else 1
        elif kind == "reported_contact":
            confidence = "confirmed"
        elif kind == "signal_lost" and self.rnd.random() < 0.3:
            priority = 1
        a: dict[str, Any] = {
            "alert_id": self._id("alert", p.site.ban_id, kind),
            "seq": 0,
            "kind": kind,
            "priority": priority,
            "confidence": confidence,
            "ban_id": p.site.ban_id,
            "ban_version": 1,
            "restrained_person": p.site.restrained,
            "zone_id": "home" if kind == "zone_breach" else None,
            "position": s,
            "opened_at": _ts(t0),
            "reason": f"simulated {kind}",
            "recommended_units": [],
            "episode": "active",
            "contract_version": 2,
        }
        if kind == "signal_lost":
            a["position"] = {**s, "ts": _ts(t0 - timedelta(seconds=300))}
        self._alert(a, "open", t0)
        if kind == "signal_lost":
            back = t0 + timedelta(seconds=self._lognormal(1800, 1.0))
            self._alert(a, "updated", back, episode="ended", reason="signal restored")
        if priority == 1:
            self.respond(a, t0)
        elif self.rnd.random() < 0.7:
            self._alert(a, "acknowledged", t0 + timedelta(seconds=self._lognormal(90, 0.8)))
            self._alert(a, "resolved", t0 + timedelta(minutes=20), resolved_by="op-1")
        if kind in VIOLATIONS and confidence == "confirmed":
            self.violation(p, t0)

    def site_fix(self, site: workload.Site, at: datetime) -> dict[str, Any]:
        _, raw = workload.fix(site, at, False, True, self.rnd)
        v = orjson.loads(raw)
        return {"lat": v["lat"], "lon": v["lon"], "accuracy_m": v["accuracy_m"], "ts": v["ts"]}

    def respond(self, a: dict[str, Any], t0: datetime) -> None:
        ack = self._lognormal(35, 0.7)
        if ack > 60:
            self._alert(a, "escalated", t0 + timedelta(seconds=60))
        t_ack = t0 + timedelta(seconds=ack)
        self._alert(a, "acknowledged", t_ack)
        at = t0
        accepted: tuple[str, datetime] | None = None
        for attempt in range(3):
            unit = f"SE-{self.rnd.randrange(400):04d}"
            t: dict[str, Any] = {
                "task_id": self._id("task", a["alert_id"], str(attempt)),
                "seq": 0,
                "alert_id": a["alert_id"],
                "kind": "respond",
                "priority": 1,
                "unit_id": unit,
                "role": None,
                "ban_id": a["ban_id"],
                "target": None,
                "created_at": _ts(at),
                "due_by": _ts(at + timedelta(minutes=10)),
                "instructions": "simulated",
                "contract_version": 2,
            }
            self._task(t, "assigned", at)
            r = self.rnd.random()
            if r < 0.05:
                d = at + timedelta(seconds=self._lognormal(8, 0.5))
                self._update(t["task_id"], unit, "decline", d)
                self._task(t, "declined", d)
                at = d
                continue
            if r < 0.15:
                at = at + timedelta(seconds=30)
                self._task(t, "expired", at)
                continue
            acc = at + timedelta(seconds=min(29.0, self._lognormal(14, 0.5)))
            self._update(t["task_id"], unit, "accept", acc)
            self._task(t, "accepted", acc)
            scene = acc + timedelta(seconds=self._lognormal(540, 0.5))
            self._update(t["task_id"], unit, "on_scene", scene)
            self._task(t, "on_scene", scene)
            outcome = self.rnd.choices(
                ["contact_made", "not_found", "false_alarm", "arrested", "protected_safe"],
                [50, 25, 15, 8, 2],
            )[0]
            done = scene + timedelta(minutes=self._lognormal(15, 0.4))
            self._update(t["task_id"], unit, "done", done, outcome=outcome)
            self._task(t, "done", done)
            accepted = (unit, acc)
            response = {
                "unit_id": unit,
                "accepted_at": _ts(acc),
                "on_scene_at": _ts(scene),
                "outcome": outcome,
            }
            self._alert(a, "acknowledged", max(done, t_ack), response=response)
            self._alert(
                a, "resolved", done + timedelta(minutes=5), resolved_by="op-1", response=response
            )
            break
        if accepted is None:
            self._alert(a, "resolved", t_ack + timedelta(minutes=30), resolved_by="op-1")

    # ------------------------------------------------------------- outreach chain
    def violation(self, p: Person, t0: datetime) -> None:
        if p.chain_open_until is not None and t0 < p.chain_open_until:
            return
        at = t0
        aid = self._id("chain", p.site.restrained)

        def step(
            kind: str, role: str, due: timedelta, outcomes: list[str], weights: list[int]
        ) -> tuple[str, datetime, bool | None]:
            nonlocal at
            for _ in range(3):
                t: dict[str, Any] = {
                    "task_id": self._id("task", aid, kind),
                    "seq": 0,
                    "alert_id": aid,
                    "kind": kind,
                    "priority": 1,
                    "unit_id": None,
                    "role": role,
                    "ban_id": p.site.ban_id,
                    "restrained_person": p.site.restrained,
                    "target": None,
                    "created_at": _ts(at),
                    "due_by": _ts(at + due),
                    "instructions": "simulated",
                    "contract_version": 2,
                }
                self._task(t, "assigned", at)
                done = at + timedelta(seconds=self.rnd.uniform(0.2, 1.0) * due.total_seconds())
                if done >= END:
                    return "pending", done, None
                outcome = self.rnd.choices(outcomes, weights)[0]
                consent = None
                if outcome == "held_accepts_help":
                    consent = self.rnd.random() < 0.7
                self._update(
                    t["task_id"], role, "done", done, outcome=outcome, consent_to_share=consent
                )
                self._task(t, "done", done)
                at = done
                if outcome != "not_reached":
                    return outcome, done, consent
                at = done + timedelta(hours=24)
            return "not_reached", at, None

        outcome, _, _ = step(
            "interview",
            "investigator",
            timedelta(hours=24),
            ["held", "not_reached", "refused"],
            [70, 20, 10],
        )
        if outcome == "held":
            outcome, talk_at, consent = step(
                "motivational_talk",
                "negotiator",
                timedelta(hours=72),
                ["held_accepts_help", "held_declines_help", "not_reached", "refused"],
                [45, 35, 10, 10],
            )
            if outcome in ("held_accepts_help", "held_declines_help"):
                p.factor_after = talk_at
                p.factor = 0.3 if outcome == "held_accepts_help" else 0.7
            if outcome == "held_accepts_help" and consent:
                step(
                    "referral",
                    "social_services",
                    timedelta(days=7),
                    ["contact_made", "declined", "not_reached"],
                    [75, 10, 15],
                )
        p.chain_open_until = at

    # ------------------------------------------------------------- the whole quarter
    def run(self) -> Iterator[Rec]:
        persons = [Person(s) for s in self.sites]
        day = START
        while day < END:
            for p in persons:
                for kind, rate in RATES.items():
                    r = rate
                    if kind in VIOLATIONS and p.factor_after is not None and day > p.factor_after:
                        r *= p.factor
                    if self.rnd.random() < r:
                        self.episode(p, kind, self._when(day))
            for _ in range(self.rnd.randrange(20, 80)):
                self.dead_letter(self._when(day))
            yield from self.out
            self.out.clear()
            day += timedelta(days=1)
        yield from self.positions()

    def dead_letter(self, at: datetime) -> None:
        reason = self.rnd.choices(["schema", "decode", "future", "too_large"], [70, 20, 8, 2])[0]
        s = self.sites[self.rnd.randrange(len(self.sites))]
        self.out.append(
            (
                "dead-letters",
                s.restrained,
                {
                    "source_topic": "positions",
                    "partition": 0,
                    "offset": self.n,
                    "key": s.restrained,
                    "raw": "{}",
                    "error": "simulated",
                    "reason": reason,
                    "ts": _ts(at),
                },
            )
        )
        self.n += 1

    def positions(self, devices: int = 100, every_s: int = 1800) -> Iterator[Rec]:
        """Input positions of the first `devices` persons through November, every `every_s`,
        with one fix in 500 thrown ~100 km (an implausible jump)."""
        t = datetime(2026, 11, 1, tzinfo=UTC)
        end = datetime(2026, 12, 1, tzinfo=UTC)
        while t < end:
            for s in self.sites[:devices]:
                key, raw = workload.fix(s, t, False, False, self.rnd)
                if self.rnd.random() < 0.002:
                    v = orjson.loads(raw)
                    v["lat"] = round(v["lat"] + 0.9, 6)
                    raw = orjson.dumps(v)
                yield ("positions", key, orjson.loads(raw))
            t += timedelta(seconds=every_s)


def write(path: Path, bans: int = 3000, seed: int = 17) -> int:
    """Write the simulated records as JSON lines; returns how many."""
    n = 0
    with path.open("wb") as f:
        for topic, key, value in Simulation(bans, seed).run():
            f.write(orjson.dumps({"topic": topic, "key": key, "value": value}) + b"\n")
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--bans", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    n = write(Path(args.out), args.bans, args.seed)
    print(f"{n:,} records: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
