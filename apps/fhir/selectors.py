"""Reads behind the FHIR API and the SMART bulk publication: the one place this app queries the
catalogue, the schedule and (for facility systems, through their `FacilityScope`) the bookings.

Public reads publish only what a patient may see anyway: active facilities, their contracted
services, active schedules, and first-time slots (CeR books first-time visits; follow-ups are the
facility's own business). Search pages use keyset pagination on (start, id), which the slot
indexes serve in order, so page 1000 costs what page 1 costs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.catalog.models import Contract, Facility, Service, Voivodeship
from apps.scheduling.models import Schedule, Slot

from .models import ServiceCoding

# FHIR Slot.status -> our slot states. Cancelled slots do not exist for the public.
FHIR_SLOT_STATUS: dict[str, tuple[str, ...]] = {
    "free": (Slot.Status.FREE,),
    "busy": (Slot.Status.BOOKED,),
    "busy-tentative": (Slot.Status.HELD,),
    "busy-unavailable": (Slot.Status.BLOCKED,),
}
SLOT_STATUS_TO_FHIR = {ours: fhir for fhir, states in FHIR_SLOT_STATUS.items() for ours in states}
PUBLIC_SLOT_STATES = tuple(SLOT_STATUS_TO_FHIR)
# SMART Scheduling Links knows only free and busy; a held slot is busy until the hold lapses.
BULK_SLOT_STATES = (Slot.Status.FREE, Slot.Status.HELD, Slot.Status.BOOKED)


def facility_list() -> QuerySet[Facility]:
    return Facility.objects.filter(active=True).select_related("locality", "voivodeship").order_by("id")


def facility_get(*, facility_id: int) -> Facility | None:
    return facility_list().filter(pk=facility_id).first()


def contract_list(*, on: dt.date) -> QuerySet[Contract]:
    """Contracts in force on a day, one HealthcareService each (facility x service)."""
    return (
        Contract.objects.filter(facility__active=True, valid_from__lte=on)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gte=on))
        .select_related("facility", "service")
        .order_by("facility_id", "service_id", "valid_from")
    )


def service_list() -> QuerySet[Service]:
    return Service.objects.order_by("code")


def service_codings() -> dict[int, list[ServiceCoding]]:
    """Extra codings (NFZ benefit codes and others) per service id, kept as data."""
    out: dict[int, list[ServiceCoding]] = {}
    for coding in ServiceCoding.objects.order_by("service_id", "system", "code"):
        out.setdefault(coding.service_id, []).append(coding)
    return out


def schedule_list() -> QuerySet[Schedule]:
    return (
        Schedule.objects.filter(active=True, facility__active=True)
        .select_related("service", "facility", "practitioner")
        .order_by("id")
    )


def voivodeship_list() -> QuerySet[Voivodeship]:
    return Voivodeship.objects.order_by("teryt")


@dataclass(frozen=True)
class SlotQuery:
    service_ids: tuple[int, ...] | None = None
    start_ge: dt.datetime | None = None
    start_lt: dt.datetime | None = None
    states: tuple[str, ...] = PUBLIC_SLOT_STATES
    schedule_id: int | None = None
    after: tuple[dt.datetime, int] | None = None  # keyset: the last (start, id) of the previous page


def slot_page(*, query: SlotQuery, count: int) -> tuple[list[Slot], bool]:
    """One page of public slots in (start, id) order, and whether another page follows."""
    qs = Slot.objects.filter(
        kind=Slot.Kind.FIRST, status__in=query.states, schedule__active=True, facility__active=True
    )
    if query.service_ids is not None:
        qs = qs.filter(service_id__in=query.service_ids)
    if query.start_ge is not None:
        qs = qs.filter(start__gte=query.start_ge)
    if query.start_lt is not None:
        qs = qs.filter(start__lt=query.start_lt)
    if query.schedule_id is not None:
        qs = qs.filter(schedule_id=query.schedule_id)
    if query.after is not None:
        start, last_id = query.after
        qs = qs.filter(Q(start__gt=start) | Q(start=start, id__gt=last_id))
    rows = list(qs.select_related("service").order_by("start", "id")[: count + 1])
    return rows[:count], len(rows) > count


def slot_get(*, slot_id: int) -> Slot | None:
    return (
        Slot.objects.filter(
            pk=slot_id, kind=Slot.Kind.FIRST, status__in=PUBLIC_SLOT_STATES, facility__active=True
        )
        .select_related("service")
        .first()
    )


class BulkSlotRow(NamedTuple):  # a tuple: ~3x cheaper to build than a frozen dataclass, per row
    id: int
    schedule_id: int
    facility_id: int
    service_id: int
    locality_id: int
    status: str
    start: dt.datetime
    end: dt.datetime


BULK_CHUNK = 5000


def bulk_slot_rows(
    *, voivodeship: str, since: dt.datetime | None = None, now: dt.datetime | None = None
) -> Iterator[BulkSlotRow]:
    """Every future first-time slot of one voivodeship, free or busy, streamed from a server-side
    cursor `BULK_CHUNK` rows at a time: memory stays flat whatever the national size (bench/)."""
    now = now or timezone.now()
    qs = Slot.objects.filter(
        voivodeship_id=voivodeship,
        kind=Slot.Kind.FIRST,
        status__in=BULK_SLOT_STATES,
        end__gt=now,
        schedule__active=True,
    )
    if since is not None:
        qs = qs.filter(updated_at__gte=since)
    columns = ("id", "schedule_id", "facility_id", "service_id", "locality_id", "status", "start", "end")
    for row in qs.values_list(*columns).iterator(chunk_size=BULK_CHUNK):
        yield BulkSlotRow._make(row)


def appointment_page(*, scope, query: SlotQuery, count: int, statuses: tuple[str, ...] | None):  # type: ignore[no-untyped-def]
    """A facility system's own appointments (through its FacilityScope), keyset-paged on (start, id)."""
    qs = scope.appointments().select_related("patient", "service", "reason")
    if statuses is not None:
        qs = qs.filter(status__in=statuses)
    if query.start_ge is not None:
        qs = qs.filter(start__gte=query.start_ge)
    if query.start_lt is not None:
        qs = qs.filter(start__lt=query.start_lt)
    if query.after is not None:
        start, last_id = query.after
        qs = qs.filter(Q(start__gt=start) | Q(start=start, id__gt=last_id))
    rows = list(qs.order_by("start", "id")[: count + 1])
    return rows[:count], len(rows) > count


def appointment_get(*, scope, appointment_id: int):  # type: ignore[no-untyped-def]
    return (
        scope.appointments().select_related("patient", "service", "reason").filter(pk=appointment_id).first()
    )
