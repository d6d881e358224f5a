"""A synthetic but realistic workload for `banwatch bench`: bans spread over Sweden.

Each ban has a polygon home zone (about 450 x 220 m, 50 m buffer) and a circular work zone
(300 m) 2 km away; a quarter of the bans watch proximity (500 m). Every ban restrains its own
person (so there are as many monitored persons as bans) and protects one person, a share of
whom carry a device. Restrained persons move within about 6 km of their zones, most of the time
outside, sometimes inside; patrol cars are spread over the same area. Deterministic for a seed.

Nothing here talks to a broker: records are (key, JSON bytes) pairs for the bench to publish.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

#: Share of bans that watch proximity to the protected person (`proximity_m` 500).
PROXIMITY_SHARE = 0.25


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Site:
    ban_id: str
    restrained: str
    protected: str
    lat: float
    lon: float
    device: bool  # does the protected person carry a device?


def sites(n: int, seed: int = 7, device_share: float = 1.0) -> list[Site]:
    """`n` bans at random places in Sweden's populated band (lat 55.4-63.5, lon 12.5-19.0)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        lat, lon = rnd.uniform(55.4, 63.5), rnd.uniform(12.5, 19.0)
        out.append(
            Site(
                f"KF-B{i:06d}", f"P-R{i:06d}", f"P-V{i:06d}", lat, lon, rnd.random() < device_share
            )
        )
    return out


def ban(site: Site, proximity: bool) -> dict[str, object]:
    d = 0.001  # ~110 m north-south
    lat, lon = site.lat, site.lon
    home = [
        [lon - 2 * d, lat - d],
        [lon + 2 * d, lat - d],
        [lon + 2 * d, lat + d],
        [lon - 2 * d, lat + d],
        [lon - 2 * d, lat - d],
    ]
    return {
        "ban_id": site.ban_id,
        "version": 1,
        "kind": "extended",
        "status": "active",
        "restrained_person": site.restrained,
        "protected_persons": [site.protected],
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": "2027-12-31T00:00:00Z",
        "electronic_monitoring": True,
        "proximity_m": 500 if proximity else None,
        "zones": {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"zone_id": "home", "buffer_m": 50},
                    "geometry": {"type": "Polygon", "coordinates": [home]},
                },
                {
                    "type": "Feature",
                    "properties": {"zone_id": "work", "radius_m": 300},
                    "geometry": {"type": "Point", "coordinates": [lon + 0.03, lat + 0.01]},
                },
            ],
        },
    }


def bans(all_sites: list[Site]) -> list[bytes]:
    every = round(1 / PROXIMITY_SHARE)
    return [json.dumps(ban(s, i % every == 0)).encode() for i, s in enumerate(all_sites)]


def fix(
    site: Site, at: datetime, protected: bool, inside: bool, rnd: random.Random, device: str = ""
) -> tuple[str, bytes]:
    """One fix of the site's restrained (or protected) person: inside the home zone, or
    somewhere within about 6 km of it. `device` overrides the device id (for matching)."""
    if inside:
        dlat, dlon = rnd.uniform(-0.0005, 0.0005), rnd.uniform(-0.001, 0.001)
    else:
        dlat, dlon = rnd.uniform(-0.05, 0.05), rnd.uniform(-0.08, 0.08)
    person = site.protected if protected else site.restrained
    value = {
        "person_id": person,
        "device_id": device or ("VD-" if protected else "EM-") + person[2:],
        "ts": ts(at),
        "lat": round(site.lat + dlat, 6),
        "lon": round(site.lon + dlon, 6),
        "accuracy_m": round(rnd.uniform(4, 25), 1),
        "source": "victim_device" if protected else "ankle_tag",
    }
    return person, json.dumps(value).encode()


def fixes(
    all_sites: list[Site],
    count: int,
    seed: int = 11,
    inside_share: float = 0.01,
    protected_share: float = 0.2,
    start: datetime = T0,
    rate_per_s: float = 10_000.0,
) -> list[tuple[str, bytes]]:
    """(person_id, JSON) fixes in event-time order, `rate_per_s` apart on average.

    A share `protected_share` comes from protected persons (only those with a device; when no
    site has one, every fix is a restrained person's)."""
    rnd = random.Random(seed)
    with_device = [s for s in all_sites if s.device]
    out = []
    step = timedelta(seconds=1 / rate_per_s)
    for k in range(count):
        protected = bool(with_device) and rnd.random() < protected_share
        s = with_device[rnd.randrange(len(with_device))] if protected else None
        if s is None:
            s = all_sites[rnd.randrange(len(all_sites))]
        out.append(fix(s, start + step * k, protected, rnd.random() < inside_share, rnd))
    return out


def patrols(n: int, at: datetime, seed: int = 5) -> list[tuple[str, bytes]]:
    """(unit_id, JSON) positions of `n` available patrol cars spread over the same area."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        unit = f"SE-{i:04d}"
        value = {
            "unit_id": unit,
            "ts": ts(at),
            "lat": round(rnd.uniform(55.4, 63.5), 6),
            "lon": round(rnd.uniform(12.5, 19.0), 6),
            "status": "available",
            "capabilities": ["patrol"] if i % 10 else ["patrol", "negotiator"],
        }
        out.append((unit, json.dumps(value).encode()))
    return out
