"""The hand-written SQL of the patient search page (issue 19): the places of an area with their first
matching slot, the earliest slots of a page of places, one place's slots page by page, and the area's
places for the place select.

Composing these three querysets (a correlated subquery, a window function, an EXISTS, the optional
filters) cost the page more CPU than PostgreSQL spent answering them (docs/performance.md, section a).
Here each statement is composed once per combination of filters from fixed fragments, with every value
bound, and runs as a server-side prepared statement (`apps.core.queries.prepared_cursor`) on the
database `dbrouter.read_alias()` names (the replica inside `replica_reads()`). Each has a plain-ORM twin
in `tests/portal/test_sql.py` that must give the same rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings

from apps.catalog.models import Contract, Facility, Locality
from apps.core.dbrouter import read_alias
from apps.core.queries import model_from_row, prepared_cursor, select_columns
from apps.scheduling.models import Practitioner, Slot
from apps.scheduling.selectors import Near

FACILITY = Facility._meta.db_table
CONTRACT = Contract._meta.db_table
LOCALITY = Locality._meta.db_table
SLOT = Slot._meta.db_table
PRACTITIONER = Practitioner._meta.db_table


@dataclass(frozen=True)
class Matching:
    """The free first-time slots of a service that a search matches (as `slot_search_queryset` takes
    them, plus the local hours of a time of day)."""

    service_id: int
    start_after: dt.datetime
    start_before: dt.datetime | None = None
    hours: tuple[int, int] | None = None  # local hours [from, to)

    def sql(self, alias: str) -> str:
        text = (
            f"{alias}.service_id = %(service)s AND {alias}.status = %(free)s AND {alias}.kind = %(first)s"
            f" AND {alias}.start > %(start_after)s"
        )
        if self.start_before is not None:
            text += f" AND {alias}.start < %(start_before)s"
        if self.hours is not None:
            hour = f"EXTRACT(HOUR FROM {alias}.start AT TIME ZONE %(zone)s)"
            text += f" AND {hour} >= %(hour_from)s AND {hour} < %(hour_to)s"
        return text

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "service": self.service_id,
            "free": Slot.Status.FREE.value,
            "first": Slot.Kind.FIRST.value,
            "start_after": self.start_after,
            "start_before": self.start_before,
        }
        if self.hours is not None:
            params.update(zone=settings.TIME_ZONE, hour_from=self.hours[0], hour_to=self.hours[1])
        return params


@dataclass(frozen=True)
class Area:
    """Where: a voivodeship, and a town or a box around a point (a distance is measured afterwards)."""

    voivodeship_id: str | None = None
    locality_id: int | None = None
    near: Near | None = None

    def sql(self) -> str:
        text = ""
        if self.voivodeship_id is not None:
            text += " AND f.voivodeship_id = %(voivodeship)s"
        if self.near is not None:
            text += " AND f.lat BETWEEN %(lat_min)s AND %(lat_max)s"
            text += " AND f.lon BETWEEN %(lon_min)s AND %(lon_max)s"
        elif self.locality_id is not None:
            text += " AND f.locality_id = %(locality)s"
        return text

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"voivodeship": self.voivodeship_id, "locality": self.locality_id}
        if self.near is not None:
            lat_min, lat_max, lon_min, lon_max = self.near.bounding_box()
            params.update(lat_min=lat_min, lat_max=lat_max, lon_min=lon_min, lon_max=lon_max)
        return params


def _in_area(area: Area) -> str:
    contract = f"SELECT 1 FROM {CONTRACT} c WHERE c.facility_id = f.id AND c.service_id = %(service)s"  # noqa: S608
    return f"f.active AND EXISTS ({contract}){area.sql()}"


@cache
def _first_sql(matching: str, area: str) -> str:
    return f"""
    SELECT {select_columns(Facility, "f")}, m.start AS first
    FROM {FACILITY} f
    CROSS JOIN LATERAL (
        SELECT s.start FROM {SLOT} s WHERE {matching} AND s.facility_id = f.id ORDER BY s.start LIMIT 1
    ) m
    WHERE {area}
    """  # noqa: S608 (table and column names from the models; every value bound)


def places_with_first(*, matching: Matching, area: Area) -> list[tuple[Facility, dt.datetime]]:
    """The active places of the area with a contract for the service and a matching free slot, each
    with its first one (in no particular order)."""
    sql = _first_sql(matching.sql("s"), _in_area(area))
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(sql, {**matching.params(), **area.params()})
        rows = cursor.fetchall()
    out = []
    for row in rows:
        facility, after = model_from_row(Facility, row)
        out.append((facility, row[after]))
    return out


@cache
def _slots_sql(matching: str) -> str:
    return f"""
    SELECT {select_columns(Slot, "s")}, {select_columns(Practitioner, "p")}
    FROM (
        SELECT s.*, row_number() OVER (PARTITION BY s.facility_id ORDER BY s.start, s.id) AS rank
        FROM {SLOT} s
        WHERE {matching} AND s.facility_id = ANY(%(facilities)s) AND s.start < %(window_end)s
    ) s
    LEFT JOIN {PRACTITIONER} p ON p.id = s.practitioner_id
    WHERE s.rank <= %(per_place)s
    ORDER BY s.start, s.id
    """  # noqa: S608 (table and column names from the models; every value bound)


def earliest_slots(
    *, matching: Matching, facility_ids: list[int], window_end: dt.datetime, per_place: int
) -> list[Slot]:
    """The first `per_place` matching slots of each of these places before `window_end`, by date (then
    id); each with its practitioner (or None) loaded."""
    sql = _slots_sql(matching.sql("s"))
    params = {**matching.params(), "facilities": facility_ids, "window_end": window_end}
    params["per_place"] = per_place
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    slots = []
    for row in rows:
        slot, after = model_from_row(Slot, row)
        practitioner = model_from_row(Practitioner, row, after)[0] if row[after] is not None else None
        slot.practitioner = practitioner
        slots.append(slot)
    return slots


@cache
def _place_slots_sql(matching: str) -> str:
    return f"""
    SELECT {select_columns(Slot, "s")}, {select_columns(Facility, "f")}, {select_columns(Practitioner, "p")}
    FROM {SLOT} s
    JOIN {FACILITY} f ON f.id = s.facility_id
    LEFT JOIN {PRACTITIONER} p ON p.id = s.practitioner_id
    WHERE {matching} AND s.facility_id = %(facility)s
    ORDER BY s.start, s.id
    LIMIT %(limit)s OFFSET %(offset)s
    """  # noqa: S608 (table and column names from the models; every value bound)


def place_slots(*, matching: Matching, facility_id: int, limit: int, offset: int) -> list[Slot]:
    """One place's matching slots by date (then id), `limit` from `offset`; each with its facility and
    practitioner (or None) loaded."""
    sql = _place_slots_sql(matching.sql("s"))
    params = {**matching.params(), "facility": facility_id, "limit": limit, "offset": offset}
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    slots = []
    for row in rows:
        slot, after = model_from_row(Slot, row)
        slot.facility, after = model_from_row(Facility, row, after)
        slot.practitioner = model_from_row(Practitioner, row, after)[0] if row[after] is not None else None
        slots.append(slot)
    return slots


@cache
def _facilities_sql(area: str) -> str:
    return f"""
    SELECT {select_columns(Facility, "f")}, {select_columns(Locality, "l")}
    FROM {FACILITY} f JOIN {LOCALITY} l ON l.id = f.locality_id
    WHERE {area}
    ORDER BY f.name, f.id
    LIMIT %(limit)s
    """  # noqa: S608 (table and column names from the models; every value bound)


def facilities_in_area(*, service_id: int, area: Area, limit: int) -> list[Facility]:
    """The active places of the area with a contract for the service, by name, at most `limit`; each
    with its locality loaded."""
    sql = _facilities_sql(_in_area(area))
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(sql, {"service": service_id, **area.params(), "limit": limit})
        rows = cursor.fetchall()
    out = []
    for row in rows:
        facility, after = model_from_row(Facility, row)
        facility.locality = model_from_row(Locality, row, after)[0]
        out.append(facility)
    return out
