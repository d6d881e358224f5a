"""`banwatch replay` as a user runs it: exit codes, messages naming line and field, policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.policy import PolicyError, load_policy
from streams.cli import main

BAN = {
    "ban_id": "KF-2026-0042",
    "version": 3,
    "kind": "extended",
    "status": "active",
    "restrained_person": "P-7731",
    "protected_persons": ["P-1102"],
    "valid_from": "2026-11-01T00:00:00Z",
    "valid_until": "2027-05-01T00:00:00Z",
    "electronic_monitoring": True,
    "proximity_m": 500,
    "zones": {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"zone_id": "home", "buffer_m": 50},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [17.62, 59.19],
                            [17.63, 59.19],
                            [17.63, 59.20],
                            [17.62, 59.20],
                            [17.62, 59.19],
                        ]
                    ],
                },
            }
        ],
    },
}
FIX = {
    "person_id": "P-7731",
    "device_id": "EM-0091",
    "ts": "2026-11-22T10:15:03Z",
    "lat": 59.195,
    "lon": 17.625,
    "accuracy_m": 8.5,
    "source": "ankle_tag",
}


def write(path: Path, rows: list[object]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict], str]:
    code = main(["replay", *args, "--now", "2026-11-23T00:00:00Z"])
    cap = capsys.readouterr()
    return code, [json.loads(line) for line in cap.out.splitlines()], cap.err


def test_breach_fix_gives_priority_one_alert(tmp_path: Path, capsys) -> None:
    bans = write(tmp_path / "b.jsonl", [BAN])
    events = write(tmp_path / "e.jsonl", [{"topic": "positions", "key": "P-7731", "value": FIX}])
    code, out, _ = run(capsys, "--bans", bans, "--events", events)
    assert code == 0
    alerts = [o["value"] for o in out if o["topic"] == "alerts"]
    assert [(a["kind"], a["priority"], a["confidence"], a["state"]) for a in alerts] == [
        ("zone_breach", 1, "confirmed", "open")
    ]
    assert alerts[0]["ban_id"] == "KF-2026-0042" and alerts[0]["zone_id"] == "home"
    assert alerts[0]["contract_version"] == 2


def test_bans_as_json_array(tmp_path: Path, capsys) -> None:
    (tmp_path / "b.json").write_text(json.dumps([BAN]))
    events = write(tmp_path / "e.jsonl", [{"topic": "positions", "key": None, "value": FIX}])
    code, out, _ = run(capsys, "--bans", str(tmp_path / "b.json"), "--events", events)
    assert code == 0 and any(o["topic"] == "alerts" for o in out)


def test_invalid_ban_exits_2_naming_line_and_field(tmp_path: Path, capsys) -> None:
    bad = dict(BAN, ban_id="KF-2", proximity_m="500")
    bans = write(tmp_path / "b.jsonl", [BAN, bad])
    events = write(tmp_path / "e.jsonl", [])
    code, out, err = run(capsys, "--bans", bans, "--events", events)
    assert code == 2 and out == []
    assert "line 2" in err and "KF-2" in err and "proximity_m" in err


def test_invalid_geometry_exits_2(tmp_path: Path, capsys) -> None:
    bad = json.loads(json.dumps(BAN))
    bad["zones"]["features"][0]["geometry"]["coordinates"] = [
        [[17.62, 59.19], [17.63, 59.20], [17.63, 59.19], [17.62, 59.20], [17.62, 59.19]]
    ]
    code, _, err = run(
        capsys,
        "--bans",
        write(tmp_path / "b.jsonl", [bad]),
        "--events",
        write(tmp_path / "e.jsonl", []),
    )
    assert code == 2 and "line 1" in err and "home" in err and "Self-intersection" in err


def test_unreadable_events_line_exits_2(tmp_path: Path, capsys) -> None:
    bans = write(tmp_path / "b.jsonl", [BAN])
    ev = tmp_path / "e.jsonl"
    ev.write_text(json.dumps({"topic": "positions", "value": FIX}) + "\n{broken\n")
    code, _, err = run(capsys, "--bans", bans, "--events", str(ev))
    assert code == 2 and "line 2" in err


def test_unknown_topic_exits_2(tmp_path: Path, capsys) -> None:
    code, _, err = run(
        capsys,
        "--bans",
        write(tmp_path / "b.jsonl", [BAN]),
        "--events",
        write(tmp_path / "e.jsonl", [{"topic": "alerts", "value": {}}]),
    )
    assert code == 2 and "topic" in err


def test_bad_record_is_a_dead_letter_not_a_file_error(tmp_path: Path, capsys) -> None:
    events = write(
        tmp_path / "e.jsonl",
        [
            {"topic": "positions", "key": "P-7731", "value": dict(FIX, lat=91)},
            {"topic": "positions", "key": "P-7731", "value": "{oops"},
            {"topic": "positions", "key": "P-7731", "value": FIX},
        ],
    )
    code, out, _ = run(capsys, "--bans", write(tmp_path / "b.jsonl", [BAN]), "--events", events)
    assert code == 0
    dls = [o["value"] for o in out if o["topic"] == "dead-letters"]
    assert [(d["reason"], d["offset"]) for d in dls] == [("schema", 1), ("decode", 2)]
    assert dls[0]["error"].startswith("lat:")
    assert any(o["topic"] == "alerts" for o in out)


def test_future_record_rejected_relative_to_now(tmp_path: Path, capsys) -> None:
    events = write(
        tmp_path / "e.jsonl",
        [{"topic": "positions", "key": None, "value": dict(FIX, ts="2026-11-23T01:00:00Z")}],
    )
    code, out, _ = run(capsys, "--bans", write(tmp_path / "b.jsonl", [BAN]), "--events", events)
    assert code == 0 and [o["value"]["reason"] for o in out] == ["future"]


def test_broken_policy_file_is_one_clear_line(tmp_path: Path, capsys) -> None:
    pol = tmp_path / "p.toml"
    pol.write_text("exit_fixes = 0\n")
    code, _, err = run(
        capsys,
        "--bans",
        write(tmp_path / "b.jsonl", [BAN]),
        "--events",
        write(tmp_path / "e.jsonl", []),
        "--policy",
        str(pol),
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "exit_fixes" in err


@pytest.mark.parametrize(
    "text, field",
    [
        ("approach_m = -1\n", "approach_m"),
        ("nonsense = 1\n", "nonsense"),
        ("ack_sla_s = \n", "TOML"),
    ],
)
def test_policy_errors(tmp_path: Path, text: str, field: str) -> None:
    p = tmp_path / "p.toml"
    p.write_text(text)
    with pytest.raises(PolicyError, match=field):
        load_policy(p)


def test_policy_override_applies(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text("ack_sla_s = 30\n")
    assert load_policy(p).ack_sla_s == 30 and load_policy().ack_sla_s == 60
