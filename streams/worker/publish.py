"""How the worker's outputs leave: one `Publisher` per way out (the hot loop's outbox, faust's
producer), with the same rules for both.

`decide_or_reject` is the one "decode → reject → dead letter + count" step of every agent and
of the hot loop; `internal_error` dead-letters a record that made our own code fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from alerts.engine import Incoming, Outcome, dead_letter
from alerts.model import ALERTS, TASKS, Output
from config.policy import Policy
from geofence.decoding import Decoded, Reason, Rejected, decode
from streams.kafka.blocking import encode_json
from streams.worker.observer import Observer
from streams.worker.routing import envelope, partition_for, record_key

#: put(topic name as deployed, key, value, partition or None for the default partitioner)
Put = Callable[[str, bytes | None, bytes, int | None], None]
#: count(topic, outcome, reason): one input record decided
Count = Callable[[str, Outcome, Reason | None], None]
#: what consumers dedupe an alert or a task by: (topic, alert_id or task_id, seq)
OutputId = tuple[str, str, int | None]
#: the output topics whose records a successor looks for before publishing them again
DEDUPED = (ALERTS, TASKS)


def output_id(topic: str, value: Any) -> OutputId | None:
    """(topic, alert_id, seq) of an alert, (topic, task_id, seq) of a task (seq None before
    contract v2's task revisions); None for anything else."""
    if not isinstance(value, dict):
        return None
    ident = value.get("alert_id") if topic == ALERTS else value.get("task_id")
    if topic not in DEDUPED or not isinstance(ident, str):
        return None
    seq = value.get("seq")
    return (topic, ident, seq if isinstance(seq, int) else None)


def utc_now() -> datetime:
    """The worker's clock (the core never reads one: time is a parameter)."""
    return datetime.now(UTC)


class Publisher:
    """Sends outputs and re-keyed records through `put`, tells `observer` of every output, and
    counts decided input records through `count`."""

    def __init__(
        self,
        put: Put,
        names: Mapping[str, str],
        routed_name: str,
        policy: Policy,
        observer: Observer,
        count: Count,
    ) -> None:
        self.put = put
        self.names = names  # contract topic name -> name as deployed (prefixed)
        self.routed_name = routed_name
        self.policy = policy
        self.observer = observer
        self.count = count
        # alert and task revisions found on the output topics after the last commit of the
        # partitions adopted (a predecessor published them before it died): not sent again
        self.published: set[OutputId] = set()
        self.unsent = 0  # outputs not sent again because they were found there

    def send(self, output: Output) -> None:
        topic, key, value = output
        if self.published and output_id(topic, value) in self.published:
            self.unsent += 1
            return
        raw_key = None if key is None else key.encode("utf-8")
        self.put(self.names[topic], raw_key, encode_json(value), None)
        self.observer.on_output(output)

    def forward(self, target: str, msg: Incoming, matched: Iterable[Any] | None = None) -> None:
        """Re-key `msg` to `target` through `routed`, on the partition `target`'s state is."""
        self.put(
            self.routed_name, target.encode("utf-8"), envelope(msg, matched), partition_for(target)
        )

    def decide_or_reject(
        self, msg: Incoming, now: datetime, dead_letter_bytes: int
    ) -> Decoded | None:
        """Decode `msg`; a rejected record becomes a dead letter (keeping at most
        `dead_letter_bytes` of it) and is counted, and None comes back."""
        d = decode(msg.topic, msg.key, msg.value, now, self.policy)
        if isinstance(d, Rejected):
            self.reject(msg, d, now, dead_letter_bytes)
            return None
        return d

    def reject(self, msg: Incoming, rej: Rejected, now: datetime, dead_letter_bytes: int) -> None:
        self.send(dead_letter(msg, rej, now, dead_letter_bytes))
        self.count(msg.topic, Outcome.rejected, rej.reason)

    def internal_error(self, m: Any) -> None:
        """Dead-letter a record (faust's message or aiokafka's record) that made code fail."""
        src = "routed" if m.topic == self.routed_name else m.topic
        msg = Incoming(src, record_key(m.key), m.value, m.partition, m.offset)
        rej = Rejected(Reason.internal, "record could not be processed (see worker log)")
        self.send(dead_letter(msg, rej, utc_now(), self.policy.max_ban_record_bytes))
