"""The soak's fault plan, derived from its length and window (no broker)."""

from __future__ import annotations

from tests.chaos.harness import soak_plan


def test_the_ci_soak_keeps_one_join_one_leave_and_one_kill_at_quarters() -> None:
    assert soak_plan(100, 25) == [(25.0, "add c"), (50.0, "remove c"), (75.0, "SIGKILL a")]


def test_the_long_soak_adds_and_removes_a_worker_in_every_window_and_kills_once() -> None:
    plan = soak_plan(1800, 300)
    assert [what for _, what in plan].count("add c") == 6
    assert [what for _, what in plan].count("remove c") == 6
    kills = [t for t, what in plan if what == "SIGKILL a"]
    assert kills == [900 + 250]  # the middle window (900-1200 s), after c has left
    for w in range(6):
        inside = [what for t, what in plan if w * 300 <= t < (w + 1) * 300]
        assert inside[:2] == ["add c", "remove c"], (w, inside)
    times = [t for t, _ in plan]
    assert times == sorted(times)
    assert max(times) < 1800


def test_a_three_minute_soak_in_minute_windows_uses_the_long_plan() -> None:
    assert soak_plan(180, 60) == [
        (20.0, "add c"),
        (40.0, "remove c"),
        (80.0, "add c"),
        (100.0, "remove c"),
        (110.0, "SIGKILL a"),
        (140.0, "add c"),
        (160.0, "remove c"),
    ]
