"""decode(): bytes from a topic to a validated record or a rejection, table-driven.

Every input topic accepts its contract example; every way a record can be wrong maps to one
`Reason` and an error that names the field. Nothing raises.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.policy import Policy
from geofence.bans import CompiledBan
from geofence.decoding import (
    ACKS,
    BANS,
    INCIDENTS,
    INPUT_TOPICS,
    PATROL_POSITIONS,
    POSITIONS,
    TASK_UPDATES,
    Reason,
    Rejected,
    Tombstone,
    decode,
)
from geofence.records import AlertAction, Incident, LocationFix, PatrolPosition, TaskUpdate
from tests.unit.catalogue import (
    CIRCLE,
    INVALID,
    NOW,
    Invalid,
    action,
    ban,
    circle,
    encode,
    fix,
    incident,
    patrol,
    rect,
    task_update,
    ts,
)

POLICY = Policy()

# topic -> (key field, a valid value, the record type decode returns)
VALID: dict[str, tuple[str, dict[str, Any], type]] = {
    BANS: ("ban_id", ban(), CompiledBan),
    POSITIONS: ("person_id", fix(), LocationFix),
    PATROL_POSITIONS: ("unit_id", patrol(), PatrolPosition),
    INCIDENTS: ("incident_id", incident(), Incident),
    ACKS: ("alert_id", action(), AlertAction),
    TASK_UPDATES: ("task_id", task_update(), TaskUpdate),
}


def _decode(topic: str, value: Any, key: str | None = "", raw: bytes | None = None) -> object:
    """decode() with the record's own id as key unless `key` is given (None: no key)."""
    if key == "":
        key = value[VALID[topic][0]] if isinstance(value, dict) else None
    data = raw if raw is not None else encode(value)
    return decode(topic, key, data, NOW, POLICY)


def _with(value: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(value))
    out.update(changes)
    return out


def _without(value: dict[str, Any], field: str) -> dict[str, Any]:
    out = json.loads(json.dumps(value))
    del out[field]
    return out


def _raw_with(value: dict[str, Any], field: str, literal: str) -> bytes:
    """The value as JSON text with `field` set to a raw JSON literal (NaN, Infinity, ...)."""
    text = json.dumps(_with(value, **{field: "__X__"}))
    return text.replace('"__X__"', literal).encode()


def test_every_input_topic_is_in_the_table() -> None:
    assert set(VALID) == set(INPUT_TOPICS)


# --------------------------------------------------------------------- accepted
@pytest.mark.parametrize("topic", INPUT_TOPICS)
def test_valid_record_is_accepted(topic: str) -> None:
    _, value, kind = VALID[topic]
    assert isinstance(_decode(topic, value), kind)


@pytest.mark.parametrize("topic", INPUT_TOPICS)
def test_valid_record_without_a_key_is_accepted(topic: str) -> None:
    _, value, kind = VALID[topic]
    assert isinstance(_decode(topic, value, key=None), kind)


@pytest.mark.parametrize("topic", INPUT_TOPICS)
def test_unknown_fields_are_ignored(topic: str) -> None:
    _, value, kind = VALID[topic]
    extended = _with(value, vendor_ext={"nested": [1, {"x": None}]}, schema_version=9)
    got, plain = _decode(topic, extended), _decode(topic, value)
    assert isinstance(got, kind)
    if isinstance(got, CompiledBan):
        assert isinstance(plain, CompiledBan)
        got, plain = got.record, plain.record
    assert got == plain


def test_unknown_fields_inside_zones_are_ignored() -> None:
    f = json.loads(json.dumps(CIRCLE.feature))
    f["properties"]["colour"] = "red"
    f["geometry"]["bbox"] = [0, 0, 1, 1]
    f["id"] = 7
    got = _decode(BANS, ban(features=[f]))
    assert isinstance(got, CompiledBan)
    assert [z.zone_id for z in got.zones] == ["work"]


def test_optional_fields_may_be_absent_or_null() -> None:
    bare = _without(_without(fix(), "speed_mps"), "battery_pct")
    assert isinstance(_decode(POSITIONS, bare), LocationFix)
    assert isinstance(_decode(POSITIONS, _with(fix(), speed_mps=None)), LocationFix)
    open_ended = _with(ban(), valid_until=None, proximity_m=None, zones=None)
    assert isinstance(_decode(BANS, open_ended), CompiledBan)


def test_leading_whitespace_is_fine() -> None:
    assert isinstance(_decode(POSITIONS, fix(), raw=b" \n\t" + encode(fix())), LocationFix)


