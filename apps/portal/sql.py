"""The hand-written SQL of the patient search page (issue 19): the places of an area (also for the place
select), their first matching slots (a walk of the service's slots in date order, or a probe per
place), a page of places with their earliest slots, one place's slots page by page; the signed-in
patient, their live registration for a service, and the town the search form names.

Composing them as querysets (correlated subqueries, a window function, an EXISTS, the optional
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

from apps.booking.models import LIVE_REGISTRATION, Registration
from apps.catalog.models import Contract, Facility, Locality
from apps.core.dbrouter import read_alias
from apps.core.queries import model_from_row, prepared_cursor, select_columns
from apps.patients.models import Patient
from apps.scheduling.models import Practitioner, Slot
from apps.scheduling.selectors import Near

FACILITY = Facility._meta.db_table
CONTRACT = Contract._meta.db_table
LOCALITY = Locality._meta.db_table
SLOT = Slot._meta.db_table
PRACTITIONER = Practitioner._meta.db_table
PATIENT = Patient._meta.db_table
FACILITY_WIDTH = len(Facility._meta.concrete_fields)  # columns of `select_columns(Facility, ...)`
FACILITY_ID = Facility._meta.concrete_fields.index(Facility._meta.pk)
REGISTRATION = Registration._meta.db_table


def _literal(value: str) -> str:
    if not value.isidentifier():  # the models' own constants, never a value from a request
        raise ValueError(value)
    return f"'{value}'"


FREE, FIRST = _literal(Slot.Status.FREE.value), _literal(Slot.Kind.FIRST.value)


@dataclass(frozen=True)
class Matching:
    """The free first-time slots of a service that a search matches (as `slot_search_queryset` takes
    them, plus the local hours of a time of day)."""

    service_id: int
    start_after: dt.datetime
    start_before: dt.datetime | None = None
    hours: tuple[int, int] | None = None  # local hours [from, to)

    def sql(self, alias: str) -> str:
        # Status and kind are written into the statement, not bound: the partial indexes of free
        # first-time slots (`slot_free_by_*`: WHERE status = 'free' AND kind = 'first') serve only a
        # statement whose condition implies theirs, and a bound value does not once PostgreSQL plans the
        # prepared statement generically (from its 6th run on a connection): the places probe then read
        # every slot of each place (docs/performance.md, section a).
        text = f"{alias}.service_id = %(service)s AND {alias}.status = {FREE} AND {alias}.kind = {FIRST}"
        text += f" AND {alias}.start > %(start_after)s"
        if self.start_before is not None:
            text += f" AND {alias}.start < %(start_before)s"
        if self.hours is not None:
            hour = f"EXTRACT(HOUR FROM {alias}.start AT TIME ZONE %(zone)s)"
            text += f" AND {hour} >= %(hour_from)s AND {hour} < %(hour_to)s"
        return text

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "service": self.service_id,
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
def _area_sql(area: str) -> str:
    # Names only when the area has few places (the select lists them then); the town's name by lookup.
    named = "count(*) OVER () <= %(named)s"
    town = f"(SELECT l.name FROM {LOCALITY} l WHERE l.id = f.locality_id)"  # noqa: S608 (names from the models)
    return f"""
    SELECT f.id, f.lat, f.lon, CASE WHEN {named} THEN f.name END, CASE WHEN {named} THEN {town} END
    FROM {FACILITY} f
    WHERE {area}
    ORDER BY f.name, f.id
    LIMIT %(limit)s
    """  # noqa: S608 (table and column names from the models; every value bound)


def area_places(
    *, service_id: int, area: Area, named: int, limit: int | None = None
) -> list[tuple[int, float, float, str | None, str | None]]:
    """(id, lat, lon, name, its town's name) of the active places of the area with a contract for the
    service, by name (then id), at most `limit` (all without one); the names only when there are at
    most `named` (None otherwise): what the search measures distances on, walks or probes, and the
    place select lists."""
    params = {"service": service_id, **area.params(), "named": named, "limit": limit}
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(_area_sql(_in_area(area)), params)  # LIMIT NULL: no limit
        return cursor.fetchall()


@cache
def _firsts_sql(matching: str) -> str:
    return f"""
    SELECT f.id, m.start
    FROM unnest(%(facilities)s::bigint[]) AS f(id)
    CROSS JOIN LATERAL (
        SELECT s.start FROM {SLOT} s WHERE {matching} AND s.facility_id = f.id ORDER BY s.start LIMIT 1
    ) m
    """  # noqa: S608 (table and column names from the models; every value bound)


def first_slots(*, matching: Matching, facility_ids: list[int]) -> list[tuple[int, dt.datetime]]:
    """(place id, start of its first matching slot) of each of these places that has one (in no
    particular order): one probe of `slot_free_by_facility` per place."""
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(_firsts_sql(matching.sql("s")), {**matching.params(), "facilities": facility_ids})
        return cursor.fetchall()


@cache
def _walk_sql(matching: str) -> str:
    return f"""
    WITH walk AS MATERIALIZED (
        SELECT s.facility_id, s.start FROM {SLOT} s WHERE {matching}
        ORDER BY s.start
        FETCH FIRST %(rows)s ROWS WITH TIES
    )
    SELECT w.facility_id, min(w.start), NULL::bigint FROM walk w GROUP BY w.facility_id
    UNION ALL
    SELECT NULL::bigint, max(w.start), count(*) FROM walk w
    """  # noqa: S608 (table and column names from the models; every value bound)


@dataclass(frozen=True)
class Walk:
    """The service's matching slots (every place's) read in date order: the first `rows` asked for and
    every other one at the same time as the last of them, `walked` in all, up to `last`. `firsts` is
    each place among them with its first one: every place with a matching slot up to `last` is there,
    and, if fewer than `rows` were walked, every place with a matching slot at all."""

    firsts: list[tuple[int, dt.datetime]]
    walked: int
    last: dt.datetime | None


def walk_first_slots(*, matching: Matching, rows: int) -> Walk:
    """The first `rows` matching slots of the service (every place; and those at the same time as the
    last) in date order, down `slot_free_by_service (service_id, start, id)`, and which places they
    reach first when. Not for a time of day: the walk would pass every slot of the other hours."""
    if matching.hours is not None:
        raise ValueError("a walk in date order cannot skip the other hours")
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(_walk_sql(matching.sql("s")), {**matching.params(), "rows": rows})
        found = cursor.fetchall()
    walked, last = 0, None
    firsts = []
    for facility_id, start, count in found:
        if facility_id is None:
            walked, last = count, start
        else:
            firsts.append((facility_id, start))
    return Walk(firsts=firsts, walked=walked, last=last)


@cache
def _page_sql(matching: str) -> str:
    return f"""
    SELECT {select_columns(Facility, "f")}, {select_columns(Slot, "s")}, {select_columns(Practitioner, "p")}
    FROM {FACILITY} f
    LEFT JOIN LATERAL (
        SELECT s.* FROM {SLOT} s
        WHERE {matching} AND s.facility_id = f.id AND s.start < %(window_end)s
        ORDER BY s.start, s.id
        LIMIT %(per_place)s
    ) s ON TRUE
    LEFT JOIN {PRACTITIONER} p ON p.id = s.practitioner_id
    WHERE f.id = ANY(%(facilities)s)
    ORDER BY s.start, s.id
    """  # noqa: S608 (table and column names from the models; every value bound)


def page_places(
    *, matching: Matching, facility_ids: list[int], window_end: dt.datetime, per_place: int
) -> tuple[dict[int, Facility], list[Slot]]:
    """These places (by id) and the first `per_place` matching slots of each before `window_end`, all
    by date (then id); each slot with its practitioner (or None) loaded. A place whose slots went
    meanwhile is there without any."""
    sql = _page_sql(matching.sql("s"))
    params = {**matching.params(), "facilities": facility_ids, "window_end": window_end}
    params["per_place"] = per_place
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    facilities: dict[int, Facility] = {}
    slots = []
    for row in rows:
        facility = facilities.get(row[FACILITY_ID])  # the place comes with each of its slots: made once
        if facility is None:
            facility = facilities[row[FACILITY_ID]] = model_from_row(Facility, row)[0]
        after = FACILITY_WIDTH
        if row[after] is None:
            continue
        slot, after = model_from_row(Slot, row, after)
        slot.practitioner = model_from_row(Practitioner, row, after)[0] if row[after] is not None else None
        slot.facility = facility
        slots.append(slot)
    return facilities, slots


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


# --- the signed-in person and the search form's town (issue 19: one ORM query cost ~1 ms of CPU) -------


@cache
def _patient_sql() -> str:
    return f"SELECT {select_columns(Patient, 'p')} FROM {PATIENT} p WHERE p.user_id = %(user)s"  # noqa: S608


def patient_of_user(*, user_id: int) -> Patient | None:
    """The patient signed in as this user, if any (one at most: `user` is one-to-one)."""
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(_patient_sql(), {"user": user_id})
        row = cursor.fetchone()
    return None if row is None else model_from_row(Patient, row)[0]


@cache
def _live_registration_sql() -> str:
    live = ", ".join(_literal(status) for status in LIVE_REGISTRATION)
    return f"""
    SELECT {select_columns(Registration, "r")} FROM {REGISTRATION} r
    WHERE r.patient_id = %(patient)s AND r.service_id = %(service)s AND r.status IN ({live})
    ORDER BY r.id
    LIMIT 1
    """  # noqa: S608 (table and column names from the models, statuses the model's constants; values bound)


def live_registration(*, patient_id: int, service_id: int) -> Registration | None:
    """A patient's live registration (waiting or booked) for a service, if any (one at most: a partial
    unique index)."""
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(_live_registration_sql(), {"patient": patient_id, "service": service_id})
        row = cursor.fetchone()
    return None if row is None else model_from_row(Registration, row)[0]


@cache
def _locality_sql(in_voivodeship: bool) -> str:
    voivodeship = " AND l.voivodeship_id = %(voivodeship)s" if in_voivodeship else ""
    return f"""
    SELECT {select_columns(Locality, "l")} FROM {LOCALITY} l
    WHERE UPPER(l.name::text) = UPPER(%(name)s){voivodeship}
    ORDER BY l.population DESC
    LIMIT 1
    """  # noqa: S608 (table and column names from the models; every value bound)


def locality_named(*, name: str, voivodeship_id: str | None = None) -> Locality | None:
    """The most populous town of this name (any letter case), in the voivodeship if given."""
    with prepared_cursor(using=read_alias()) as cursor:
        params = {"name": name, "voivodeship": voivodeship_id}
        cursor.execute(_locality_sql(voivodeship_id is not None), params)
        row = cursor.fetchone()
    return None if row is None else model_from_row(Locality, row)[0]
