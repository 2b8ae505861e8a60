"""Booking a slot: by the patient on the web, or by a facility at the desk, by phone or e-mail."""

from __future__ import annotations

import contextlib
import datetime as dt

from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Facility
from apps.core.errors import DomainError
from apps.core.queries import one_or_none
from apps.patients.models import Patient

from .. import rules, sql
from ..models import Appointment, Registration
from . import referrals
from ._transitions import (
    Channel,
    appointment_event_new,
    appointment_new,
    check_bookable,
    facts_for,
    lock_slot_facts,
    now_or,
    refuse_second_registration,
    registration_new,
)


def slot_refuse_if_taken(
    *, slot_id: int, facility_id: int | None = None, now: dt.datetime | None = None
) -> None:
    """Refuse at once a future slot whose committed state already rules a booking out (booked,
    blocked, cancelled): no lock, no transaction, no write. The cheap answer to most lost races, where
    a desk system sends a slot someone else booked moments ago. Passing proves nothing:
    `appointment_book` checks everything again under the slot lock, and gives the same answer."""
    if sql.slot_taken(slot_id=slot_id, now=now_or(now), facility_id=facility_id):
        raise DomainError("slot_not_free")


def appointment_book(
    *,
    slot_id: int,
    patient: Patient,
    channel: str = Channel.WEB,
    referral_number: str | None = None,
    referral_code: str | None = None,
    facility: Facility | None = None,
    now: dt.datetime | None = None,
) -> Appointment:
    """Book a slot: every rule is checked under the slot's row lock, in one transaction.

    `facility` restricts the slot to the calling facility (desk bookings through the API). A patient
    already waiting for the service has their waiting-list entry (and the e-referral it holds) turned
    into this booking.

    The busiest write of the system: one statement locks the slot and reads every fact the rules need
    (`sql.slot_facts`), the rules run in Python (`rules.check`), and one statement writes the
    registration, the appointment, the slot and the event (`sql.booking_write`).
    """
    now = now_or(now)
    if channel not in Channel.values or channel == Channel.WAITLIST:
        raise DomainError("validation_error", field="channel")
    today = timezone.localdate(now)
    # Its own transaction when called alone (the patient's page); the caller's when there is one (the
    # API's request transaction, which stores a refusal under the Idempotency-Key and commits it). Then a
    # refusal must leave nothing written, and a savepoint is taken only where a write comes before a
    # possible refusal: an e-referral claimed before the booking's statement. Without one, that statement
    # is the only write, and it writes nothing or all (`sql.booking_write`, `in_savepoint=False`).
    in_callers = transaction.get_connection().in_atomic_block
    with contextlib.nullcontext() if in_callers else transaction.atomic():
        facts = lock_slot_facts(slot_id=slot_id, patient=patient, now=now)
        slot, service = facts.slot, facts.slot.service
        if facility is not None and slot.facility_id != facility.pk:
            raise DomainError("slot_not_found")
        check_bookable(slot, patient, now)
        waiting = None
        if facts.waiting_id is not None:
            waiting = one_or_none(
                Registration.objects.select_for_update(of=("self",))
                .select_related("referral")
                .filter(pk=facts.waiting_id, status=Registration.Status.WAITING)
            )
        referral = None
        if waiting is not None:
            # The waiting-list entry already holds its referral (checked when the patient joined).
            rules.check(
                facts_for(
                    patient=patient, slot=slot, last_screening=facts.last_screening, referral=waiting.referral
                )
            )
            registration, new = waiting, False
        else:
            # Everything but the referral first: a patient who cannot book spends no access-code try.
            rules.check(
                facts_for(
                    patient=patient,
                    slot=slot,
                    last_screening=facts.last_screening,
                    referral=None,
                    referral_known=False,
                )
            )
            referral = referrals.referral_find(
                patient=patient, service=service, number=referral_number, code=referral_code, today=today
            )
            rules.check(
                facts_for(patient=patient, slot=slot, last_screening=facts.last_screening, referral=referral)
            )
            registration = registration_new(
                patient=patient,
                service=service,
                referral=referral,
                status=Registration.Status.BOOKED,
                now=now,
                entitlement=facts.entitlement,
            )
            registration.pk, new = facts.registration_id, True
        savepoint = in_callers and referral is not None
        with transaction.atomic() if savepoint else contextlib.nullcontext():
            if referral is not None:
                referrals.referral_register(
                    referral=referral, registration_id=registration.pk, now=now, reason="booked"
                )
            appointment = appointment_new(registration=registration, slot=slot, channel=channel, now=now)
            appointment.pk = facts.appointment_id
            event = appointment_event_new(appointment, "appointment.booked")
            if not sql.booking_write(
                registration=registration,
                new=new,
                appointment=appointment,
                event=event,
                now=now,
                in_savepoint=savepoint or not in_callers,
            ):
                # Another live registration of the patient for the service (a concurrent booking, or
                # one that was waiting and has just been given a slot): nothing was written.
                raise refuse_second_registration(patient, service)
        appointment.patient = patient
        return appointment
