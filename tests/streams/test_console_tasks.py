"""Tasks in the console (contract v2, "Tasks have a lifecycle", "Roles"): the latest revision of
each task, the updates a unit or a follow-up role sends (checked, published to `task-updates`,
audited), the role queues, the live stream per role, the unit board. In process, no broker: the
tests publish task revisions to the store the way the console's feed does for the worker's."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.console.lifecycle import ACTIONS, OUTCOMES, RANK, TARGET, Refused, check
from streams.console.store import Store
from tests.streams.consolekit import (
    DISPATCHER,
    INVESTIGATOR,
    NEGOTIATOR,
    OUTREACH,
    PATROL,
    PATROL_OTHER,
    SOCIAL,
    VIEWER,
    Harness,
    alert,
    bearer,
    console,
    read_event,
    revision,
    ts,
)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def lifecycle_store() -> Store:
    """A respond task for SÖ-2140 and one for SÖ-2150, a protect task for SÖ-2140 already on
    scene, and one open task for each follow-up role (the referral with nothing but ids)."""
    store = Store("test")
    store.apply_alert(alert("a1"))
    store.apply_unit({"unit_id": "SÖ-2140", "ts": ts(), "lat": 59.2, "lon": 17.6, "status": "busy"})
    store.apply_unit(
        {"unit_id": "SÖ-2160", "ts": ts(), "lat": 59.2, "lon": 17.6, "status": "available"}
    )
    store.apply_unit(
        {"unit_id": "SÖ-2170", "ts": ts(), "lat": 59.2, "lon": 17.6, "status": "off_duty"}
    )
    store.apply_task(revision("r1", "SÖ-2140"))
    store.apply_task(revision("r2", "SÖ-2150"))
    store.apply_task(revision("p1", "SÖ-2140", kind="protect", seq=4, state="on_scene"))
    store.apply_task(revision("i1", None, kind="interview", role="investigator", due_s=86400))
    store.apply_task(
        revision("m1", None, kind="motivational_talk", role="negotiator", due_s=3 * 86400)
    )
    store.apply_task(
        revision(
            "m0",
            None,
            kind="motivational_talk",
            role="negotiator",
            due_s=86400,
            seq=3,
            state="done",
            outcome="refused",
        )
    )
    referral = revision(
        "f1", None, kind="referral", role="social_services", alert_id=None, due_s=7 * 86400
    )
    store.apply_task(referral)
    store.apply_task(revision("k1", None, kind="knock", role="outreach", due_s=86400))
    return store


async def post(
    h: Harness, token: str, task_id: str, action: str, **body: Any
) -> tuple[int, dict[str, Any]]:
    resp = await h.client.post(f"/api/tasks/{task_id}/{action}", json=body, headers=bearer(token))
    return resp.status, await resp.json()


def test_the_store_keeps_the_highest_seq_of_each_task() -> None:
    s = Store("x")
    assert s.apply_task(revision("t", "U", seq=2, state="accepted")) is True
    assert s.apply_task(revision("t", "U", seq=1)) is False  # an older revision, redelivered
    assert s.apply_task(revision("t", "U", seq=2, state="accepted")) is False
    assert s.task("t")["state"] == "accepted"  # type: ignore[index]
    mark = s.last_event_id
    assert s.apply_task(revision("t", "U", seq=3, state="en_route")) is True
    [event] = s.since(mark) or []
    assert (event.kind, event.unit, event.data["state"], event.data["seq"]) == (
        "task",
        "U",
        "en_route",
        3,
    )
    assert event.data["actions"] == ["on_scene", "done"]
    assert event.data["outcomes"][0] == "contact_made"
    s.apply_task(revision("t", "U", seq=4, state="done", outcome="arrested"))
    view = s.task("t")
    assert view is not None and view["closed"] is True and view["actions"] == []
    # a v2 role task stays open when its alert is resolved: the chain lives on
    s.apply_task(revision("i", None, kind="interview", role="investigator"))
    s.apply_alert(alert("a1", seq=1))
    s.apply_alert(alert("a1", seq=2, state="resolved"))
    assert s.task("i")["closed"] is False  # type: ignore[index]
    assert s.task("i")["actions"] == ["accept", "done"]  # type: ignore[index]


def test_a_patrol_unit_takes_its_task_from_accept_to_done() -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            status, body = await post(h, PATROL, "r1", "accept", note="på väg från Ronna")
            assert (status, body["published"], body["state"]) == (202, True, "accepted")
            [(key, update)] = h.published.on("task-updates")
            assert key == "r1"
            assert update == {
                "task_id": "r1",
                "by": "SÖ-2140",
                "role": "patrol",
                "ts": "2026-11-22T21:50:00.000Z",
                "action": "accept",
                "outcome": None,
                "consent_to_share": None,
                "note": "på väg från Ronna",
            }
            [(akey, record)] = h.published.on("audit")
            assert (akey, record["action"], record["actor"], record["role"]) == (
                "task:r1",
                "task_accept",
                "pat-2140",
                "patrol",
            )
            assert "Ronna" not in str(record) and "59.2" not in str(record)
            # a double tap before the worker's revision: not sent twice
            status, body = await post(h, PATROL, "r1", "accept")
            assert (status, body["published"]) == (200, False)
            # already counted as accepted: decline is no longer offered
            status, body = await post(h, PATROL, "r1", "decline")
            assert status == 400 and "decline is not valid" in body["error"]
            h.store.apply_task(revision("r1", "SÖ-2140", seq=2, state="accepted"))
            for seq, action, state in ((3, "en_route", "en_route"), (4, "on_scene", "on_scene")):
                status, body = await post(h, PATROL, "r1", action)
                assert (status, body["state"]) == (202, state)
                h.store.apply_task(revision("r1", "SÖ-2140", seq=seq, state=state))
            status, body = await post(h, PATROL, "r1", "en_route")  # backwards
            assert (
                status == 400
                and "en_route is not valid for a respond task that is on_scene" in body["error"]
            )
            status, body = await post(h, PATROL, "r1", "done")
            assert status == 400 and "outcome: one of contact_made, not_found" in body["error"]
            status, body = await post(h, PATROL, "r1", "done", outcome="held")
            assert status == 400  # an interview's outcome, not a respond task's
            status, body = await post(
                h, PATROL, "r1", "done", outcome="contact_made", consent_to_share=True
            )
            assert status == 400 and "consent_to_share" in body["error"]
            status, body = await post(h, PATROL, "r1", "done", outcome="contact_made")
            assert status == 202
            h.store.apply_task(
                revision("r1", "SÖ-2140", seq=5, state="done", outcome="contact_made")
            )
            status, body = await post(h, PATROL, "r1", "accept")
            assert status == 400 and "the task has ended (done)" in body["error"]
            actions = [v["action"] for _, v in h.published.on("task-updates")]
            assert actions == ["accept", "en_route", "on_scene", "done"]
            assert [v["outcome"] for _, v in h.published.on("task-updates")][-1] == "contact_made"
            audits = [v for _, v in h.published.on("audit")]
            assert [a["action"] for a in audits] == [
                "task_accept",
                "task_en_route",
                "task_on_scene",
                "task_done",
            ]
            assert all(a["object"] == "task:r1" for a in audits)
            assert "outcome contact_made" in audits[-1]["reason"]

    run(scenario)


def test_an_update_can_skip_states_and_is_checked_against_the_state_sent() -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            assert (await post(h, PATROL, "r1", "on_scene"))[0] == 202  # assigned -> on_scene
            # the worker's revision has not come yet; en route would move it backwards
            status, body = await post(h, PATROL, "r1", "en_route")
            assert status == 400 and "that is on_scene" in body["error"]
            assert (await post(h, PATROL, "r1", "done", outcome="false_alarm"))[0] == 202
            assert [v["action"] for _, v in h.published.on("task-updates")] == ["on_scene", "done"]

    run(scenario)


def test_decline_answers_an_offer_and_ends_the_task() -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            status, body = await post(h, PATROL_OTHER, "r2", "decline")
            assert status == 202 and body["state"] == "declined"
            [(_, update)] = h.published.on("task-updates")
            assert (update["by"], update["action"]) == ("SÖ-2150", "decline")
            h.store.apply_task(revision("r2", "SÖ-2150", seq=2, state="declined"))
            status, body = await post(h, PATROL_OTHER, "r2", "accept")
            assert status == 400 and "ended (declined)" in body["error"]
            # a task on scene cannot be declined any more
            status, body = await post(h, PATROL, "p1", "decline")
            assert status == 400

    run(scenario)


@pytest.mark.parametrize(
    ("token", "task_id", "status"),
    [
        (PATROL, "r2", 403),  # another unit's task
        (PATROL_OTHER, "r1", 403),
        (PATROL, "i1", 403),  # a role's task
        (INVESTIGATOR, "r1", 403),  # a unit's task
        (INVESTIGATOR, "m1", 403),  # another role's task
        (NEGOTIATOR, "i1", 403),
        (SOCIAL, "k1", 403),
        (OUTREACH, "f1", 403),
        (DISPATCHER, "r1", 403),  # dispatchers and viewers watch; they do not answer
        (VIEWER, "i1", 403),
        (PATROL, "nope", 404),
        (INVESTIGATOR, "nope", 404),
    ],
)
def test_only_the_unit_or_role_a_task_is_for_may_answer_it(
    token: str, task_id: str, status: int
) -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            got, body = await post(h, token, task_id, "accept")
            assert got == status, body
            assert "error" in body
            assert h.published.records == []

    run(scenario)


def test_bad_updates_are_refused_with_a_reason_and_nothing_is_sent() -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            cases: list[tuple[str, str, str, dict[str, Any], str]] = [
                (PATROL, "r1", "arrive", {}, "action: one of accept, decline"),
                (PATROL, "r1", "accept", {"note": "x" * 501}, "note: text of at most 500"),
                (PATROL, "r1", "accept", {"note": 7}, "note: text"),
                (PATROL, "r1", "accept", {"outcome": "contact_made"}, "outcome: only with done"),
                (PATROL, "r1", "done", {"outcome": "nope"}, "outcome: one of"),
                (PATROL, "r1", "done", {"outcome": ["contact_made"]}, "outcome: one of"),
                (INVESTIGATOR, "i1", "en_route", {}, "en_route is not valid for a interview"),
                (INVESTIGATOR, "i1", "decline", {}, "decline is not valid"),
                (
                    INVESTIGATOR,
                    "i1",
                    "done",
                    {"outcome": "held_accepts_help"},
                    "outcome: one of held, not_reached, refused",
                ),
                (NEGOTIATOR, "m0", "accept", {}, "the task has ended (done)"),
                (
                    NEGOTIATOR,
                    "m1",
                    "done",
                    {"outcome": "held_accepts_help"},
                    "consent_to_share: say explicitly",
                ),
                (
                    NEGOTIATOR,
                    "m1",
                    "done",
                    {"outcome": "held_accepts_help", "consent_to_share": "yes"},
                    "true, false or null",
                ),
                (
                    NEGOTIATOR,
                    "m1",
                    "done",
                    {"outcome": "held_declines_help", "consent_to_share": False},
                    "only with done, held_accepts_help",
                ),
                (NEGOTIATOR, "m1", "accept", {"consent_to_share": True}, "only with done"),
            ]
            for token, task_id, action, body, message in cases:
                status, answer = await post(h, token, task_id, action, **body)
                assert status == 400, (task_id, action, body, answer)
                assert message in answer["error"], (message, answer)
            resp = await h.client.post(
                "/api/tasks/r1/accept",
                data="[1]",
                headers={**bearer(PATROL), "Content-Type": "application/json"},
            )
            assert resp.status == 400
            assert h.published.records == []

    run(scenario)


@pytest.mark.parametrize("consent", [True, False])
def test_the_negotiator_records_consent_explicitly(consent: bool) -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            assert (await post(h, NEGOTIATOR, "m1", "accept"))[0] == 202
            h.store.apply_task(
                revision(
                    "m1", None, kind="motivational_talk", role="negotiator", seq=2, state="accepted"
                )
            )
            status, body = await post(
                h,
                NEGOTIATOR,
                "m1",
                "done",
                outcome="held_accepts_help",
                consent_to_share=consent,
                note="samtal på Söderort polisstation",
            )
            assert status == 202, body
            update = h.published.on("task-updates")[-1][1]
            assert (
                update["by"],
                update["role"],
                update["outcome"],
                update["consent_to_share"],
            ) == (
                "neg-2",
                "negotiator",
                "held_accepts_help",
                consent,
            )
            audit = h.published.on("audit")[-1][1]
            assert audit["action"] == "task_done" and audit["object"] == "task:m1"
            assert audit["reason"].endswith(
                "consent to share with social services: " + ("yes" if consent else "no")
            )
            assert "Söderort" not in str(h.published.on("audit"))

    run(scenario)


def test_each_follow_up_role_answers_its_own_kind() -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            for token, task_id, outcome, user in (
                (INVESTIGATOR, "i1", "held", "inv-4"),
                (SOCIAL, "f1", "contact_made", "soc-9"),
                (OUTREACH, "k1", "not_home", "out-5"),
            ):
                status, body = await post(h, token, task_id, "done", outcome=outcome)
                assert status == 202, body
                assert h.published.on("task-updates")[-1][1]["by"] == user

    run(scenario)


def test_role_queues_show_only_the_roles_own_tasks_open_first() -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            resp = await h.client.get("/api/tasks", headers=bearer(NEGOTIATOR))
            body = await resp.json()
            assert body["role"] == "negotiator"
            assert [(t["task_id"], t["closed"]) for t in body["tasks"]] == [
                ("m1", False),
                ("m0", True),
            ]
            assert body["tasks"][0]["due_by"] == ts(3 * 86400)
            assert body["tasks"][0]["actions"] == ["accept", "done"]
            assert body["tasks"][0]["outcomes"] == [
                "held_accepts_help",
                "held_declines_help",
                "not_reached",
                "refused",
            ]
            resp = await h.client.get("/api/tasks?role=negotiator", headers=bearer(NEGOTIATOR))
            assert resp.status == 200
            for path in (
                "/api/tasks?role=investigator",
                "/api/tasks?unit=SÖ-2140",
                "/api/tasks?alert=a1",
                "/api/alerts",
                "/api/alerts/a1",
                "/api/units",
            ):
                resp = await h.client.get(path, headers=bearer(NEGOTIATOR))
                assert resp.status == 403, path
            resp = await h.client.get("/api/tasks", headers=bearer(SOCIAL))
            [referral] = (await resp.json())["tasks"]
            assert referral["task_id"] == "f1"
            resp = await h.client.get("/api/tasks?alert=None", headers=bearer(DISPATCHER))
            assert (await resp.json())["tasks"] == []  # a referral belongs to no alert
            resp = await h.client.get("/api/tasks?role=negotiator", headers=bearer(DISPATCHER))
            assert {t["task_id"] for t in (await resp.json())["tasks"]} == {"m1", "m0"}
            # both open, P1, the same due time: by id
            resp = await h.client.get("/api/tasks", headers=bearer(PATROL))
            assert [t["task_id"] for t in (await resp.json())["tasks"]] == ["p1", "r1"]

    run(scenario)


def test_a_role_stream_carries_only_its_roles_tasks() -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            resp = await h.client.get("/api/stream", headers=bearer(NEGOTIATOR))
            snap = await read_event(resp)
            assert snap["data"]["alerts"] == []
            assert {t["task_id"] for t in snap["data"]["tasks"]} == {"m1", "m0"}
            h.store.apply_alert(alert("a9"))
            h.store.apply_task(
                revision(
                    "i1",
                    None,
                    kind="interview",
                    role="investigator",
                    seq=2,
                    state="done",
                    outcome="held",
                )
            )
            h.store.apply_task(revision("r1", "SÖ-2140", seq=2, state="accepted"))
            h.store.apply_task(revision("m2", None, kind="motivational_talk", role="negotiator"))
            ev = await read_event(resp)
            assert (ev["event"], ev["data"]["task_id"]) == ("task", "m2")
            h.store.apply_task(
                revision(
                    "m1", None, kind="motivational_talk", role="negotiator", seq=2, state="accepted"
                )
            )
            ev = await read_event(resp)
            assert (ev["data"]["task_id"], ev["data"]["state"], ev["data"]["actions"]) == (
                "m1",
                "accepted",
                ["done"],
            )
            resp.close()
            # a patrol stream: its unit's revisions, live
            resp = await h.client.get("/api/stream", headers=bearer(PATROL))
            snap = await read_event(resp)
            assert {t["task_id"] for t in snap["data"]["tasks"]} == {"r1", "p1"}
            h.store.apply_task(revision("r2", "SÖ-2150", seq=2, state="accepted"))
            h.store.apply_task(revision("r1", "SÖ-2140", seq=3, state="en_route"))
            ev = await read_event(resp)
            assert (ev["data"]["task_id"], ev["data"]["state"]) == ("r1", "en_route")
            resp.close()

    run(scenario)


def test_the_unit_board_follows_positions_and_task_revisions() -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:

            async def board() -> dict[str, tuple[str, str | None]]:
                resp = await h.client.get("/api/units", headers=bearer(DISPATCHER))
                assert resp.status == 200
                return {
                    u["unit_id"]: (u["status"], u["task"] and u["task"]["task_id"])
                    for u in (await resp.json())["units"]
                }

            assert await board() == {
                "SÖ-2140": ("on_scene", "p1"),  # the most advanced of its live tasks
                "SÖ-2150": ("tasked", "r2"),  # no position yet, but a task
                "SÖ-2160": ("free", None),
                "SÖ-2170": ("off_duty", None),
            }
            h.store.apply_task(
                revision(
                    "p1", "SÖ-2140", kind="protect", seq=5, state="done", outcome="protected_safe"
                )
            )
            h.store.apply_task(revision("r2", "SÖ-2150", seq=2, state="accepted"))
            assert (await board())["SÖ-2140"] == ("tasked", "r1")
            assert (await board())["SÖ-2150"] == ("accepted", "r2")
            h.store.apply_task(revision("r1", "SÖ-2140", seq=2, state="en_route"))
            h.store.apply_task(revision("r2", "SÖ-2150", seq=3, state="expired"))
            assert (await board())["SÖ-2140"] == ("en_route", "r1")
            assert (await board())["SÖ-2150"] == ("free", None)
            resp = await h.client.get("/api/units", headers=bearer(VIEWER))
            units = (await resp.json())["units"]
            assert "lat" not in str(units)  # the board names states, not positions

    run(scenario)


def test_an_alert_shows_its_response_to_the_dispatcher() -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            response = {
                "unit_id": "SÖ-2140",
                "accepted_at": ts(20),
                "on_scene_at": ts(300),
                "outcome": None,
            }
            h.store.apply_alert(alert("a1", seq=2, state="acknowledged", response=response))
            resp = await h.client.get("/api/alerts", headers=bearer(DISPATCHER))
            [a] = (await resp.json())["alerts"]
            assert a["response"] == response

    run(scenario)


def test_nothing_is_shown_as_sent_when_the_bus_refuses_it(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with console(lifecycle_store()) as h:
            h.published.fail = True
            status, _ = await post(h, PATROL, "r1", "accept", note="SECRET NOTE at the door")
            assert status == 503
            h.published.fail = False
            status, body = await post(h, PATROL, "r1", "accept", note="SECRET NOTE at the door")
            assert (status, body["published"]) == (202, True)  # not taken for sent before

    with caplog.at_level(logging.DEBUG, logger="banwatch"):
        run(scenario)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "task accept" in text
    assert "SECRET" not in text and "59.2" not in text


@given(
    kind=st.sampled_from(sorted(OUTCOMES)),
    steps=st.lists(
        st.tuples(
            st.sampled_from([*ACTIONS, "arrive"]),
            st.sampled_from([None, "contact_made", "held", "held_accepts_help", "not_home", "x"]),
            st.sampled_from([None, True, False, "yes"]),
        ),
        max_size=8,
    ),
)
def test_what_the_console_lets_through_only_moves_a_task_forward(
    kind: str, steps: list[tuple[str, str | None, object]]
) -> None:
    """Whatever a page sends, the updates the console passes move the task strictly forward,
    never past an end, `done` only with an outcome of the kind, consent only with a talk where
    the person accepts help; a follow-up role's task is never driven to or declined."""
    role = None if kind in ("respond", "protect") else "someone"
    task = revision("t", None if role else "U", kind=kind, role=role)
    state, order = "assigned", {**RANK, "done": 9, "declined": 9}
    for action, outcome, consent in steps:
        try:
            check(task, state, action, outcome, consent)
        except Refused as refused:
            assert refused.status == 400 and refused.message
            continue
        target = TARGET[action]
        assert state not in ("done", "declined") and order[target] > order[state]
        assert (outcome in OUTCOMES[kind]) if action == "done" else outcome is None
        assert (consent is not None) == (action == "done" and outcome == "held_accepts_help")
        assert role is None or action in ("accept", "done")
        assert action != "decline" or state == "assigned"
        state = target


def test_follow_up_role_tokens_load_from_the_settings_and_unknown_roles_do_not() -> None:
    from config.settings import SettingsError, load_settings

    tokens = {
        "a-long-random-negotiator-tok": {"user": "neg-2", "role": "negotiator"},
        "a-long-random-social-token-x": {"user": "soc-9", "role": "social_services"},
    }
    settings = load_settings({"BANWATCH_CONSOLE_TOKENS": json.dumps(tokens)})
    assert settings.console_tokens is not None
    assert {p.role for p in settings.console_tokens.values()} == {"negotiator", "social_services"}
    tokens["a-long-random-chief-token-xx"] = {"user": "c-1", "role": "chief"}
    with pytest.raises(SettingsError):
        load_settings({"BANWATCH_CONSOLE_TOKENS": json.dumps(tokens)})
