"""The decision engine: routes validated records to the bans they concern.

One engine serves both drivers. `banwatch replay` runs it on an event-time clock (timers fire
as event time advances); the stream worker calls `handle_batch` with the wall clock and `tick`
on a timer. Fixes are evaluated in batches: every (fix, zone of the person's bans) pair is
measured in one vectorised pass, then the per-ban state machines run in record order.

(About 800 lines, on purpose: this is where records meet the per-ban states, and the one
timer heap, the alert and task owners and the `touched` sets it keeps must change together on
every path: input, incidents, task updates, timers, end of life, the protected persons'
warnings, the stream's hand-over. What a record concerns is decided in alerts/routing.py, what
a ban decides in alerts/fixpath.py, alerts/detectors/, alerts/lifecycle.py and
alerts/timers.py, what a task update does in alerts/tasklife.py and alerts/outreach.py, which
warning an alert revision gives in alerts/notifications.py.)
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np

from alerts import lifecycle, notifications, tasklife, timers
from alerts.assignment import Fleet
from alerts.banstate import BanState, Ctx
from alerts.detectors import incidents
from alerts.fixpath import apply_fix
from alerts.lifecycle import dispatch
from alerts.model import (
    ALERTS,
    DEAD_LETTERS,
    TASKS,
    Alert,
    Kind,
    Output,
    State,
    Value,
    place,
    rfc3339,
    stable_id,
)
from alerts.outreach import Outreach, OutreachBook
from alerts.routing import (
    Concern,
    fix_bans,
    match_incident,
    scoped,
)
from alerts.tasks import KnockTracker, render
from config.policy import Policy
from geofence.bans import Applied, BanRegistry, CompiledBan, HeldBan
from geofence.decoding import (
    TASK_UPDATES,
    Decoded,
    Reason,
    Rejected,
    Tombstone,
    decode,
    redacted_task_update,
)
from geofence.evaluation import duration
from geofence.records import (
    AlertAction,
    Incident,
    IncidentKind,
    LocationFix,
    PatrolPosition,
    TaskUpdate,
)


class Outcome(StrEnum):
    """What became of an input record (the `outcome` label of `banwatch_events_total`)."""

    accepted = "accepted"
    rejected = "rejected"  # to dead-letters
    late = "late"  # out of event-time order for its device or unit
    stale = "stale"  # a ban version lower than the one held


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as read from a topic."""

    topic: str
    key: str | None
    value: bytes | None
    partition: int = 0
    offset: int = 0
    # Stream mode (and routed replay). `scope`: the routing key the record was delivered
    # under (a restrained person, or "incident:<id>"); a fix then only touches that person's
    # bans. `matched`:
    # for an incident, the bans it was matched to when routed ((ban_id, how), maybe empty).
    scope: str | None = None
    matched: tuple[tuple[str, str], ...] | None = None
    # For a fix: the bans it concerns under `scope` (alerts/routing.py), when the caller
    # routed it already: the engine does not ask the registry again.
    bans: Sequence[Concern] | None = None
    # What `decode(topic, key, value, now, policy)` returned for this record, when the caller
    # already decoded it with the `now` it passes to `handle_batch` (the worker routes fixes
    # by their person first): not decoded twice.
    decoded: Decoded | None = None


@dataclass(slots=True)
class Result:
    outcome: Outcome
    outputs: list[Output] = field(default_factory=list)
    reason: Reason | None = None  # for rejected records


#: A dead letter must fit in one Kafka message: the worker's producer refuses 1,000,000 bytes
#: or more, and faust then stops sending anything, so one hostile record would silence every
#: alert after it. The raw record is kept up to this many bytes *as encoded* (JSON escapes a
#: control character as six bytes, base64 takes four per three); key and error are cut too.
DEAD_LETTER_RAW_BYTES = 512 * 1024
DEAD_LETTER_KEY_CHARS = 256
DEAD_LETTER_ERROR_CHARS = 1000
#: How much of an acknowledgement for an unknown alert its dead letter keeps (a flood of them
#: must not fill `dead-letters`).
UNKNOWN_ALERT_DEAD_LETTER_BYTES = 4096


