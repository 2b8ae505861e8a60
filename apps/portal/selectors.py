"""Reads of the patient pages that the booking selectors do not cover. Each is scoped to one patient."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, OuterRef
from django.utils import timezone

from apps.booking.models import LIVE_APPOINTMENT, LIVE_REGISTRATION, Appointment, Registration
from apps.catalog.models import Contract, Facility, Service
from apps.core.dbrouter import replica_reads
from apps.patients.models import Patient
from apps.scheduling.models import Slot
from apps.scheduling.selectors import Near, day_start, distance_km

from . import sql


def patient_for_user(*, user_id: int | None) -> Patient | None:
    if user_id is None:
        return None
    return Patient.objects.filter(user__pk=user_id).first()


def appointment_owner(*, appointment_id: int) -> int | None:
    """Whose appointment this is (the pages then check that the signed-in person may act for them)."""
    return Appointment.objects.filter(pk=appointment_id).values_list("patient_id", flat=True).first()


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
    return Registration.objects.filter(patient=patient, service=service, status__in=LIVE_REGISTRATION).first()


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


@dataclass
class Place:
    facility: Facility
    first: dt.datetime
    distance_km: float | None = None
    slots: list[Slot] = field(default_factory=list)
    more_url: str = ""  # the page's link to this place's further dates
    distance: Any = None  # what the page says of the distance (`results.distance_text`)
    cards: list[Any] = field(default_factory=list)  # the slots as the page shows them (`results.cards`)


@replica_reads()  # like slot_search: a replica's lag is harmless, booking re-checks in the database
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
) -> tuple[list[Place], bool]:
    """The places with free slots for a service in the area, each with its earliest `per_place` slots;
    places ordered by their first slot, then distance. Returns (one page of places, more after it).

    Two prepared statements whatever the page (`sql.places_with_first`, `sql.earliest_slots`): the
    facilities of the area with a contract for the service, each with its first matching slot (a
    correlated probe of the `slot_by_facility` index); then the slots of the page's places (a window
    function numbers them per place). Distances are computed here, on the facilities of the area only.
    """
    matching = _matching(service, date_from, date_to, time_of_day)
    found = []
    for facility, first in sql.places_with_first(matching=matching, area=_area(voivodeship, locality, near)):
        distance = None
        if near is not None:
            distance = distance_km(near.lat, near.lon, facility.lat, facility.lon)
            if distance > near.radius_km:
                continue
        found.append(Place(facility=facility, first=first, distance_km=distance))
    found.sort(key=lambda p: (p.first, p.distance_km or 0.0, p.facility.pk))
    page = found[offset : offset + places]
    if page:
        by_facility = {p.facility.pk: p for p in page}
        for slot in sql.earliest_slots(
            matching=matching,
            facility_ids=list(by_facility),
            window_end=max(p.first for p in page) + PLACE_WINDOW,
            per_place=per_place,
        ):
            place = by_facility[slot.facility_id]
            slot.facility = place.facility
            slot.distance_km = place.distance_km  # type: ignore[attr-defined]
            place.slots.append(slot)
    return page, len(found) > offset + places


@replica_reads()
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


def facilities_in_area(
    *,
    service: Any,
    voivodeship: Any = None,
    locality: Any = None,
    near: Near | None = None,
    limit: int | None = None,
) -> list[Facility] | None:
    """The active places with a contract for the service in the area (taken as `place_search` takes it:
    a voivodeship, a town, or a distance from one), by name; None when there are more than `limit`
    (`FACILITY_CHOICES_MAX` unless given)."""
    limit = FACILITY_CHOICES_MAX if limit is None else limit
    # The box's corners lie outside the circle: read a few more than the limit, then measure.
    read = limit * 2 if near is not None else limit
    area = _area(voivodeship, locality, near)
    rows = sql.facilities_in_area(service_id=_pk(service), area=area, limit=read + 1)
    if len(rows) > read:
        return None
    if near is not None:
        rows = [f for f in rows if distance_km(near.lat, near.lon, f.lat, f.lon) <= near.radius_km]
    return rows if len(rows) <= limit else None


def services_at_facility(*, facility: Facility) -> list[Service]:
    """The services a place has a contract for: its page links to each one's dates there."""
    return list(
        Service.objects.filter(
            Exists(Contract.objects.filter(facility=facility, service=OuterRef("pk")))
        ).order_by("name_pl")
    )
