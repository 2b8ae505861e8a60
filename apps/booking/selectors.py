from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import router
from django.db.models import QuerySet
from django.utils import timezone

from apps.patients.models import Patient

from . import sql
from .models import LIVE_APPOINTMENT, Appointment, Registration


def waitlist_position(*, registration: Registration) -> int:
    """1-based place in the national queue for the service: entitlement priority, then urgent before
    stable, then time of joining (then id, for a strict order). Counted by `sql.waitlist_positions`:
    index ranges of the entries ahead, not the whole queue (a national queue holds tens of thousands)."""
    return sql.waitlist_positions(registration_ids=[registration.pk])[registration.pk]


def waitlist_entries_for_patient(*, patient: Patient) -> list[tuple[Registration, int]]:
    entries = Registration.objects.filter(patient=patient, status=Registration.Status.WAITING).select_related(
        "service", "voivodeship", "locality", "facility", "practitioner", "entitlement"
    )
    ordered = list(entries.order_by("joined_at"))
    places = sql.waitlist_positions(registration_ids=[entry.pk for entry in ordered])
    return [(entry, places[entry.pk]) for entry in ordered]


def appointment_list_for_patient(*, patient: Patient, upcoming: bool | None = None) -> QuerySet[Appointment]:
    qs = Appointment.objects.filter(patient=patient).select_related(
        "service", "facility", "slot", "slot__practitioner"
    )
    now = timezone.now()
    if upcoming is True:
        return qs.filter(status__in=LIVE_APPOINTMENT, start__gte=now).order_by("start")
    if upcoming is False:
        return qs.exclude(status__in=LIVE_APPOINTMENT, start__gte=now).order_by("-start")
    return qs.order_by("-start")


# The largest id a bigint holds: a larger one names no appointment (and cannot be bound as one).
MAX_ID = 2**63 - 1


def appointment_in_month(
    appointment_id: int, *, slot: bool = False, start: dt.datetime | None = None
) -> dict[str, Any] | None:
    """Filter arguments that read appointment `appointment_id` in its own month's partition, and its
    slot's too when the read joins the slot (`slot`: the join names the slot's id alone); None when there
    is no such appointment. A read by id alone plans and probes every month partition of both tables
    (~4 ms of planning at 34 partitions, docs/scaling.md); its start, which never changes, is found
    first (`sql.appointment_start`, on the database the read will use) unless the caller has it."""
    if not 0 < appointment_id <= MAX_ID:
        return None
    if start is None:
        start = sql.appointment_start(appointment_id=appointment_id, using=router.db_for_read(Appointment))
    if start is None:
        return None
    key: dict[str, Any] = {"pk": appointment_id, "start": start}
    if slot:
        key["slot__start"] = start
    return key


def appointment_get_for_patient(*, patient: Patient, appointment_id: int) -> Appointment | None:
    """Only the patient's own appointment; another patient's id behaves as if it did not exist."""
    key = appointment_in_month(appointment_id, slot=True)
    if key is None:
        return None
    return (
        Appointment.objects.filter(patient=patient, **key)
        .select_related("service", "facility", "slot", "registration", "registration__referral")
        .first()
    )


def appointment_list_for_facility(
    *,
    facility_id: int,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    service_id: int | None = None,
    status: str | None = None,
) -> QuerySet[Appointment]:
    qs = Appointment.objects.filter(facility_id=facility_id).select_related("service", "patient", "slot")
    if date_from:
        qs = qs.filter(start__date__gte=date_from)
    if date_to:
        qs = qs.filter(start__date__lte=date_to)
    if service_id:
        qs = qs.filter(service_id=service_id)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("start", "id")
