"""Reads of the patient pages that the booking selectors do not cover. Each is scoped to one patient."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.db.models import Exists, OuterRef
from django.utils import timezone

from apps.booking.models import LIVE_APPOINTMENT, Appointment, Registration
from apps.booking.selectors import appointment_in_month
from apps.catalog.models import Contract, Facility, Service
from apps.core.dbrouter import replica_reads
from apps.patients.models import Patient
from apps.scheduling.models import Slot
from apps.scheduling.selectors import Near, day_start, distance_km

from . import sql


def patient_for_user(*, user_id: int | None) -> Patient | None:
    if user_id is None:
        return None
    return sql.patient_of_user(user_id=user_id)


def appointment_owner(*, appointment_id: int) -> int | None:
    """Whose appointment this is (the pages then check that the signed-in person may act for them)."""
    key = appointment_in_month(appointment_id)
    if key is None:
        return None
    return Appointment.objects.filter(**key).values_list("patient_id", flat=True).first()


def registration_owner(*, registration_id: int) -> int | None:
    return Registration.objects.filter(pk=registration_id).values_list("patient_id", flat=True).first()


def live_appointment_on_slot(*, patient: Patient, slot_id: int) -> Appointment | None:
    """The patient's live booking of this slot (a second click on "book" finds the first one)."""
    return Appointment.objects.filter(patient=patient, slot_id=slot_id, status__in=LIVE_APPOINTMENT).first()


def held_slot_get(*, patient: Patient, slot_id: int, now: dt.datetime) -> Slot | None:
    """The slot if this patient's hold on it is still running, else None."""
    return (
        Slot.objects.select_related("service", "facility", "locality", "practitioner")
        .filter(pk=slot_id, status=Slot.Status.HELD, held_by=patient, hold_until__gt=now)
        .first()
    )


def live_registration_of(*, patient: Patient, service: Any) -> Registration | None:
    """A patient's live registration (waiting or booked) for a service, if any: one per patient and
    service (a partial unique index)."""
    return sql.live_registration(patient_id=patient.pk, service_id=_pk(service))


def upcoming_appointment_of(*, registration: Registration) -> Appointment | None:
    return (
        Appointment.objects.filter(
            registration=registration, status__in=LIVE_APPOINTMENT, start__gte=timezone.now()
        )
        .order_by("start")
        .first()
    )


def waiting_registration_get(*, patient: Patient, registration_id: int) -> Registration | None:
    return (
        Registration.objects.filter(pk=registration_id, patient=patient, status=Registration.Status.WAITING)
        .select_related("service", "voivodeship", "locality", "facility", "practitioner", "entitlement")
        .first()
    )


def slot_for_page(*, slot_id: int) -> Slot | None:
    """One slot for its public page (any state: the page says when it is no longer free)."""
    return (
        Slot.objects.select_related("service", "facility", "facility__locality", "practitioner")
        .filter(pk=slot_id)
        .first()
    )


def facility_for_page(*, facility_id: int) -> Facility | None:
    return Facility.objects.select_related("locality").filter(pk=facility_id, active=True).first()


# --- choosing a place (issue 18) ------------------------------------------------------------------------
# The statements are hand-written (`apps/portal/sql.py`, each with an ORM twin in tests/portal/test_sql.py):
# composing them with the ORM cost the search page more than running them (issue 19).


def _pk(obj: Any) -> Any:
    return getattr(obj, "pk", obj)


def _matching(
    service: Any, date_from: dt.date | None, date_to: dt.date | None, time_of_day: str | None
) -> sql.Matching:
    """The free first-time slots a search matches (as `slot_search_queryset` takes them), in the local
    hours of a time of day."""
    now = timezone.now()
    return sql.Matching(
        service_id=_pk(service),
        start_after=max(now, day_start(date_from)) if date_from else now,
        start_before=day_start(date_to + dt.timedelta(days=1)) if date_to else None,
        hours=TIMES_OF_DAY.get(time_of_day or ""),
    )


