"""Hostile records for every input topic, by category, each with the verdict it must get.

Every category is a function `(rng, topic, now) -> (key, raw)` built on a valid record of the
topic; `CATEGORIES` says which topics it applies to and which `Reason`s are acceptable (`None`:
the record is valid and must not be dead-lettered, e.g. unknown extra fields). The same
functions feed the hypothesis properties (with a hypothesis-driven `Random`) and the
10,000-record run against a real worker (with a seeded one), so both see the same attacks.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from config.policy import Policy
from geofence.decoding import ACKS, BANS, INCIDENTS, PATROL_POSITIONS, POSITIONS, Reason
from tests.unit.catalogue import INVALID, circle

Json = dict[str, Any]
ALL = (BANS, POSITIONS, PATROL_POSITIONS, INCIDENTS, ACKS)
KEY_FIELD = {
    BANS: "ban_id",
    POSITIONS: "person_id",
    PATROL_POSITIONS: "unit_id",
    INCIDENTS: "incident_id",
    ACKS: "alert_id",
}
REQUIRED = {
    BANS: (
        "ban_id",
        "version",
        "kind",
        "status",
        "restrained_person",
        "protected_persons",
        "valid_from",
    ),
    POSITIONS: ("person_id", "device_id", "ts", "lat", "lon", "accuracy_m", "source"),
    PATROL_POSITIONS: ("unit_id", "ts", "lat", "lon", "status"),
    INCIDENTS: ("incident_id", "ts", "kind"),
    ACKS: ("alert_id", "action", "by", "ts"),
}
NUMERIC = {
    BANS: ("version", "proximity_m"),
    POSITIONS: ("lat", "lon", "accuracy_m", "speed_mps", "battery_pct"),
    PATROL_POSITIONS: ("lat", "lon"),
    INCIDENTS: ("lat", "lon"),
    ACKS: (),
}
ENUMS = {
    BANS: ("kind", "status"),
    POSITIONS: ("source",),
    PATROL_POSITIONS: ("status",),
    INCIDENTS: ("kind",),
    ACKS: ("action",),
}
TIMESTAMP = {
    BANS: "valid_from",
    POSITIONS: "ts",
    PATROL_POSITIONS: "ts",
    INCIDENTS: "ts",
    ACKS: "ts",
}
POLICY = Policy()


def limit_of(topic: str, policy: Policy = POLICY) -> int:
    return policy.max_ban_record_bytes if topic == BANS else policy.max_record_bytes


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id(rng: random.Random, prefix: str) -> str:
    return f"{prefix}-H{rng.randrange(10**6)}"


def valid(rng: random.Random, topic: str, now: datetime) -> Json:
    """A valid record of `topic` concerning nobody the other tests use (persons P-H...)."""
    at = rfc3339(now - timedelta(seconds=rng.uniform(0, 60)))
    lat, lon = rng.uniform(55.0, 69.0), rng.uniform(11.0, 24.0)
    if topic == POSITIONS:
        return {
            "person_id": _id(rng, "P"),
            "device_id": _id(rng, "EM"),
            "ts": at,
            "lat": lat,
            "lon": lon,
            "accuracy_m": rng.uniform(1, 50),
            "source": rng.choice(["ankle_tag", "victim_device", "phone"]),
            "speed_mps": rng.uniform(0, 3),
            "battery_pct": rng.randint(0, 100),
        }
    if topic == PATROL_POSITIONS:
        return {
            "unit_id": f"HX-{rng.randrange(20)}",  # few units: the fleet is not a hostile's
            "ts": at,
            "lat": lat,
            "lon": lon,
            "status": rng.choice(["available", "busy", "off_duty"]),
            "capabilities": ["patrol"],
        }
    if topic == INCIDENTS:
        return {
            "incident_id": _id(rng, "I"),
            "ts": at,
            "kind": rng.choice(["tip", "threat", "sos"]),
            "ban_id": None,
            "person_id": _id(rng, "P"),
            "lat": lat,
            "lon": lon,
            "source": "112",
            "note": "free text",
        }
    if topic == ACKS:
        return {
            "alert_id": f"{rng.getrandbits(128):032x}",
            "action": rng.choice(["acknowledge", "resolve"]),
            "by": "op-17",
            "ts": at,
            "note": "on it",
        }
    ban_id = _id(rng, "KF")
    return {
        "ban_id": ban_id,
        "version": 1,
        "kind": "basic",
        "status": "active",
        "restrained_person": _id(rng, "P") + "R",
        "protected_persons": [_id(rng, "P") + "V"],
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": "2028-01-01T00:00:00Z",
        "zones": {"type": "FeatureCollection", "features": [circle("home", lat, lon, 200.0)]},
    }


def _enc(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _keyed(topic: str, value: Json) -> str:
    return str(value[KEY_FIELD[topic]])


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(8 if depth < 4 else 5)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.randint(-(2**70), 2**70)
    if pick == 3:
        return rng.uniform(-1e300, 1e300)
    if pick == 4:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(30)))
    if pick in (5, 6):
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": _json_value(rng, depth + 1) for i in range(rng.randrange(4))}


Built = tuple[str | None, bytes | None]


# ------------------------------------------------------------------------- categories
def random_bytes(rng: random.Random, topic: str, now: datetime) -> Built:
    return _id(rng, "P"), rng.randbytes(rng.randrange(3000))


def not_an_object(rng: random.Random, topic: str, now: datetime) -> Built:
    raw = rng.choice([b"[]", b"null", b"42", b'"text"', b"true", b"[{}]", b"  ", b"\xef\xbb\xbf{}"])
    return _id(rng, "P"), raw


def truncated_json(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    raw = _enc(v)
    return _keyed(topic, v), raw[: rng.randrange(1, len(raw) - 1)]


def wrong_type(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    key = _keyed(topic, v)
    field = rng.choice(sorted(v))
    old = v[field]
    if isinstance(old, bool):
        bad: Any = rng.choice([1, "true", [], {}])
    elif isinstance(old, int | float):
        bad = rng.choice([str(old), [old], {"v": old}, True])
    elif isinstance(old, str):
        bad = rng.choice([12345, 1.5, ["x"], {"$gt": ""}, False])
    elif isinstance(old, list):
        bad = rng.choice(["x", {"0": "x"}, 7])
    elif isinstance(old, dict):
        bad = rng.choice(["x", [], 3])
    else:  # an optional field that is null in the valid record
        bad = rng.choice([{"$ne": None}, [[]]])
    v[field] = bad
    return key, _enc(v)


def missing_field(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    key = _keyed(topic, v)
    del v[rng.choice(REQUIRED[topic])]
    return key, _enc(v)


def extra_fields(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    for i in range(rng.randrange(1, 6)):
        v[f"x_extra_{i}"] = _json_value(rng)
    return _keyed(topic, v), _enc(v)


def nan_or_infinity(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    field = rng.choice(NUMERIC[topic] or (TIMESTAMP[topic],))
    v[field] = "__X__"
    literal = rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
    return _keyed(topic, v), _enc(v).replace(b'"__X__"', literal.encode())


def huge_string(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    field = rng.choice([f for f in sorted(v) if isinstance(v[f], str)])
    key = _keyed(topic, v)
    v[field] = rng.choice("AÅ\u202e") * rng.randrange(10_001, 50_000)  # above every max_length
    return key, _enc(v)


def deep_nesting(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    v["x_deep"] = "__X__"
    depth = rng.randrange(300, 20_000)
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    nested = opener * depth + b"1" + closer * depth
    return _keyed(topic, v), _enc(v).replace(b'"__X__"', nested)


def too_large(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    limit = limit_of(topic)
    size = rng.randrange(limit + 1, limit + limit // 2)
    v["x_pad"] = ""
    base = len(_enc(v))
    v["x_pad"] = "p" * max(0, size - base)
    return _keyed(topic, v), _enc(v)


def naive_timestamp(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    v[TIMESTAMP[topic]] = (now - timedelta(seconds=5)).replace(tzinfo=None).isoformat()
    return _keyed(topic, v), _enc(v)


def far_future(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    ahead = timedelta(seconds=rng.uniform(POLICY.max_future_skew_s + 60, 3e9))
    v[TIMESTAMP[topic]] = rfc3339(now + ahead)
    return _keyed(topic, v), _enc(v)


def impossible_timestamp(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    v[TIMESTAMP[topic]] = rng.choice(
        ["+10000-01-01T00:00:00Z", "2026-13-45T25:61:00Z", "yesterday", "", "1e10", "0000-00-00"]
    )
    return _keyed(topic, v), _enc(v)


def unknown_enum(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    v[rng.choice(ENUMS[topic])] = rng.choice(["lifetime", "EXTENDED", "", "basic ", "ärlig"])
    return _keyed(topic, v), _enc(v)


def out_of_range(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    choices = {
        POSITIONS: [("lat", 90.0001), ("lon", -180.5), ("accuracy_m", 0), ("battery_pct", 101)],
        PATROL_POSITIONS: [("lat", -91), ("lon", 181)],
        INCIDENTS: [("lat", 1000), ("lon", None)],  # lon null while lat is given
        ACKS: [("alert_id", ""), ("by", "x" * 65)],
        BANS: [("version", -1), ("proximity_m", 0), ("protected_persons", [])],
    }[topic]
    key = _keyed(topic, v)
    field, bad = rng.choice(choices)
    v[field] = bad
    return key, _enc(v)


def invalid_geometry(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    bad = json.loads(json.dumps(rng.choice(INVALID).feature))
    bad["properties"]["zone_id"] = "broken"  # unique: the geometry is what is wrong
    v["zones"]["features"].append(bad)
    return _keyed(topic, v), _enc(v)


def unknown_geometry_type(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    geom = v["zones"]["features"][0]["geometry"]
    geom["type"] = rng.choice(["LineString", "GeometryCollection", "polygon", ""])
    return _keyed(topic, v), _enc(v)


def key_mismatch(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    return _keyed(topic, v) + "-other", _enc(v)


def huge_key(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    return rng.choice("KÖ") * rng.randrange(1_000, 200_000), _enc(v)


def personal_number(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    field = {ACKS: "by"}.get(topic, KEY_FIELD[topic])
    v[field] = rng.choice(["198501011234", "850101-1234", "20850101+1234"])
    return _keyed(topic, v), _enc(v)  # the key names the number too, as a careless sender's


def control_characters(rng: random.Random, topic: str, now: datetime) -> Built:
    v = valid(rng, topic, now)
    field = {ACKS: "by"}.get(topic, KEY_FIELD[topic])
    v[field] = "P-1" + rng.choice(["\x00", " ", "\n", "\x7f", "\u0085"]) + "2"
    return _keyed(topic, v), _enc(v)


def null_value(rng: random.Random, topic: str, now: datetime) -> Built:
    # on contact-bans a null value with a key is a tombstone (valid): here with an empty one
    return ("" if topic == BANS else _id(rng, "P")), None


Category = Callable[[random.Random, str, datetime], Built]
SCHEMA = frozenset({Reason.schema})


@dataclass(frozen=True)
class Spec:
    build: Category
    topics: tuple[str, ...]
    expect: frozenset[Reason] | None  # None: valid, must not be dead-lettered


CATEGORIES: dict[str, Spec] = {
    "random bytes": Spec(random_bytes, ALL, frozenset({Reason.decode, Reason.schema})),
    "not a JSON object": Spec(not_an_object, ALL, frozenset({Reason.decode})),
    "truncated JSON": Spec(truncated_json, ALL, frozenset({Reason.decode})),
    "wrong type": Spec(wrong_type, ALL, SCHEMA),
    "missing field": Spec(missing_field, ALL, SCHEMA),
    "extra fields": Spec(extra_fields, ALL, None),
    "NaN or infinity": Spec(nan_or_infinity, ALL, SCHEMA),
    "huge string": Spec(huge_string, ALL, frozenset({Reason.schema, Reason.too_large})),
    "deep nesting": Spec(deep_nesting, ALL, frozenset({Reason.decode, Reason.too_large})),
    "larger than the limit": Spec(too_large, ALL, frozenset({Reason.too_large})),
    "naive timestamp": Spec(naive_timestamp, ALL, SCHEMA),
    "far-future timestamp": Spec(
        far_future, (POSITIONS, PATROL_POSITIONS, INCIDENTS, ACKS), frozenset({Reason.future})
    ),
    "impossible timestamp": Spec(impossible_timestamp, ALL, SCHEMA),
    "unknown enum value (ban kind, source, ...)": Spec(unknown_enum, ALL, SCHEMA),
    "out of range": Spec(out_of_range, ALL, SCHEMA),
    "invalid geometry": Spec(invalid_geometry, (BANS,), frozenset({Reason.geometry})),
    "unknown geometry type": Spec(unknown_geometry_type, (BANS,), SCHEMA),
    "key names another object": Spec(key_mismatch, ALL, frozenset({Reason.key_mismatch})),
    "huge key": Spec(huge_key, ALL, frozenset({Reason.key_mismatch})),
    "personal identity number": Spec(personal_number, ALL, SCHEMA),
    "control characters in an id": Spec(control_characters, ALL, SCHEMA),
    "null value": Spec(null_value, ALL, frozenset({Reason.decode})),
}


@dataclass(frozen=True)
class Hostile:
    category: str
    topic: str
    key: str | None
    raw: bytes | None
    expect: frozenset[Reason] | None


def make(rng: random.Random, category: str, topic: str, now: datetime) -> Hostile:
    spec = CATEGORIES[category]
    key, raw = spec.build(rng, topic, now)
    return Hostile(category, topic, key, raw, spec.expect)


def pairs() -> list[tuple[str, str]]:
    """Every (category, topic) the catalogue covers."""
    return [(name, t) for name, spec in CATEGORIES.items() for t in spec.topics]