def test_tombstone() -> None:
    assert decode(BANS, "KF-2026-0042", None, NOW, POLICY) == Tombstone("KF-2026-0042")


def test_bans_are_not_dated_by_send_time() -> None:
    """A ban valid from next year is no record 'from the future'."""
    later = _with(ban(), valid_from=ts(NOW + timedelta(days=365)), valid_until=None)
    assert isinstance(_decode(BANS, later), CompiledBan)


@pytest.mark.parametrize(
    ("skew_s", "accepted"),
    [(0, True), (30, True), (30.001, False), (31, False), (3600, False)],
)
def test_future_skew_boundary(skew_s: float, accepted: bool) -> None:
    got = _decode(POSITIONS, fix(at=NOW + timedelta(seconds=skew_s)))
    if accepted:
        assert isinstance(got, LocationFix)
    else:
        assert isinstance(got, Rejected) and got.reason is Reason.future


def test_size_limit_boundary() -> None:
    """Exactly `max_record_bytes` is accepted; one byte more is too large."""
    base = encode(_with(fix(), pad=""))
    exact = encode(_with(fix(), pad="x" * (POLICY.max_record_bytes - len(base))))
    assert len(exact) == POLICY.max_record_bytes
    assert isinstance(_decode(POSITIONS, fix(), raw=exact), LocationFix)
    over = encode(_with(fix(), pad="x" * (POLICY.max_record_bytes - len(base) + 1)))
    assert len(over) == POLICY.max_record_bytes + 1
    got = _decode(POSITIONS, fix(), raw=over)
    assert isinstance(got, Rejected) and got.reason is Reason.too_large
    assert got.error == f"record of {len(over)} bytes exceeds {POLICY.max_record_bytes} bytes"


def test_bans_have_their_own_larger_size_limit() -> None:
    big = _with(ban(), pad="x" * (POLICY.max_record_bytes + 1000))
    assert isinstance(_decode(BANS, big), CompiledBan)
    huge = _with(ban(), pad="x" * POLICY.max_ban_record_bytes)
    got = _decode(BANS, huge)
    assert isinstance(got, Rejected) and got.reason is Reason.too_large


# --------------------------------------------------------------------- rejected
FIX = fix()
NULL = b"<a Kafka null value>"  # stands for `None` in the table (None there means: encode)
PNR_IDS = ["19850101-1234", "850101-1234", "850101+1234", "198501011234", "8501011234"]