def _area(voivodeship: Any, locality: Any, near: Near | None) -> sql.Area:
    return sql.Area(
        voivodeship_id=None if voivodeship is None else _pk(voivodeship),
        locality_id=None if locality is None else _pk(locality),
        near=near,
    )


TIMES_OF_DAY = {"morning": (0, 12), "afternoon": (12, 17), "evening": (17, 24)}  # local hours [from, to)
PLACE_WINDOW = dt.timedelta(days=14)  # a place's earliest slots: within this of its first one
# Which places come first: with fewer places in the area than this, or a time of day, each place is
# probed for its first slot (~6 buffers a place); with more, the service's slots of every place are
# walked in date order (`sql.walk_first_slots`, ~1 buffer a slot), this many for every place up to the
# end of the page (at most WALK_ROWS_MAX), and the places probed only if that was not enough.
WALK_FROM_PLACES = 48
WALK_ROWS_PER_PLACE = 48
WALK_ROWS_MAX = 1024


@dataclass
class Place:
    facility: Facility
    first: dt.datetime
    distance_km: float | None = None
    slots: list[Slot] = field(default_factory=list)
    more_url: str = ""  # the page's link to this place's further dates
    distance: Any = None  # what the page says of the distance (`results.distance_text`)
    cards: str = ""  # the slots as the page shows them (markup: `results.cards_html`)


class PlaceChoice(NamedTuple):
    """A place as the place select lists it."""

    pk: int
    name: str
    locality_name: str


@dataclass(frozen=True)
class AreaPlaces:
    """The active places of a searched area with a contract for the service, by name: each one's
    distance from the searched town (None without a distance), how the select names them, and how many
    rows the area read (for a distance, the places in the box around the circle)."""

    distances: dict[int, float | None]
    choices: list[PlaceChoice]
    read: int


@replica_reads(retry=True)
def area_places(
    *,
    service: Any,
    voivodeship: Any = None,
    locality: Any = None,
    near: Near | None = None,
    limit: int | None = None,
    named: int | None = None,
) -> AreaPlaces:
    """The places `place_search` ranks and the place select lists (`facilities_in_area`), from one
    statement (at most `limit` rows read; their names only if the area has at most `named`, by default
    as many as the select reads); distances measured here."""
    area = _area(voivodeship, locality, near)
    named = _choices_read(near) if named is None else named
    rows = sql.area_places(service_id=_pk(service), area=area, named=named, limit=limit)
    distances: dict[int, float | None] = {}
    choices = []
    for pk, lat, lon, name, locality_name in rows:
        distance = None
        if near is not None:
            distance = distance_km(near.lat, near.lon, lat, lon)
            if distance > near.radius_km:
                continue
        distances[pk] = distance
        if name is not None:
            choices.append(PlaceChoice(pk, name, locality_name or ""))
    return AreaPlaces(distances=distances, choices=choices, read=len(rows))


def _firsts(matching: sql.Matching, area: AreaPlaces, wanted: int) -> list[tuple[int, dt.datetime]]:
    """(place, its first matching slot) of at least the `wanted` places that come first (every place
    with a matching slot when there are fewer), in no particular order."""
    ids = area.distances
    rows = wanted * WALK_ROWS_PER_PLACE
    if len(ids) >= WALK_FROM_PLACES and matching.hours is None and rows <= WALK_ROWS_MAX:
        walk = sql.walk_first_slots(matching=matching, rows=rows)
        # Every place with a slot up to the last one walked was seen; any other comes after them all.
        seen = [(pk, first) for pk, first in walk.firsts if pk in ids]
        if walk.walked < rows or len(seen) >= wanted:
            return seen
    return sql.first_slots(matching=matching, facility_ids=list(ids)) if ids else []


