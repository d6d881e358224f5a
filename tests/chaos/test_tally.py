"""The fault table's arithmetic: the tally that decides lost, duplicated and split episodes."""

from __future__ import annotations

import pytest

from tests.chaos.harness import tally, when

pytestmark = pytest.mark.chaos  # pure arithmetic, no broker: part of the fast tier

T1, T2 = "2026-11-22T10:00:00.000Z", "2026-11-22T10:01:00.000Z"
EXPECTED = {("KF-1", when(T1)), ("KF-1", when(T2)), ("KF-2", when(T1))}


def alert(ban_id: str, opened_at: str, alert_id: str, seq: int = 1) -> dict[str, object]:
    return {
        "ban_id": ban_id,
        "opened_at": opened_at,
        "alert_id": alert_id,
        "seq": seq,
        "kind": "zone_breach",
    }


def test_every_episode_alerted_once_is_clean() -> None:
    t = tally([alert("KF-1", T1, "a"), alert("KF-1", T2, "b"), alert("KF-2", T1, "c")], EXPECTED)
    assert (t.expected, t.lost, t.unexpected, t.split, t.duplicated) == (3, [], [], {}, 0)


def test_a_missing_episode_is_lost_and_a_republished_revision_is_a_duplicate() -> None:
    alerts = [alert("KF-1", T1, "a"), alert("KF-1", T1, "a"), alert("KF-1", T1, "a", seq=2)]
    alerts += [alert("KF-2", T1, "c")]
    t = tally(alerts, EXPECTED)
    assert t.lost == [("KF-1", when(T2))]
    assert t.duplicated == 1


def test_one_episode_under_two_alert_ids_is_split_and_other_kinds_do_not_count() -> None:
    alerts = [alert("KF-1", T1, "a"), alert("KF-1", T1, "a2"), alert("KF-1", T2, "b")]
    alerts += [alert("KF-2", T1, "c"), {**alert("KF-3", T1, "d"), "kind": "approach"}]
    alerts += [alert("KF-9", T1, "e")]
    t = tally(alerts, EXPECTED)
    assert t.split == {("KF-1", when(T1)): {"a", "a2"}}
    assert t.unexpected == [("KF-9", when(T1))]
    assert not t.lost