REJECTED: list[Any] = [
    # (id, topic, value, raw bytes or None, key override, reason, error fragment)
    ("not UTF-8", POSITIONS, FIX, b'{"person_id": "P-\xff"}', "", Reason.decode, "not UTF-8"),
    (
        "latin-1 text",
        POSITIONS,
        FIX,
        '{"note": "Södertälje"}'.encode("latin-1"),
        "",
        Reason.decode,
        "not UTF-8",
    ),
    ("not JSON", POSITIONS, FIX, b'{"person_id": "P-7731",', "", Reason.decode, "invalid JSON"),
    ("JSON array", POSITIONS, FIX, encode([FIX]), "", Reason.decode, "not a JSON object"),
    ("JSON string", POSITIONS, FIX, b'"P-7731"', "", Reason.decode, "not a JSON object"),
    ("JSON null", POSITIONS, FIX, b"null", "", Reason.decode, "not a JSON object"),
    ("empty value", POSITIONS, FIX, b"", "", Reason.decode, "empty"),
    ("null value on positions", POSITIONS, FIX, NULL, "", Reason.decode, "tombstone"),
    (
        "missing lat",
        POSITIONS,
        _without(FIX, "lat"),
        None,
        "",
        Reason.schema,
        "lat: Field required",
    ),
    ("missing ts", POSITIONS, _without(FIX, "ts"), None, "", Reason.schema, "ts: Field required"),
    ("lat as a string", POSITIONS, _with(FIX, lat="59.1"), None, "", Reason.schema, "lat: "),
    (
        "accuracy as true",
        POSITIONS,
        _with(FIX, accuracy_m=True),
        None,
        "",
        Reason.schema,
        "accuracy_m: ",
    ),
    (
        "battery as false",
        POSITIONS,
        _with(FIX, battery_pct=False),
        None,
        "",
        Reason.schema,
        "battery_pct: ",
    ),
    (
        "person_id as a number",
        POSITIONS,
        _with(FIX, person_id=7731),
        None,
        None,
        Reason.schema,
        "person_id: ",
    ),
    ("lat NaN", POSITIONS, FIX, _raw_with(FIX, "lat", "NaN"), "", Reason.schema, "lat: "),
    ("lon Infinity", POSITIONS, FIX, _raw_with(FIX, "lon", "Infinity"), "", Reason.schema, "lon: "),
    (
        "accuracy -Infinity",
        POSITIONS,
        FIX,
        _raw_with(FIX, "accuracy_m", "-Infinity"),
        "",
        Reason.schema,
        "accuracy_m: ",
    ),
    (
        "accuracy 1e999 (overflows to inf)",
        POSITIONS,
        FIX,
        _raw_with(FIX, "accuracy_m", "1e999"),
        "",
        Reason.schema,
        "accuracy_m: ",
    ),
    ("lat 91", POSITIONS, _with(FIX, lat=91), None, "", Reason.schema, "lat: "),
    ("lat -90.0001", POSITIONS, _with(FIX, lat=-90.0001), None, "", Reason.schema, "lat: "),
    ("lon 180.5", POSITIONS, _with(FIX, lon=180.5), None, "", Reason.schema, "lon: "),
    (
        "accuracy 0",
        POSITIONS,
        _with(FIX, accuracy_m=0),
        None,
        "",
        Reason.schema,
        "accuracy_m: Input should be greater than 0",
    ),
    (
        "accuracy negative",
        POSITIONS,
        _with(FIX, accuracy_m=-3.0),
        None,
        "",
        Reason.schema,
        "accuracy_m: ",
    ),
    ("unknown source", POSITIONS, _with(FIX, source="drone"), None, "", Reason.schema, "source: "),
    (
        "naive timestamp",
        POSITIONS,
        _with(FIX, ts="2026-11-22T10:15:03"),
        None,
        "",
        Reason.schema,
        "ts: ",
    ),
    ("not a timestamp", POSITIONS, _with(FIX, ts="yesterday"), None, "", Reason.schema, "ts: "),
    (
        "timestamp 1 hour in the future",
        POSITIONS,
        _with(FIX, ts=ts(NOW + timedelta(hours=1))),
        None,
        "",
        Reason.future,
        "ts: in the future by more than the allowed skew (30 s)",
    ),
    (
        "over max_record_bytes",
        POSITIONS,
        _with(FIX, pad="x" * 70_000),
        None,
        "",
        Reason.too_large,
        "exceeds 65536 bytes",
    ),
    (
        "deeply nested arrays",
        POSITIONS,
        FIX,
        encode(FIX)[:-1] + b', "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "",
        Reason.decode,
        "invalid JSON",
    ),
    (
        "deeply nested objects",
        POSITIONS,
        FIX,
        encode(FIX)[:-1] + b', "deep": ' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}",
        "",
        Reason.decode,
        "invalid JSON",
    ),
    ("key mismatch", POSITIONS, FIX, None, "P-1102", Reason.key_mismatch, "person_id"),
    (
        "identifier with a space",
        POSITIONS,
        _with(FIX, device_id="EM 0091"),
        None,
        "",
        Reason.schema,
        "device_id: ",
    ),
    (
        "empty identifier",
        POSITIONS,
        _with(FIX, device_id=""),
        None,
        "",
        Reason.schema,
        "device_id: ",
    ),
    *[
        (
            f"personal identity number as person_id ({pnr})",
            POSITIONS,
            _with(FIX, person_id=pnr),
            None,
            "",
            Reason.schema,
            "person_id: Value error, identifier looks like a personal identity number",
        )
        for pnr in PNR_IDS
    ],
    (
        "personal identity number as device_id",
        POSITIONS,
        _with(FIX, device_id="19850101-1234"),
        None,
        "",
        Reason.schema,
        "device_id: ",
    ),
    (
        "personal identity number as restrained_person",
        BANS,
        _with(ban(), restrained_person="19850101-1234"),
        None,
        "",
        Reason.schema,
        "restrained_person: ",
    ),
    (
        "personal identity number as protected person",
        BANS,
        _with(ban(), protected_persons=["P-1", "19850101-1234"]),
        None,
        "",
        Reason.schema,
        "protected_persons.1: ",
    ),
    ("unknown ban kind", BANS, _with(ban(), kind="lifetime"), None, "", Reason.schema, "kind: "),
    (
        "unknown ban status",
        BANS,
        _with(ban(), status="paused"),
        None,
        "",
        Reason.schema,
        "status: ",
    ),
    (
        "valid_until before valid_from",
        BANS,
        _with(ban(), valid_from="2026-11-01T00:00:00Z", valid_until="2026-10-01T00:00:00Z"),
        None,
        "",
        Reason.schema,
        "valid_until must be after valid_from",
    ),
    (
        "valid_until equal to valid_from",
        BANS,
        _with(ban(), valid_from="2026-11-01T00:00:00Z", valid_until="2026-11-01T00:00:00Z"),
        None,
        "",
        Reason.schema,
        "valid_until must be after valid_from",
    ),
    (
        "naive valid_from",
        BANS,
        _with(ban(), valid_from="2026-11-01T00:00:00"),
        None,
        "",
        Reason.schema,
        "valid_from: ",
    ),
    ("version as a string", BANS, _with(ban(), version="3"), None, "", Reason.schema, "version: "),
    ("negative version", BANS, _with(ban(), version=-1), None, "", Reason.schema, "version: "),
    (
        "no protected person",
        BANS,
        _with(ban(), protected_persons=[]),
        None,
        "",
        Reason.schema,
        "protected_persons: ",
    ),
    (
        "restrained person also protected",
        BANS,
        _with(ban(), protected_persons=["P-7731"]),
        None,
        "",
        Reason.schema,
        "restrained_person is also listed as protected",
    ),
    ("proximity 0", BANS, _with(ban(), proximity_m=0), None, "", Reason.schema, "proximity_m: "),
    (
        "negative buffer",
        BANS,
        ban(features=[rect("home", 17.62, 59.19, 17.63, 59.2, buffer_m=-5)]),
        None,
        "",
        Reason.schema,
        "buffer_m",
    ),
    (
        "duplicate zone_id",
        BANS,
        ban(features=[CIRCLE.feature, CIRCLE.feature]),
        None,
        "",
        Reason.schema,
        "zone_id 'work' is not unique within the ban",
    ),
    (
        "geometry type LineString",
        BANS,
        ban(
            features=[
                {
                    "type": "Feature",
                    "properties": {"zone_id": "road"},
                    "geometry": {"type": "LineString", "coordinates": [[17.6, 59.1]]},
                }
            ]
        ),
        None,
        "",
        Reason.schema,
        "geometry.type",
    ),
    ("key mismatch on bans", BANS, ban(), None, "KF-1", Reason.key_mismatch, "ban_id"),
    ("null value without a key", BANS, None, NULL, None, Reason.decode, "tombstone"),
    ("null value with an empty key", BANS, None, NULL, "", Reason.decode, "tombstone"),
    (
        "patrol lat as a string",
        PATROL_POSITIONS,
        _with(patrol(), lat="59.195"),
        None,
        "",
        Reason.schema,
        "lat: ",
    ),
    (
        "patrol unknown status",
        PATROL_POSITIONS,
        _with(patrol(), status="lunch"),
        None,
        "",
        Reason.schema,
        "status: ",
    ),
    (
        "patrol from the future",
        PATROL_POSITIONS,
        _with(patrol(), ts=ts(NOW + timedelta(hours=1))),
        None,
        "",
        Reason.future,
        "ts: ",
    ),
    (
        "incident with lat but no lon",
        INCIDENTS,
        _with(incident(), lon=None),
        None,
        "",
        Reason.schema,
        "lat and lon must be given together",
    ),
    (
        "unknown incident kind",
        INCIDENTS,
        _with(incident(), kind="burglary"),
        None,
        "",
        Reason.schema,
        "kind: ",
    ),
    (
        "incident naive ts",
        INCIDENTS,
        _with(incident(), ts="2026-11-22T10:16:00"),
        None,
        "",
        Reason.schema,
        "ts: ",
    ),
    (
        "action unknown verb",
        ACKS,
        _with(action(), action="snooze"),
        None,
        "",
        Reason.schema,
        "action: ",
    ),
    (
        "action from the future",
        ACKS,
        _with(action(), ts=ts(NOW + timedelta(hours=1))),
        None,
        "",
        Reason.future,
        "ts: ",
    ),
    (
        "action by a personal identity number",
        ACKS,
        _with(action(), by="8501011234"),
        None,
        "",
        Reason.schema,
        "by: ",
    ),
]


