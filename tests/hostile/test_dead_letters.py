"""A dead letter always fits in one Kafka message, whatever the rejected record looked like.

The worker's producer refuses a message of `MAX_MESSAGE` bytes or more, and faust then stops
sending anything at all: one hostile record would silence every alert after it. The raw record
is therefore cut to a budget measured as it is encoded (JSON escapes of control characters
expand a byte to six), and the key and the error to a few hundred characters.
"""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine import Incoming, dead_letter
from geofence.decoding import Reason, Rejected
from streams.kafka.blocking import encode_json

#: faust's `producer_max_request_size` default; aiokafka checks key + value against it.
MAX_MESSAGE = 1_000_000
MIB = 1024 * 1024


def _size(out: tuple[str, str | None, object]) -> int:
    _, key, value = out
    return len(encode_json(value)) + (len(key.encode("utf-8")) if key is not None else 0)


def _letter(key: str | None, raw: bytes, error: str = "schema: bad", limit: int = MIB) -> object:
    msg = Incoming("positions", key, raw, 1, 42)
    return dead_letter(msg, Rejected(Reason.schema, error), None, limit)


PATHOLOGICAL = {
    "control characters (6 bytes each once escaped)": b"\x01" * 900_000,
    "quotes and backslashes (2 bytes each)": b'"\\' * 500_000,
    "binary (base64: 4 bytes per 3)": bytes(range(256)) * 4000,
    "a ban-sized JSON text": json.dumps({"zones": [[17.6, 59.2]] * 70_000}).encode(),
    "just under the ban limit": b"a" * (MIB - 1),
}


def test_pathological_records_give_dead_letters_that_fit_in_a_message() -> None:
    for name, raw in PATHOLOGICAL.items():
        out = _letter("P-1", raw)
        assert _size(out) < MAX_MESSAGE, name
        value = out[2]
        assert isinstance(value, dict)
        assert value["raw_truncated"] is True, name


def test_a_huge_key_and_a_huge_error_are_cut() -> None:
    out = _letter("K" * 900_000, b"{}", error="key " + "K" * 900_000)
    assert _size(out) < MAX_MESSAGE
    _, key, value = out
    assert isinstance(value, dict) and key is not None
    assert len(key) <= 256 and value["key"] == key and value["key_truncated"] is True
    assert len(value["error"]) <= 1000


def test_ordinary_records_are_kept_whole() -> None:
    raw = json.dumps({"person_id": "P-1", "lat": "north", "note": 'ÅÄÖ "quoted"'}).encode()
    _, key, value = _letter("P-1", raw)
    assert isinstance(value, dict)
    assert value["raw"] == raw.decode() and key == "P-1" and value["key"] == "P-1"
    assert "raw_truncated" not in value and "key_truncated" not in value
    binary = b"\xff\xfe\x00 binary"
    _, _, value = _letter(None, binary)
    assert isinstance(value, dict)
    assert base64.b64decode(value["raw"]) == binary and value["raw_encoding"] == "base64"


_RAW = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=2000).map(lambda s: s.encode("utf-8")),
    st.tuples(
        st.sampled_from([b"\x01", b'"', b"a", "Ö".encode(), b"\xff"]), st.integers(0, 2 * MIB)
    ).map(lambda t: t[0] * (t[1] // len(t[0]))),
)


@settings(max_examples=60, deadline=None)
@given(
    key=st.one_of(
        st.none(), st.text(max_size=300), st.text(min_size=1, max_size=5).map(lambda s: s * 60_000)
    ),
    raw=_RAW,
    limit=st.sampled_from([4096, 65536, MIB]),
)
def test_every_dead_letter_fits_and_keeps_a_prefix_of_the_record(
    key: str | None, raw: bytes, limit: int
) -> None:
    out = _letter(key, raw, limit=limit)
    assert _size(out) < MAX_MESSAGE
    value = out[2]
    assert isinstance(value, dict)
    if value.get("raw_encoding") == "base64":
        kept = base64.b64decode(value["raw"])
    else:
        kept = value["raw"].encode("utf-8")
    assert raw.startswith(kept)
    assert value.get("raw_truncated", False) is (len(kept) < len(raw))
    if len(raw) <= min(limit, 4096) and value.get("raw_encoding") != "base64":
        assert kept == raw  # small text is never cut
