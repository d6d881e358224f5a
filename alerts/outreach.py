"""The outreach chain per restrained person (contract v2 "The outreach chain follows outcomes"),
and the life of every role task (interview, motivational talk, referral, knock).

One chain per restrained person at a time, opened by the first confirmed violation:
`interview` (investigator) → on `held`, a `motivational_talk` (negotiator, due 72 h after the
interview is done) → on `held_accepts_help` with `consent_to_share: true`, a `referral`
(social services, due 7 days). `not_reached` asks for the same step again 24 h later (a timer
on the engine's heap), at most `MAX_RETRIES` times; the next `not_reached` gives up and closes
the chain. `refused`, `held_declines_help`, help accepted without consent, and a referral's
`contact_made` or `declined` close it. A violation while the chain is open adds to it (its
`violations` count, published on the open interview or talk task; one incident or fix that
violates several of the person's bans counts once); a closed chain lets the
next confirmed violation open a new one. The chain goes on when the violation's alert is
resolved or its ban ends: it is about the person.

A referral is built from the chain alone, never from an alert: it cannot carry a position,
zone, note or protected person (alerts/tasks.py `render` writes only what it may carry).
Nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts.assignment import Fleet
from alerts.model import Alert, Output, rfc3339, stable_id
from alerts.taskmodel import ACTION_STATE, Task, TaskState, answer
from alerts.tasks import emit, role_instructions
from config.policy import Policy
from geofence.records import TaskUpdate

#: `not_reached`: the same step again this long after it was reported, at most this often.
RETRY_AFTER = timedelta(hours=24)
MAX_RETRIES = 3

#: step -> (role, the policy's due time of the step)
STEPS = {
    "interview": ("investigator", "interview_due_s"),
    "motivational_talk": ("negotiator", "motivational_talk_due_s"),
    "referral": ("social_services", "referral_due_s"),
}


@dataclass(eq=False)
class Outreach:
    """One restrained person's chain and role tasks. Every field is in the snapshot
    (alerts/snapshot.py derives it). `opened_by`: the alert whose violation opened the
    current chain (its task ids derive from it); `step`/`tries`: the current step and how
    often it was tried; `current`: its task, None while a retry waits for `retry_at`;
    `links`: the done steps (interview, talk) that led to the current one."""

    person: str
    tasks: dict[str, Task] = field(default_factory=dict, metadata={"keyed_by": "task_id"})
    open: bool = False
    opened_by: str | None = None
    ban_id: str | None = None
    priority: int = 1
    violations: int = 0
    step: str | None = None
    tries: int = 0
    current: str | None = None
    retry_at: datetime | None = None
    links: list[str] = field(default_factory=list)
    # what the last violation counted was: its incident, or the time of the fix; one
    # incident or fix that violates two of the person's bans (an alert per ban) is one act
    last_act: str | None = None
    # tasks of closed chains dropped from `tasks`: task id -> its end state, the newest
    # `ENDED_KEPT`, so that a late update to one is `invalid_transition`, not `unknown_task`
    ended: dict[str, str] = field(default_factory=dict)


#: How many ended tasks of closed chains a person's state remembers (see `Outreach.ended`).
ENDED_KEPT = 32


class OutreachBook:
    """Every restrained person's `Outreach`. `touched`: persons whose state changed (the
    stream persists them and clears it); `rearm`: persons whose retry timer may have changed
    (the engine drains it into its heap)."""

    def __init__(self) -> None:
        self.people: dict[str, Outreach] = {}
        self.touched: set[str] = set()
        self.rearm: set[str] = set()

    def _mark(self, person: str) -> Outreach:
        self.touched.add(person)
        self.rearm.add(person)
        o = self.people.get(person)
        if o is None:
            o = self.people[person] = Outreach(person)
        return o

    def adopt(self, o: Outreach) -> None:
        self.people[o.person] = o
        self.rearm.add(o.person)

    # ------------------------------------------------------------ violations
    def violation(
        self, policy: Policy, fleet: Fleet, a: Alert, at: datetime, out: list[Output]
    ) -> None:
        """A confirmed violation (alert `a`, once): opens the person's chain, or adds to it."""
        person = a.restrained_person
        if person is None:
            return
        o = self._mark(person)
        act = a.incident_id or rfc3339(at)
        if o.open and act == o.last_act:
            return
        o.last_act = act
        if not o.open:
            # what the closed chain left is history (the record store keeps it)
            for k, done in o.tasks.items():
                if done.final:
                    o.ended[k] = done.state.value
            while len(o.ended) > ENDED_KEPT:
                del o.ended[next(iter(o.ended))]
            o.tasks = {k: t for k, t in o.tasks.items() if not t.final}
            o.open, o.opened_by, o.ban_id = True, a.alert_id, a.ban_id
            o.priority, o.violations, o.links = a.priority, 1, []
            o.step, o.tries = None, 0
            self._start(policy, fleet, o, "interview", at, out)
            return
        o.violations += 1
        t = None if o.current is None else o.tasks.get(o.current)
        if t is not None and not t.final and t.violations is not None:
            t.violations = o.violations
            emit(fleet, t, at, out)

    def knock(self, fleet: Fleet, t: Task, at: datetime, out: list[Output]) -> None:
        """A knock task (alerts/tasks.py KnockTracker) for its person: held here, published."""
        if t.restrained_person is not None:
            self._mark(t.restrained_person).tasks[t.task_id] = t
        emit(fleet, t, at, out)

    # ------------------------------------------------------------ updates
    def task(self, person: str, task_id: str) -> Task | None:
        o = self.people.get(person)
        return None if o is None else o.tasks.get(task_id)

    def ended_state(self, person: str, task_id: str) -> str | None:
        """The end state of a task of one of `person`'s closed chains, if remembered."""
        o = self.people.get(person)
        return None if o is None else o.ended.get(task_id)

    def update(
        self, policy: Policy, fleet: Fleet, person: str, upd: TaskUpdate, out: list[Output]
    ) -> str | None:
        """Apply a role's answer to one of `person`'s tasks (which must be held: see `task`);
        why it is not allowed (an `invalid_transition`), or None once applied."""
        o = self._mark(person)
        t = o.tasks[upd.task_id]
        if upd.role != t.role:
            return f"role: the task is for role {t.role}"
        skew = policy.max_future_skew_s
        at, why = answer(t, upd.action.value, upd.outcome, upd.ts, skew, declinable=False)
        if why is not None:
            return why
        target = ACTION_STATE[upd.action.value]
        if target is TaskState.done:
            t.outcome = upd.outcome
            if t.kind == "motivational_talk":
                t.consent_to_share = upd.consent_to_share
        emit(fleet, t, at, out, target)
        if target is TaskState.done and o.open and t.task_id == o.current:
            self._follow(policy, fleet, o, t, at, out)
        return None

    def _follow(
        self, policy: Policy, fleet: Fleet, o: Outreach, t: Task, at: datetime, out: list[Output]
    ) -> None:
        """The chain's current step is done with `t.outcome`: the next step, a retry, or the
        end of the chain."""
        outcome = t.outcome
        if outcome == "not_reached":
            o.current = None
            if o.tries > MAX_RETRIES:
                self._close(o)  # tried 1 + MAX_RETRIES times: given up
            else:
                o.retry_at = at + RETRY_AFTER
            return
        if t.kind == "interview" and outcome == "held":
            o.links.append(t.task_id)
            self._start(policy, fleet, o, "motivational_talk", at, out)
        elif (
            t.kind == "motivational_talk"
            and outcome == "held_accepts_help"
            and t.consent_to_share is True
        ):
            o.links.append(t.task_id)
            self._start(policy, fleet, o, "referral", at, out)
        else:  # refused, declines help, help without consent, a referral's answer
            self._close(o)

    @staticmethod
    def _close(o: Outreach) -> None:
        o.open, o.step, o.current, o.retry_at = False, None, None, None

    def _start(
        self,
        policy: Policy,
        fleet: Fleet,
        o: Outreach,
        kind: str,
        at: datetime,
        out: list[Output],
    ) -> None:
        """Create the chain's task for step `kind` at `at` (a retry when it is the current
        step already)."""
        if o.step != kind:
            o.step, o.tries = kind, 0
        o.tries += 1
        assert o.opened_by is not None
        role, due = STEPS[kind]
        referral = kind == "referral"
        t = Task(
            task_id=stable_id("task", o.opened_by, kind, "" if o.tries == 1 else f"try:{o.tries}"),
            kind=kind,
            alert_id=None if referral else o.opened_by,
            priority=o.priority,
            unit_id=None,
            role=role,
            ban_id=o.ban_id,
            target=None,
            created_at=at,
            due_by=at + timedelta(seconds=getattr(policy, due)),
            instructions="" if referral else role_instructions(kind, o.ban_id),
            restrained_person=o.person,
            attempt=o.tries,
            violations=None if referral else o.violations,
            chain=list(o.links) if referral else [],
        )
        o.tasks[t.task_id] = t
        o.current = t.task_id
        o.retry_at = None
        emit(fleet, t, at, out)

    # ------------------------------------------------------------ timers
    def due(self, person: str) -> datetime | None:
        o = self.people.get(person)
        return None if o is None or not o.open else o.retry_at

    def tick(
        self, policy: Policy, fleet: Fleet, person: str, now: datetime, out: list[Output]
    ) -> None:
        """A `not_reached` retry due at or before `now`: the same step again, at its due time."""
        o = self.people.get(person)
        if o is None or not o.open or o.retry_at is None or o.retry_at > now:
            return
        at = o.retry_at
        self._mark(person)
        assert o.step is not None
        self._start(policy, fleet, o, o.step, at, out)