@pytest.mark.parametrize(
    ("topic", "value", "raw", "key", "reason", "error"),
    [pytest.param(*row[1:], id=row[0]) for row in REJECTED],
)
def test_rejected(
    topic: str,
    value: Any,
    raw: bytes | None,
    key: str | None,
    reason: Reason,
    error: str,
) -> None:
    if raw is None:
        raw = encode(value)
    elif raw is NULL:
        raw = None
    if key == "" and value is not None:
        key = value.get(VALID[topic][0]) if isinstance(value, dict) else None
        key = key if isinstance(key, str) else None
    got = decode(topic, key, raw, NOW, POLICY)
    assert isinstance(got, Rejected), got
    assert got.reason is reason
    assert error in got.error
    assert "\n" not in got.error, "dead-letter errors are one line"


def test_unknown_topic() -> None:
    got = decode("positions-v2", "P-7731", encode(FIX), NOW, POLICY)
    assert isinstance(got, Rejected) and got.reason is Reason.unknown_topic


@pytest.mark.parametrize("inv", [pytest.param(inv, id=inv.name) for inv in INVALID])
def test_bad_zone_geometry_rejects_the_ban_naming_the_zone(inv: Invalid) -> None:
    zone_id = inv.feature["properties"]["zone_id"]
    good = circle("companion", 59.2, 17.64, 300.0)
    got = _decode(BANS, ban(features=[good, inv.feature]))
    assert isinstance(got, Rejected)
    assert got.reason is Reason.geometry
    assert got.error.startswith(f"zones: zone {zone_id!r}: ")
    assert inv.message in got.error


