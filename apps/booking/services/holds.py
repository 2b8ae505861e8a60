"""Short holds: a patient keeps a slot for a few minutes while they complete the booking."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from apps.core.errors import DomainError
from apps.patients.models import Patient
from apps.scheduling.models import Slot

from .. import rules, sql
from ..models import Registration
from ._transitions import (
    check_bookable,
    facts_for,
    now_or,
    offer_freed_slots,
    refuse_second_registration,
)


def slot_hold(*, slot_id: int, patient: Patient, now: dt.datetime | None = None) -> Slot:
    """Hold a free slot for a patient while they confirm (CER_HOLD_SECONDS). One hold per service.

    The booking rules are checked first (all but the e-referral, entered on the booking step), so a
    patient learns before choosing a time that they cannot book.
    """
    now = now_or(now)
    with transaction.atomic():
        slot = Slot.objects.select_related("service").filter(pk=slot_id).first()
        if slot is None:
            raise DomainError("slot_not_found")
        last = sql.last_screening(patient_id=patient.pk, service_id=slot.service_id)
        rules.check(
            facts_for(patient=patient, slot=slot, last_screening=last, referral=None, referral_known=False)
        )
        if Registration.objects.filter(
            patient=patient, service=slot.service, status=Registration.Status.BOOKED
        ).exists():
            raise refuse_second_registration(patient, slot.service)
        # Release the patient's other holds for this service: one patient cannot sit on many slots.
        Slot.objects.filter(held_by=patient, service=slot.service, status=Slot.Status.HELD).exclude(
            pk=slot_id
        ).update(status=Slot.Status.FREE, hold_until=None, held_by=None, updated_at=now)
        claimed = (
            Slot.objects.filter(pk=slot_id, start__gt=now)
            .filter(
                Q(status=Slot.Status.FREE)
                | Q(status=Slot.Status.HELD, hold_until__lte=now)
                | Q(status=Slot.Status.HELD, held_by=patient)
            )
            .update(
                status=Slot.Status.HELD,
                held_by=patient,
                hold_until=now + dt.timedelta(seconds=settings.CER_HOLD_SECONDS),
                updated_at=now,
            )
        )
        if not claimed:
            check_bookable(slot, patient, now)  # explains why (past, held by another, taken)
            raise DomainError("slot_not_free")
        slot.refresh_from_db()
        return slot


def slot_release_hold(*, slot_id: int, patient: Patient) -> bool:
    with transaction.atomic():
        released = Slot.objects.filter(pk=slot_id, status=Slot.Status.HELD, held_by=patient).update(
            status=Slot.Status.FREE, hold_until=None, held_by=None, updated_at=now_or(None)
        )
        if released:
            offer_freed_slots(slot_id)
        return bool(released)


def holds_expire(*, now: dt.datetime | None = None) -> int:
    """Free every hold past its deadline (periodic). Returns how many slots went back to the pool."""
    now = now_or(now)
    with transaction.atomic():
        ids = list(
            Slot.objects.filter(status=Slot.Status.HELD, hold_until__lte=now)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:5000]
        )
        Slot.objects.filter(pk__in=ids, status=Slot.Status.HELD).update(
            status=Slot.Status.FREE, hold_until=None, held_by=None, updated_at=now
        )
        offer_freed_slots(*ids)
    return len(ids)
