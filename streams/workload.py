"""A synthetic but realistic workload for `banwatch bench`: bans spread over Sweden.

Each ban has a polygon home zone (about 200 m across, 50 m buffer) and a circular work zone
(300 m); a share of bans watch proximity. Restrained persons move around their bans' zones,
most of the time outside, sometimes inside; protected persons carry a device. Deterministic
for a given seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Site:
    ban_id: str
    restrained: str
    protected: str
    lat: float
    lon: float


def sites(n: int, seed: int = 7) -> list[Site]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        # Sweden's populated band, roughly: lat 55.4-63.5, lon 12.5-19.0
        out.append(
            Site(f"KF-B{i:06d}", f"P-R{i:06d}", f"P-V{i:06d}",
                 rnd.uniform(55.4, 63.5), rnd.uniform(12.5, 19.0))
        )
    return out


def ban(site: Site, proximity: bool) -> dict[str, object]:
    d = 0.001  # ~110 m north-south
    lat, lon = site.lat, site.lon
    home = [[lon - 2 * d, lat - d], [lon + 2 * d, lat - d], [lon + 2 * d, lat + d],
            [lon - 2 * d, lat + d], [lon - 2 * d, lat - d]]
    return {
        "ban_id": site.ban_id, "version": 1, "kind": "extended", "status": "active",
        "restrained_person": site.restrained, "protected_persons": [site.protected],
        "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-12-31T00:00:00Z",
        "electronic_monitoring": True, "proximity_m": 500 if proximity else None,
        "zones": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"zone_id": "home", "buffer_m": 50},
             "geometry": {"type": "Polygon", "coordinates": [home]}},
            {"type": "Feature", "properties": {"zone_id": "work", "radius_m": 300},
             "geometry": {"type": "Point", "coordinates": [lon + 0.03, lat + 0.01]}},
        ]},
    }


def bans(all_sites: list[Site]) -> list[bytes]:
    return [json.dumps(ban(s, i % 4 == 0)).encode() for i, s in enumerate(all_sites)]


def fixes(
    all_sites: list[Site], count: int, seed: int = 11, inside_share: float = 0.01,
    protected_share: float = 0.2, start: datetime = T0, rate_per_s: float = 10_000.0,
) -> list[tuple[str, bytes]]:
    """(person_id, JSON) fixes in event-time order, `rate_per_s` apart on average."""
    rnd = random.Random(seed)
    out = []
    step = timedelta(seconds=1 / rate_per_s)
    for k in range(count):
        s = all_sites[rnd.randrange(len(all_sites))]
        protected = rnd.random() < protected_share
        if rnd.random() < inside_share:
            dlat, dlon = rnd.uniform(-0.0005, 0.0005), rnd.uniform(-0.001, 0.001)
        else:
            dlat, dlon = rnd.uniform(-0.05, 0.05), rnd.uniform(-0.08, 0.08)
        person = s.protected if protected else s.restrained
        value = {
            "person_id": person,
            "device_id": ("VD-" if protected else "EM-") + person[2:],
            "ts": _ts(start + step * k),
            "lat": round(s.lat + dlat, 6), "lon": round(s.lon + dlon, 6),
            "accuracy_m": round(rnd.uniform(4, 25), 1),
            "source": "victim_device" if protected else "ankle_tag",
        }
        out.append((person, json.dumps(value).encode()))
    return out