def dead_letter(msg: Incoming, rej: Rejected, at: datetime | None, limit: int) -> Output:
    raw = msg.value or b""
    redacted: str | None = None
    if msg.topic == TASK_UPDATES and raw:
        raw, redacted = redacted_task_update(raw)
    key = msg.key
    value: Value = {
        "source_topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "key": key,
        "error": rej.error[:DEAD_LETTER_ERROR_CHARS],
        "reason": rej.reason.value,
        "ts": None if at is None else rfc3339(at),
    }
    if key is not None and len(key) > DEAD_LETTER_KEY_CHARS:
        key = key[:DEAD_LETTER_KEY_CHARS]
        value["key"] = key
        value["key_truncated"] = True
    budget = min(limit, DEAD_LETTER_RAW_BYTES)
    kept = raw[:budget]
    text = _as_text(kept, budget)
    if text is None:  # not UTF-8, or too many escapes: base64 of what fits
        kept = raw[: budget // 4 * 3]
    if len(kept) < len(raw):
        value["raw_truncated"] = True
    if text is not None:
        value["raw"] = text
    else:
        value["raw"] = base64.b64encode(kept).decode("ascii")
        value["raw_encoding"] = "base64"
    if redacted is not None:
        value["raw_redacted"] = redacted
    return (DEAD_LETTERS, key, value)


def _as_text(raw: bytes, budget: int) -> str | None:
    """`raw` as text if it is UTF-8 and stays within `budget` bytes once JSON-escaped."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(raw) * 6 > budget and len(json.dumps(text, ensure_ascii=False).encode()) > budget:
        return None
    return text


#: How often a ban's resolved and closed alerts are looked for (see alerts/lifecycle.py `prune`).
PRUNE_EVERY_S = 3600.0
_PRUNE_EVERY = timedelta(seconds=PRUNE_EVERY_S)  # compared exactly as total_seconds() would be


#: The due time of a timer that is due at once (a state adopted for a ban lifted meanwhile).
_AT_ONCE = datetime.min.replace(tzinfo=UTC)
_TICK = timedelta(microseconds=1)  # the last moment before a time (datetimes' resolution)


#: Heap keys of unmatched alerts' timers start with this, a restrained person's outreach
#: retry with `_PERSON` (no ban id can: ids have no control characters).
_UNMATCHED = "\x1f"
_PERSON = "\x1e"


class Engine:
    """`event_clock`: timers run on the newest event time (replay), else on the caller's clock.
    `partial`: the stream's mode. The registry and fleet are global (fed to every worker) but
    this engine holds the state of only the bans routed to it; ban records never create state.
    `touched` collects the ban ids whose state changed, `touched_unmatched` the unmatched
    alerts, so that the stream persists exactly those."""

    def __init__(self, policy: Policy, event_clock: bool = False, partial: bool = False) -> None:
        self.policy = policy
        self.event_clock = event_clock
        self.partial = partial
        self.touched: set[str] = set()
        self.touched_unmatched: set[str] = set()
        self.clock: datetime | None = None  # newest event time seen (event_clock mode)
        self.registry = BanRegistry()
        self.fleet = Fleet()
        self.knock = KnockTracker()
        self.book = OutreachBook()  # outreach chains and role tasks, per restrained person
        # task id -> where it is held: its alert's id, or _PERSON + the restrained person
        self.task_home: dict[str, str] = {}
        self.states: dict[str, BanState] = {}
        self.alert_owner: dict[str, str | None] = {}
        self.unmatched: dict[str, Alert] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._pruned: dict[str, datetime] = {}  # ban -> when its alerts were last pruned
        self._scheduled: dict[str, datetime] = {}

    # ---------------------------------------------------------------- input
    def handle(self, msg: Incoming, now: datetime) -> Result:
        return self.handle_batch([msg], now)[0]

    def handle_batch(self, msgs: list[Incoming], now: datetime) -> list[Result]:
        """Decode and apply records in order. `now` is the reference for future timestamps and,
        without an event clock, the time stamped on dead letters and late-evidence revisions."""
        pol = self.policy
        self.fleet.now = self._now(now)
        decoded = [
            m.decoded if m.decoded is not None else decode(m.topic, m.key, m.value, now, pol)
            for m in msgs
        ]
        results: list[Result] = []
        i = 0
        while i < len(msgs):
            if isinstance(decoded[i], LocationFix):
                j = i
                while j < len(msgs) and isinstance(decoded[j], LocationFix):
                    j += 1
                fixes = [d for d in decoded[i:j] if isinstance(d, LocationFix)]
                results.extend(self._fixes(fixes, msgs[i:j], now))
                i = j
                continue
            res = self._one(msgs[i], decoded[i], now)
            res.outputs = self._notify(res.outputs, decoded[i])
            results.append(res)
            i += 1
        for r in results:
            if r.outputs:
                self._tasks_out(r.outputs)
        return results

    def _tasks_out(self, out: list[Output]) -> None:
        """Index the tasks among `out` (an update finds its task by id) and arm the outreach
        retries that changed. (Fleet: `tasks.emit` told it every revision already.)"""
        for topic, _key, v in out:
            if topic == TASKS and v is not None and v["seq"] == 1:
                person = v.get("restrained_person")
                self.task_home[v["task_id"]] = (
                    _PERSON + person if isinstance(person, str) else v["alert_id"]
                )
        book = self.book
        while book.rearm:
            person = book.rearm.pop()
            due = book.due(person)
            key = _PERSON + person
            if due is not None and self._scheduled.get(key) != due:
                self._scheduled[key] = due
                heapq.heappush(self._heap, (due, key))

    def note_task(self, value: Mapping[str, Any]) -> None:
        """A task revision seen on `patrol-tasks` (from any worker): its unit's busy state.
        Idempotent by (task_id, seq); the engine applies its own revisions as it emits them."""
        self.fleet.note_task(value)

    def _advance(self, ts: datetime, out: list[Output]) -> None:
        if self.event_clock and (self.clock is None or ts > self.clock):
            self.clock = self.fleet.now = ts
            out.extend(self._tick(ts))  # notified with the record's outputs

    def _now(self, now: datetime) -> datetime:
        if self.event_clock:
            return self.clock if self.clock is not None else now
        return now

    def _one(self, msg: Incoming, d: Decoded | Rejected, now: datetime) -> Result:
        if isinstance(d, Rejected):
            at = self.clock if self.event_clock else now
            limit = self.policy.max_ban_record_bytes
            return Result(Outcome.rejected, [dead_letter(msg, d, at, limit)], d.reason)
        out: list[Output] = []
        if isinstance(d, CompiledBan):
            applied = self.registry.apply(d)
            if applied is Applied.stale:
                return Result(Outcome.stale)
            if not self.partial:
                self.states.setdefault(d.ban_id, BanState(d.ban_id))
            at = self._undated(now)
            if at is not None and d.ban_id in self.states:
                out.extend(self._end_of_life(d.ban_id, at))
            return Result(Outcome.accepted, out)
        if isinstance(d, Tombstone):
            self.registry.lift(d.ban_id)
            at = self._undated(now)
            if at is not None and d.ban_id in self.states:
                out.extend(self._end_of_life(d.ban_id, at))
            return Result(Outcome.accepted, out)
        self._advance(d.ts, out)
        if isinstance(d, PatrolPosition):
            ok = self.fleet.update(d)
            return Result(Outcome.accepted if ok else Outcome.late, out)
        if isinstance(d, Incident):
            out.extend(self._incident(d, self._now(now), msg.matched, msg.scope))
            return Result(Outcome.accepted, out)
        if isinstance(d, TaskUpdate):
            return self._task_update(msg, d, now, out)
        assert isinstance(d, AlertAction)
        owner = self.alert_owner.get(d.alert_id, "")
        if owner == "":
            rej = Rejected(Reason.unknown_alert, f"alert_id: no alert {d.alert_id!r} is known")
            return Result(
                Outcome.rejected,
                [*out, dead_letter(msg, rej, self._now(now), UNKNOWN_ALERT_DEAD_LETTER_BYTES)],
                rej.reason,
            )
        if owner is None:
            out.extend(self._act(self.unmatched[d.alert_id], d))
            self.touched_unmatched.add(d.alert_id)
        else:
            self.touched.add(owner)
            held = self.registry.get(owner)
            st = self.states[owner]
            if held is not None:
                ctx = self._ctx(held, self._now(now))
                lifecycle.apply_action(st, ctx, d)
                out.extend(self._collect(owner, ctx))
            else:
                out.extend(self._act(st.alerts[d.alert_id], d))  # its ban was lifted since
        return Result(Outcome.accepted, out)

    def _task_update(
        self, msg: Incoming, d: TaskUpdate, now: datetime, out: list[Output]
    ) -> Result:
        """Apply a task update to the task it names (alerts/tasklife.py for unit tasks,
        alerts/outreach.py for role tasks); a task not held here, or a transition the contract
        forbids, is a dead letter."""
        home = self.task_home.get(d.task_id)
        why: str | None
        if home is not None and home.startswith(_PERSON):
            person = home[1:]
            if self.book.task(person, d.task_id) is None:
                ended = self.book.ended_state(person, d.task_id)
                why = None if ended is None else f"task is {ended}: no update after an end state"
                return self._task_rejected(msg, d, now, out, why)
            why = self.book.update(self.policy, self.fleet, person, d, out)
            return (
                self._task_rejected(msg, d, now, out, why) if why else Result(Outcome.accepted, out)
            )
        owner = "" if home is None else self.alert_owner.get(home, "")
        a = None
        if owner is None:
            a = self.unmatched.get(home or "")
        elif owner and owner in self.states:
            a = self.states[owner].alerts.get(home or "")
        t = None if a is None else tasklife.find(a, d.task_id)
        if a is None or t is None:
            return self._task_rejected(msg, d, now, out, None)
        why = tasklife.update(self.policy, self.fleet, a, t, d, out)
        if why:
            return self._task_rejected(msg, d, now, out, why)
        if owner is None:
            self.touched_unmatched.add(a.alert_id)
            self._schedule_unmatched(a)
        else:
            self.touched.add(owner)
            self._schedule(owner)
        return Result(Outcome.accepted, out)

    def _task_rejected(
        self, msg: Incoming, d: TaskUpdate, now: datetime, out: list[Output], why: str | None
    ) -> Result:
        if why is None:
            rej = Rejected(Reason.unknown_task, f"task_id: no task {d.task_id!r} is held")
            limit = UNKNOWN_ALERT_DEAD_LETTER_BYTES
        else:
            rej = Rejected(Reason.invalid_transition, f"{d.action.value}: {why}")
            limit = self.policy.max_record_bytes
        return Result(
            Outcome.rejected, [*out, dead_letter(msg, rej, self._now(now), limit)], rej.reason
        )

    def _undated(self, now: datetime) -> datetime | None:
        """The time of a decision no record dates (a ban record): the event clock in replay
        (None before any event: no alert exists then, and the validity's end is a timer),
        else the caller's clock."""
        return self.clock if self.event_clock else now

    # ---------------------------------------------------------- end of life
    def _ending(self, ban_id: str, now: datetime) -> tuple[datetime, str] | None:
        """When and why the ban's life ended, if it did by `now`: lifted or revoked (at `now`:
        the records carry no time), or its validity over (at `valid_until`)."""
        held = self.registry.get(ban_id)
        if held is None:
            return now, "ban lifted: alert closed by the system"
        rec = held.record
        if rec.status != "active":
            return now, f"ban revoked (version {rec.version}): alert closed by the system"
        if rec.valid_until is not None and rec.valid_until <= now:
            return rec.valid_until, (
                f"ban expired at {rfc3339(rec.valid_until)}: alert closed by the system"
            )
        return None

    def _end_of_life(self, ban_id: str, now: datetime) -> list[Output]:
        """Resolve the ban's open alerts once its life ended (rule 7); a ban in force again
        (a newer version) starts a new life."""
        st = self.states[ban_id]
        ending = self._ending(ban_id, now)
        if ending is None:
            st.ended = None
            self._schedule(ban_id)  # its validity's end is a timer
            return []
        if st.ended is not None:
            return []
        at, why = ending
        self.touched.add(ban_id)
        return lifecycle.end_of_life(st, at, why, self.policy, self.fleet)

    def _ctx(self, held: HeldBan, now: datetime) -> Ctx:
        return Ctx(self.policy, self.fleet, held, now, self.knock, self.book)

    def _collect(self, ban_id: str, ctx: Ctx) -> list[Output]:
        self.touched.add(ban_id)
        for topic, key, _value in ctx.out:
            if topic == ALERTS and key is not None:
                self.alert_owner[key] = ban_id
        last = self._pruned.get(ban_id)
        if last is None or ctx.now - last >= _PRUNE_EVERY:
            # retention is a day or a week: looking once an hour per ban is soon enough, and
            # walking every alert on every fix was a quarter of the engine's time per fix
            self._pruned[ban_id] = ctx.now
            for alert_id in lifecycle.prune(self.states[ban_id], ctx.now, self.policy):
                self.alert_owner.pop(alert_id, None)  # an ack for it is now an unknown alert
        self._schedule(ban_id)
        return ctx.out

    def _schedule(self, ban_id: str) -> None:
        st = self.states[ban_id]
        nxt = timers.next_deadline(st, self.policy)
        if st.ended is None:
            # its end of life is due too: at `valid_until`, or at once when it is already
            # over but was not applied here (a state adopted after its ban was lifted)
            ban = self.registry.get(ban_id)
            end = (
                _AT_ONCE
                if ban is None or ban.record.status != "active"
                else ban.record.valid_until
            )
            if end is not None and (nxt is None or end < nxt):
                nxt = end
        if nxt is not None:
            held = self._scheduled.get(ban_id)
            if held is None or nxt < held:
                self._scheduled[ban_id] = nxt
                heapq.heappush(self._heap, (nxt, ban_id))

    # ---------------------------------------------------- stream state hand-over
    def reset_routed(self) -> None:
        """Forget every ban state, unmatched alert and knock count (the registry and the fleet
        stay): the stream calls this before adopting the states of newly assigned partitions."""
        self.states.clear()
        self.unmatched.clear()
        self.alert_owner.clear()
        self.knock = KnockTracker()
        self.book = OutreachBook()
        self.task_home.clear()
        self._heap.clear()
        self._scheduled.clear()
        self._pruned.clear()
        self.touched.clear()
        self.touched_unmatched.clear()

    def adopt(self, st: BanState) -> None:
        """Take over a ban's state restored from the stream's table; its timers are armed
        (an end of life missed meanwhile, as a tombstone read before the state, is due at
        once)."""
        held = self.registry.get(st.ban_id)
        if (
            st.ended is not None
            and held is not None
            and held.record.status == "active"
            and (held.record.valid_until is None or held.record.valid_until > st.ended)
        ):
            st.ended = None  # in force again (a newer version) since its life ended
        self.states[st.ban_id] = st
        for alert_id, a in st.alerts.items():
            self.alert_owner[alert_id] = st.ban_id
            self._adopt_tasks(a)
        self._schedule(st.ban_id)

    def adopt_unmatched(self, a: Alert) -> None:
        self.unmatched[a.alert_id] = a
        self.alert_owner[a.alert_id] = None
        self._adopt_tasks(a)
        self._schedule_unmatched(a)

    def _adopt_tasks(self, a: Alert) -> None:
        """Index an adopted alert's tasks, and tell the fleet what they hold (a newer
        revision noted by a failed call, whose output was dropped, does not stand)."""
        for t in a.tasks:
            self.task_home[t.task_id] = a.alert_id
            self.fleet.note_task(render(t), adopted=True)

    def adopt_outreach(self, o: Outreach) -> None:
        """Take over a restrained person's outreach chain and role tasks restored from the
        stream's table (alerts/snapshot.py `load_outreach`); a retry due is armed."""
        self.book.adopt(o)
        for task_id in o.tasks:
            self.task_home[task_id] = _PERSON + o.person
        self._tasks_out([])

    # ------------------------------------------------ protected-person warnings
    def _notify(self, out: list[Output], d: object) -> list[Output]:
        """`out` with the protected persons' notifications each alert revision calls for
        (alerts/notifications.py) right after it. Called on the outputs of each input record
        as soon as they are decided (the state it consults is then the record's) and on
        those of `tick`: every path that revises an alert is covered. `d`: the decoded input
        record (an unmatched SOS warns the person it names)."""
        if not any(topic == ALERTS for topic, _, _ in out):
            return out
        sos = d if isinstance(d, Incident) and d.kind is IncidentKind.sos else None
        respond = {
            v["alert_id"] for topic, _, v in out if topic == TASKS and v and v["kind"] == "respond"
        }
        res: list[Output] = []
        for o in out:
            res.append(o)
            topic, aid, v = o
            if topic != ALERTS or aid is None or v is None:
                continue
            owner = self.alert_owner.get(aid, "")
            if owner is None:
                a = self.unmatched.get(aid)
            else:
                st = self.states.get(owner)
                a = None if st is None else st.alerts.get(aid)
            if a is None:
                continue
            held = None if a.ban_id is None else self.registry.get(a.ban_id)
            protected = () if held is None else held.record.protected_persons
            caller = None
            if sos is not None and v.get("incident_id") == sos.incident_id:
                caller = sos.person_id
            persons = notifications.recipients(v, protected, caller)
            before = len(a.notified)
            res.extend(
                notifications.derive(v, persons, a.notified, a.respond_sent or aid in respond)
            )
            if len(a.notified) == before:
                continue
            if owner is None:
                self.touched_unmatched.add(aid)
            else:
                self.touched.add(owner)
        return res

    # ---------------------------------------------------------------- fixes
    def _fixes(
        self, fixes: list[LocationFix], fix_msgs: list[Incoming], now: datetime
    ) -> list[Result]:
        """Measure every fix against every zone of its person's bans in one pass, then apply
        the fixes one by one in record order."""
        reg = self.registry
        # the in-force bans each fix concerns (alerts/routing.py: decided by the caller and
        # carried on the message, else here), each restrained one with the dict that will hold
        # the fix's signed distance to every zone of the ban; the registry does not change
        # while fixes are applied, so this is decided up front
        work: list[list[tuple[str, HeldBan, bool, dict[str, float]]]] = []
        pair_slot: list[int] = []
        pair_lat: list[float] = []
        pair_lon: list[float] = []
        pair_dst: list[tuple[dict[str, float], str]] = []
        no_zones: dict[str, float] = {}  # shared, never written: protected persons' view
        for fix, msg in zip(fixes, fix_msgs, strict=True):
            bans = msg.bans
            if bans is None:
                bans = fix_bans(reg, fix)
                if msg.scope is not None:
                    bans = scoped(bans, msg.scope)
            mine: list[tuple[str, HeldBan, bool, dict[str, float]]] = []
            for ban_id, held, restrained in bans:
                if not restrained:
                    # a ban never protects its restrained person: no zone distances here
                    mine.append((ban_id, held, False, no_zones))
                    continue
                zone_sd: dict[str, float] = {}
                for zone_id, slot in held.slots.items():
                    pair_slot.append(slot)
                    pair_lat.append(fix.lat)
                    pair_lon.append(fix.lon)
                    pair_dst.append((zone_sd, zone_id))
                mine.append((ban_id, held, True, zone_sd))
            work.append(mine)
        if pair_slot:
            sds = reg.table.signed_distances(
                np.asarray(pair_slot, dtype=np.int64),
                np.asarray(pair_lat, dtype=np.float64),
                np.asarray(pair_lon, dtype=np.float64),
            ).tolist()
            for (zone_sd, zone_id), sd in zip(pair_dst, sds, strict=True):
                zone_sd[zone_id] = sd
        results = []
        states = self.states
        policy, fleet = self.policy, self.fleet
        for fix, msg, mine in zip(fixes, fix_msgs, work, strict=True):
            failed: list[str] = []
            out: list[Output] = []
            if self.event_clock:
                self._advance(fix.ts, out)
            at = self._now(now)
            late = False
            for ban_id, held, restrained, zone_sd in mine:
                ctx = Ctx(policy, fleet, held, at, self.knock, self.book)
                st = states.get(ban_id)
                if st is None:
                    st = states[ban_id] = BanState(ban_id)
                elif st.ended is not None:
                    continue  # its alerts were closed when the ban ended: nothing opens again
                if not apply_fix(st, ctx, fix, restrained, zone_sd):
                    late = True
                if ctx.failures:
                    failed.extend(ctx.failures)
                out.extend(self._collect(ban_id, ctx))
            if failed:
                out.append(self._internal(msg, failed, at))
            out = self._notify(out, fix)
            results.append(Result(Outcome.late if late else Outcome.accepted, out))
        return results

    def _internal(self, msg: Incoming, detectors: list[str], at: datetime) -> Output:
        """A detector raised on this record: the others ran; keep the record for analysis."""
        names = ", ".join(sorted(set(detectors)))
        rej = Rejected(Reason.internal, f"detector failed: {names} (see worker log)")
        return dead_letter(msg, rej, at, self.policy.max_ban_record_bytes)

    # ------------------------------------------------------------ incidents
    def _incident(
        self,
        inc: Incident,
        now: datetime,
        routed: tuple[tuple[str, str], ...] | None = None,
        scope: str | None = None,
    ) -> list[Output]:
        """Apply an incident to the bans it matches (`routed`: every ban it was matched to
        when routed; `scope`: the restrained person whose bans this engine applies it to);
        otherwise publish an `unmatched_incident` alert, or for an SOS an `sos` alert.

        One response per incident (rule 9): the first ban of the match list (sorted by ban
        id) is responsible for the `respond` and `protect` tasks. The list is the same for
        every restrained person's slice in the stream, so exactly one state dispatches."""
        matched = self.match_incident(inc) if routed is None else list(routed)
        out: list[Output] = []
        for i, (ban_id, how) in enumerate(matched):
            held = self.registry.get(ban_id)
            if held is None:  # lifted between routing and now
                continue
            if scope is not None and held.record.restrained_person != scope:
                continue  # another restrained person's ban: decided in that person's partition
            st = self.states.get(ban_id)
            if st is None:
                st = self.states[ban_id] = BanState(ban_id)
            if st.ended is None and self._ending(ban_id, now) is not None:
                # an SOS for an ended ban: its life ends first, so the SOS alert stays open
                out.extend(self._end_of_life(ban_id, now))
            ctx = self._ctx(held, now)
            incidents.apply(st, ctx, inc, how, responsible=i == 0)
            out.extend(self._collect(ban_id, ctx))
        if not matched:
            out.extend(self._unmatched(inc, now))
        return out

    def match_incident(self, inc: Incident) -> list[tuple[str, str]]:
        """The bans `inc` matches now (alerts/routing.py `match_incident`)."""
        return match_incident(self.registry, inc)

    def _unmatched(self, inc: Incident, now: datetime) -> list[Output]:
        aid = stable_id("unmatched", inc.incident_id)
        if aid in self.unmatched:
            return []
        here = None if inc.lat is None or inc.lon is None else place(inc.lat, inc.lon, None, inc.ts)
        sos = inc.kind is IncidentKind.sos
        a = Alert(
            alert_id=aid,
            kind=Kind.sos if sos else Kind.unmatched_incident,
            priority=1 if sos else 3,
            confidence="confirmed" if sos else "possible",
            ban_id=None,
            ban_version=None,
            restrained_person=None,
            opened_at=inc.ts,
            reason=f"{inc.kind.value} incident matched no in-force contact ban"
            if not sos
            else "sos incident matched no contact ban",
            incident_id=inc.incident_id,
            position=here,
        )
        out: list[Output] = []
        if sos:  # always priority 1 (rule 8): units recommended, respond sent, escalation
            a.set_priority(1, inc.ts)
            if here is not None:
                recs = self.fleet.nearest(
                    here["lat"], here["lon"], inc.ts, self.policy, self.policy.recommended_units
                )
                a.recommended_units = [r.as_value() for r in recs]
        self.unmatched[aid] = a
        self.alert_owner[aid] = None
        self.touched_unmatched.add(aid)
        out.append((ALERTS, aid, a.revision(inc.ts)))
        if sos:
            dispatch(self.policy, self.fleet, a, inc.ts, out)
            self._schedule_unmatched(a)
        return out

    def _unmatched_due(self, a: Alert) -> datetime | None:
        """The next timer of an unmatched SOS (the only priority-1 unmatched alert): its
        escalation, or its respond/protect task's acceptance deadline."""
        due = a.offer_due
        if a.priority == 1 and a.p1_since is not None and a.state in (State.open, State.updated):
            esc = a.p1_since + duration(self.policy.ack_sla_s)
            if due is None or esc < due:
                due = esc
        return due

    def _schedule_unmatched(self, a: Alert) -> None:
        due = self._unmatched_due(a)
        if due is None:
            return
        key = _UNMATCHED + a.alert_id
        if self._scheduled.get(key) != due:
            self._scheduled[key] = due
            heapq.heappush(self._heap, (due, key))

    def _act(self, a: Alert, act: AlertAction) -> list[Output]:
        if act.action == "acknowledge" and a.state is not State.resolved:
            tasklife.recommend(self.policy, self.fleet, a, act.ts)  # busy units never listed
        revision = a.act(act.action, act.by, act.ts)
        if revision is None:
            return []
        out: list[Output] = [(ALERTS, a.alert_id, revision)]
        if a.state is State.resolved:
            tasklife.cancel(self.policy, self.fleet, a, a.updated_at or act.ts, out)
        return out

    # --------------------------------------------------------------- timers
    def tick(self, now: datetime) -> list[Output]:
        """Fire timers (escalation, signal loss, end of life, task acceptance, outreach
        retries) due at or before `now`."""
        out = self._notify(self._tick(now), None)
        self._tasks_out(out)
        return out

    def _tick(self, now: datetime) -> list[Output]:
        # a unit asked by a timer (the next after an expiry) is asked at the timer's time
        asked_at, self.fleet.now = self.fleet.now, None
        try:
            return self._fire(now)
        finally:
            self.fleet.now = asked_at

    def _fire(self, now: datetime) -> list[Output]:
        out: list[Output] = []
        while self._heap and self._heap[0][0] <= now:
            t, ban_id = heapq.heappop(self._heap)
            if self._scheduled.get(ban_id) != t:
                continue
            del self._scheduled[ban_id]
            if ban_id.startswith(_UNMATCHED):
                self._escalate_unmatched(ban_id[1:], t, out)
                continue
            if ban_id.startswith(_PERSON):
                self.book.tick(self.policy, self.fleet, ban_id[1:], t, out)
                self._tasks_out(out)  # re-arms the person's next retry, if any
                continue
            held = self.registry.get(ban_id)
            st = self.states.get(ban_id)
            if st is None:
                continue
            ending = None if st.ended is not None else self._ending(ban_id, now)
            if ending is not None:
                at, why = ending
                if held is not None and held.record.status == "active" and at > _AT_ONCE:
                    # validity over at `at`: what was due before it still happens first
                    ctx = self._ctx(held, now)
                    timers.tick(st, ctx, at - _TICK)
                    out.extend(self._collect(ban_id, ctx))
                out.extend(lifecycle.end_of_life(st, at, why, self.policy, self.fleet))
                self.touched.add(ban_id)
                if held is not None:
                    self._schedule(ban_id)
                continue
            if held is None:
                continue
            ctx = self._ctx(held, now)
            timers.tick(st, ctx, now)
            out.extend(self._collect(ban_id, ctx))
        return out

    def _escalate_unmatched(self, alert_id: str, t: datetime, out: list[Output]) -> None:
        """An unmatched SOS's timer at `t`: its tasks' acceptance deadlines, its escalation."""
        a = self.unmatched.get(alert_id)
        if a is None:
            return
        self.touched_unmatched.add(alert_id)
        if a.offer_due is not None and a.offer_due <= t:
            tasklife.expire(self.policy, self.fleet, a, t, out)
        if (
            a.priority == 1
            and a.p1_since is not None
            and a.state in (State.open, State.updated)
            and a.p1_since + duration(self.policy.ack_sla_s) <= t
        ):
            tasklife.recommend(self.policy, self.fleet, a, t)  # busy units never listed
            out.append((ALERTS, alert_id, a.revision(t, State.escalated)))
            dispatch(self.policy, self.fleet, a, t, out)  # a respond still owed goes now
        self._schedule_unmatched(a)
