"""The contract's input records as validated values.

Validation is strict: wrong JSON types are rejected (no "59.1" for a number, no `true` for an
int), floats must be finite, timestamps must carry an offset, unknown fields are ignored.
Identifiers are opaque pseudonyms; anything that looks like a Swedish personal identity number
is refused so that it can never travel further into alerts, logs or metrics.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

_PNR = re.compile(r"^(19|20)?\d{6}[-+]?\d{4}$")
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")


#: Identifiers already found acceptable: every fix repeats its person's and device's ids, and
#: looking one up costs a fifth of the two searches. Bounded: emptied when full.
_ACCEPTED: set[str] = set()
_ACCEPTED_MAX = 1 << 17


def _pseudonym(value: str) -> str:
    if value in _ACCEPTED:
        return value
    if _CONTROL.search(value):
        raise ValueError("identifier must not contain spaces or control characters")
    if _PNR.match(value):
        raise ValueError("identifier looks like a personal identity number; use a pseudonym")
    if len(_ACCEPTED) >= _ACCEPTED_MAX:
        _ACCEPTED.clear()
    _ACCEPTED.add(value)
    return value


Ident = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_pseudonym)]
Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Lon = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Metres = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
_ZERO = timedelta(0)


def _shared_utc(t: datetime) -> datetime:
    """A zero-offset time gets `datetime.UTC` as its tzinfo: the same instant, the same text.
    Pydantic gives every parsed time its own tzinfo object, and comparing or subtracting two
    datetimes whose tzinfo objects differ calls back into both (~0.9 µs each, several per
    fix); with one shared tzinfo it is a plain comparison of fields."""
    return t.astimezone(UTC) if t.tzinfo is not UTC and t.utcoffset() == _ZERO else t


Timestamp = Annotated[AwareDatetime, AfterValidator(_shared_utc)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class BanKind(StrEnum):
    basic = "basic"
    shared_residence = "shared_residence"
    extended = "extended"
    special_extended = "special_extended"


class FixSource(StrEnum):
    ankle_tag = "ankle_tag"
    victim_device = "victim_device"
    phone = "phone"


class IncidentKind(StrEnum):
    reported_contact = "reported_contact"
    sos = "sos"
    threat = "threat"
    tip = "tip"
    device_tamper = "device_tamper"
    device_battery_low = "device_battery_low"


# GeoJSON positions are [lon, lat] or [lon, lat, alt]; altitude is ignored.
Position = Annotated[list[float], Field(min_length=2, max_length=3)]


class Geometry(_Record):
    type: Literal["Polygon", "MultiPolygon", "Point"]
    coordinates: list[Any]


class ZoneProperties(_Record):
    zone_id: Ident
    label: Annotated[str, StringConstraints(max_length=200)] | None = None
    buffer_m: Metres = 0.0
    radius_m: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)] | None = None


class ZoneFeature(_Record):
    type: Literal["Feature"]
    properties: ZoneProperties
    geometry: Geometry


class ZoneCollection(_Record):
    type: Literal["FeatureCollection"]
    features: Annotated[list[ZoneFeature], Field(max_length=100)]

    @model_validator(mode="after")
    def _unique_zone_ids(self) -> ZoneCollection:
        seen: set[str] = set()
        for f in self.features:
            if f.properties.zone_id in seen:
                raise ValueError(f"zone_id {f.properties.zone_id!r} is not unique within the ban")
            seen.add(f.properties.zone_id)
        return self


class ContactBan(_Record):
    ban_id: Ident
    version: Annotated[int, Field(ge=0)]
    kind: BanKind
    status: Literal["active", "revoked"]
    restrained_person: Ident
    protected_persons: Annotated[list[Ident], Field(min_length=1, max_length=50)]
    valid_from: Timestamp
    valid_until: Timestamp | None = None
    electronic_monitoring: bool = False
    proximity_m: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)] | None = None
    zones: ZoneCollection | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ContactBan:
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.restrained_person in self.protected_persons:
            raise ValueError("restrained_person is also listed as protected")
        return self

    def in_force(self, t: datetime) -> bool:
        """Active and `valid_from <= t < valid_until` (event time `t`)."""
        return (
            self.status == "active"
            and self.valid_from <= t
            and (self.valid_until is None or t < self.valid_until)
        )


class LocationFix(_Record):
    person_id: Ident
    device_id: Ident
    ts: Timestamp
    lat: Lat
    lon: Lon
    accuracy_m: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)]
    source: FixSource
    speed_mps: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] | None = None
    battery_pct: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None


class PatrolStatus(StrEnum):
    available = "available"
    busy = "busy"
    off_duty = "off_duty"


class PatrolPosition(_Record):
    unit_id: Ident
    ts: Timestamp
    lat: Lat
    lon: Lon
    status: PatrolStatus
    capabilities: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=40)]],
        Field(max_length=20),
    ] = Field(default_factory=list)


class Incident(_Record):
    incident_id: Ident
    ts: Timestamp
    kind: IncidentKind
    ban_id: Ident | None = None
    person_id: Ident | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    source: Annotated[str, StringConstraints(max_length=40)] | None = None
    note: Annotated[str, StringConstraints(max_length=10_000)] | None = None

    @model_validator(mode="after")
    def _both_coordinates(self) -> Incident:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        return self


class AlertAction(_Record):
    alert_id: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    action: Literal["acknowledge", "resolve"]
    by: Ident
    ts: Timestamp
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class TaskAction(StrEnum):
    accept = "accept"
    decline = "decline"
    en_route = "en_route"
    on_scene = "on_scene"
    done = "done"


class TaskUpdate(_Record):
    """A unit's or a role's answer to a task (contract v2, topic `task-updates`). Whether the
    transition is allowed (the task's unit or role, forward only, the kind's outcomes) is the
    engine's to decide: it holds the task. `note` is stored by the record store only: never
    forwarded, never in any output or log."""

    task_id: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    by: Ident
    role: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z_]+$")]
    ts: Timestamp
    action: TaskAction
    outcome: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    consent_to_share: bool | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


InputRecord = ContactBan | LocationFix | PatrolPosition | Incident | AlertAction | TaskUpdate