@replica_reads(retry=True)  # like slot_search: a replica's lag is harmless, booking re-checks in the database
def place_search(
    *,
    service: Any,
    voivodeship: Any = None,
    locality: Any = None,
    near: Near | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    time_of_day: str | None = None,
    places: int = 5,
    per_place: int = 3,
    offset: int = 0,
    area: AreaPlaces | None = None,
) -> tuple[list[Place], bool]:
    """The places with free slots for a service in the area, each with its earliest `per_place` slots;
    places ordered by their first slot, then distance. Returns (one page of places, more after it).
    `area`: the area's places if already read (`area_places`).

    Three prepared statements (`sql.area_places` unless given, the places' first slots, `sql.page_places`;
    a fourth when a walk falls short): when the area has many places only those up to the end of the page
    (and one more, to know there are more) are ranked, by a walk of the service's slots in date order, and
    only the page's places are read whole, with their earliest slots.
    """
    matching = _matching(service, date_from, date_to, time_of_day)
    if area is None:
        area = area_places(service=service, voivodeship=voivodeship, locality=locality, near=near)
    wanted = offset + places + 1
    distances = area.distances
    found = sorted(_firsts(matching, area, wanted), key=lambda f: (f[1], distances[f[0]] or 0.0, f[0]))
    page = found[offset : offset + places]
    if not page:
        return [], False
    facilities, slots = sql.page_places(
        matching=matching,
        facility_ids=[pk for pk, _first in page],
        window_end=max(first for _pk, first in page) + PLACE_WINDOW,
        per_place=per_place,
    )
    by_facility = {  # (a place gone between the statements is left out)
        pk: Place(facility=facilities[pk], first=first, distance_km=distances[pk])
        for pk, first in page
        if pk in facilities
    }
    for slot in slots:
        place = by_facility[slot.facility_id]
        slot.distance_km = place.distance_km  # type: ignore[attr-defined]
        place.slots.append(slot)
    return list(by_facility.values()), len(found) > offset + places


@replica_reads(retry=True)
def slot_page_search(
    *,
    service: Any,
    facility: Facility,
    time_of_day: str | None = None,
    limit: int = 10,
    offset: int = 0,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> tuple[list[Slot], bool]:
    """More dates at one place: its free slots in date order, one page at a time (`sql.place_slots`)."""
    rows = sql.place_slots(
        matching=_matching(service, date_from, date_to, time_of_day),
        facility_id=_pk(facility),
        limit=limit + 1,
        offset=offset,
    )
    return rows[:limit], len(rows) > limit


# --- one place: the facility filter and the waiting list's place preference ----------------------------

FACILITY_CHOICES_MAX = 100  # longer than this, a select helps nobody: the page asks to narrow the area


def _choices_read(near: Near | None, limit: int | None = None) -> int:
    """How many of the area's places the select may read: for a distance, the box's corners lie outside
    the circle, so a few more than it lists; the distance is measured afterwards."""
    limit = FACILITY_CHOICES_MAX if limit is None else limit
    return limit * 2 if near is not None else limit


def facilities_in_area(
    *,
    service: Any,
    voivodeship: Any = None,
    locality: Any = None,
    near: Near | None = None,
    limit: int | None = None,
    area: AreaPlaces | None = None,
) -> list[PlaceChoice] | None:
    """The active places with a contract for the service in the area (taken as `place_search` takes it:
    a voivodeship, a town, or a distance from one), by name; None when there are more than `limit`
    (`FACILITY_CHOICES_MAX` unless given). `area`: the area's places if already read (`area_places`)."""
    limit = FACILITY_CHOICES_MAX if limit is None else limit
    read = _choices_read(near, limit)
    if area is None or (area.read <= read and len(area.choices) < len(area.distances)):  # names not read
        area = area_places(
            service=service, voivodeship=voivodeship, locality=locality, near=near, limit=read + 1, named=read
        )
    if area.read > read or len(area.choices) > limit:
        return None
    return area.choices


def services_at_facility(*, facility: Facility) -> list[Service]:
    """The services a place has a contract for: its page links to each one's dates there."""
    return list(
        Service.objects.filter(
            Exists(Contract.objects.filter(facility=facility, service=OuterRef("pk")))
        ).order_by("name_pl")
    )
