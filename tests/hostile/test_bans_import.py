"""`banwatch bans import` refuses a file with any unusable zone, naming line, ban, zone and
defect, and publishes nothing from it: a registry half-applied would protect some persons and
silently not others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main
from streams.kafka.blocking import follow
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.kafka.topics import ensure_topics
from tests.unit.catalogue import INVALID, Invalid, circle
from tests.unit.catalogue import ban as contract_ban

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _bans(n: int) -> list[dict[str, object]]:
    return [
        contract_ban(
            f"KF-IMP{i}",
            features=[circle("home", 59.2 + i * 0.01, 17.6, 150.0)],
            restrained_person=f"P-IMP{i}",
            protected_persons=[f"P-IMP{i}V"],
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("inv", [pytest.param(inv, id=inv.name) for inv in INVALID])
def test_every_unusable_zone_is_named_with_its_defect(
    inv: Invalid,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BANWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never reached
    bans = _bans(3)
    bad = _bans(1)[0] | {"ban_id": "KF-BAD"}
    bad["zones"] = {"type": "FeatureCollection", "features": [inv.feature]}
    path = tmp_path / "bans.jsonl"
    path.write_text("\n".join(json.dumps(b) for b in [*bans, bad]) + "\n")
    assert main(["bans", "import", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    zone = inv.feature["properties"]["zone_id"]
    assert err.startswith(f"banwatch: {path} line 4 (ban KF-BAD): zones: zone {zone!r}: "), err
    assert inv.message in err, err
    assert len(err.splitlines()) == 1


def test_a_file_with_one_bad_ban_at_the_end_publishes_nothing(tmp_path: Path) -> None:
    """The last of 50 bans is a bow tie: the 49 before it must not reach the topic either."""
    with EmbeddedBroker(free_port()) as broker:
        prefix = "imp."
        ensure_topics(broker.bootstrap, prefix)
        bans = _bans(50)
        bans[-1]["zones"] = {
            "type": "FeatureCollection",
            "features": [next(i.feature for i in INVALID if "bowtie" in i.name)],
        }
        path = tmp_path / "bans.json"
        path.write_text(json.dumps(bans, indent=1))  # a JSON array over many lines
        env = {
            **os.environ,
            "BANWATCH_KAFKA_BOOTSTRAP": broker.bootstrap,
            "BANWATCH_TOPIC_PREFIX": prefix,
        }
        r = subprocess.run(
            [sys.executable, "-m", "streams.cli", "bans", "import", str(path), "--by", "op-17"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2, r.stderr
        assert "line 50 (ban KF-IMP49): zones: zone 'bowtie'" in r.stderr
        assert "Self-intersection" in r.stderr and "59." not in r.stderr  # no coordinates
        for topic in ("contact-bans", "audit"):
            assert list(follow(broker.bootstrap, prefix + topic, True, idle_timeout_s=0.5)) == []

        path.write_text(json.dumps(bans[:-1]))  # the same file without it: all 49 go out
        r = subprocess.run(
            [sys.executable, "-m", "streams.cli", "bans", "import", str(path), "--by", "op-17"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        published = list(
            follow(broker.bootstrap, prefix + "contact-bans", True, idle_timeout_s=0.5)
        )
        assert len(published) == 49