# --------------------------------------------------------------------- never raises
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(INPUT_TOPICS), st.one_of(st.none(), st.text(max_size=20)), st.binary())
def test_decode_never_raises_on_bytes(topic: str, key: str | None, raw: bytes) -> None:
    got = decode(topic, key, raw, NOW, POLICY)
    assert isinstance(
        got,
        Rejected | Tombstone | CompiledBan | LocationFix | PatrolPosition | Incident | AlertAction,
    )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(INPUT_TOPICS), st.data())
def test_decode_never_raises_on_mutated_records(topic: str, data: st.DataObject) -> None:
    """The valid record with one field replaced by an arbitrary JSON value (NaN included)."""
    key_field, value, _ = VALID[topic]
    field = data.draw(st.sampled_from(sorted(value)))
    mutated = _with(value, **{field: data.draw(_JSON)})
    raw = json.dumps(mutated).encode()
    got = decode(topic, value[key_field], raw, NOW, POLICY)
    if isinstance(got, Rejected):
        assert got.reason in (Reason.schema, Reason.key_mismatch, Reason.geometry, Reason.decode)
        assert got.error


# ------------------------------------------------------------------ contract v2 task updates
@pytest.mark.parametrize(
    "change",
    [
        {"action": "arrive"},
        {"role": "Patrol!"},
        {"consent_to_share": "yes"},
        {"outcome": 3},
        {"ts": "2026-11-22T10:17:00"},
        {"by": "19800101-1234"},
    ],
)
def test_a_malformed_task_update_is_a_schema_dead_letter(change: dict[str, Any]) -> None:
    got = _decode(TASK_UPDATES, _with(task_update(), **change))
    assert isinstance(got, Rejected) and got.reason is Reason.schema


def test_a_task_updates_note_never_reaches_its_dead_letter() -> None:
    from geofence.decoding import without_note

    raw = encode(task_update(note="he said where she lives"))
    assert b"where she lives" not in without_note(raw)
    assert json.loads(without_note(raw)) == _without(task_update(), "note")
    assert without_note(encode(_without(task_update(), "note"))) == b""
    assert without_note(b"not json") == b""


@pytest.mark.parametrize(
    "raw",
    [
        b'{"task_id": "t-1", "note": "victim hides at sister\'s flat, Storgatan 5",}',  # JSON
        b'{"task_id": "t-1", "note": "victim hides at sister\'s flat, Storgatan 5 \xff"}',  # UTF-8
        b'["t-1", "victim hides at sister\'s flat, Storgatan 5"]',  # no object
    ],
)
def test_an_unparseable_task_update_keeps_nothing_in_its_dead_letter(raw: bytes) -> None:
    """A note may be anywhere in bytes that cannot be parsed: its dead letter keeps none of
    them (in clear or in base64), and says why."""
    import base64

    from alerts.engine import Engine, Incoming
    from config.policy import load_policy

    engine = Engine(load_policy(), event_clock=True)
    [(topic, _key, value)] = engine.handle(
        Incoming(TASK_UPDATES, "t-1", raw), datetime(2026, 12, 1, tzinfo=UTC)
    ).outputs
    assert topic == "dead-letters" and value is not None
    assert value["raw"] == "" and value["raw_redacted"] == "unparseable"
    shown = json.dumps(value) + base64.b64decode(value["raw"]).decode("latin-1")
    assert "Storgatan" not in shown and "sister" not in shown
