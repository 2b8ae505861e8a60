"""Reads of the patient pages that the booking selectors do not cover. Each is scoped to one patient."""

from __future__ import annotations

import datetime as dt

from apps.booking.models import LIVE_APPOINTMENT, Appointment, Registration
from apps.catalog.models import Facility
from apps.patients.models import Patient
from apps.scheduling.models import Slot


def patient_for_user(*, user_id: int | None) -> Patient | None:
    if user_id is None:
        return None
    return Patient.objects.filter(user__pk=user_id).first()


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


def waiting_registration_get(*, patient: Patient, registration_id: int) -> Registration | None:
    return Registration.objects.filter(
        pk=registration_id, patient=patient, status=Registration.Status.WAITING
    ).first()


def slot_for_page(*, slot_id: int) -> Slot | None:
    """One slot for its public page (any state: the page says when it is no longer free)."""
    return (
        Slot.objects.select_related("service", "facility", "facility__locality", "practitioner")
        .filter(pk=slot_id)
        .first()
    )


def facility_for_page(*, facility_id: int) -> Facility | None:
    return Facility.objects.select_related("locality").filter(pk=facility_id, active=True).first()
