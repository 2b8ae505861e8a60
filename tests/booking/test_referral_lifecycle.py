"""The e-referral's whole life, as in P1: issued -> registered -> freed -> realised.

A cancellation, a release or leaving the waiting list frees the referral for another booking; the
visit realises it; a no-show does what the catalogue says. Access codes cannot be probed.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.booking import services
from apps.booking.models import ReferralTransition, Registration
from apps.core.errors import DomainError
from apps.patients.models import Referral
from tests.factories import PatientFactory, ReferralFactory, ServiceFactory


def book(slot, patient, referral, code=None, number=None):
    return services.appointment_book(
        slot_id=slot.pk,
        patient=patient,
        referral_number=number or referral.number,
        referral_code=code or referral.access_code,
    )


def status(referral):
    referral.refresh_from_db()
    return referral.status


def refusal(fn, *args, **kwargs):
    with pytest.raises(DomainError) as exc:
        fn(*args, **kwargs)
    return exc.value.code


def test_cancelling_by_the_patient_frees_the_referral(make_slot, patient, referral):
    appointment = book(make_slot(), patient, referral)
    assert status(referral) == "registered"
    assert refusal(book, make_slot(), patient, referral) == "referral_registered"
    services.appointment_cancel_by_patient(appointment=appointment)
    assert status(referral) == "issued"
    assert book(make_slot(), patient, referral).registration.referral_id == referral.pk


def test_a_release_of_an_unconfirmed_booking_frees_the_referral(make_slot, patient, referral):
    start = timezone.now() + dt.timedelta(days=6)
    appointment = book(make_slot(start=start, end=start + dt.timedelta(minutes=20)), patient, referral)
    assert appointment.confirm_by is not None
    assert (
        services.appointments_release_unconfirmed(now=appointment.confirm_by + dt.timedelta(minutes=1)) == 1
    )
    assert status(referral) == "issued"
    book(make_slot(start=start + dt.timedelta(hours=2)), patient, referral)


def test_a_facility_cancellation_keeps_the_referral_with_the_waiting_entry_until_it_is_left(
    make_slot, patient, referral
):
    appointment = book(make_slot(), patient, referral)
    services.appointment_cancel_by_facility(appointment=appointment, reason_code="DOCTOR_ILLNESS")
    entry = Registration.objects.get(patient=patient, status="waiting")
    assert entry.referral_id == referral.pk and status(referral) == "registered"
    services.waitlist_leave(registration=entry)
    assert status(referral) == "issued"
    book(make_slot(), patient, referral)


def test_the_visit_realises_the_referral_and_a_no_show_follows_the_catalogue(
    make_slot, patient, referral, cardiology
):
    appointment = book(make_slot(), patient, referral)
    after = appointment.start + dt.timedelta(hours=1)
    services.appointment_record_outcome(appointment=appointment, outcome="no_show", now=after)
    assert cardiology.referral_after_no_show == "free" and status(referral) == "issued"
    again = book(make_slot(), patient, referral)
    services.appointment_record_outcome(
        appointment=again, outcome="attended", now=again.start + dt.timedelta(hours=1)
    )
    assert status(referral) == "realised"
    assert refusal(book, make_slot(), patient, referral) == "referral_used"
    # Where the catalogue says a no-show spends the referral, it does.
    cardiology.referral_after_no_show = "realised"
    cardiology.save()
    other = ReferralFactory(patient=patient, service=cardiology)
    third = book(make_slot(), patient, other)
    services.appointment_record_outcome(
        appointment=third, outcome="no_show", now=third.start + dt.timedelta(hours=1)
    )
    assert status(other) == "realised"


def test_every_transition_is_recorded(make_slot, patient, referral):
    appointment = book(make_slot(), patient, referral)
    services.appointment_cancel_by_patient(appointment=appointment)
    steps = list(
        ReferralTransition.objects.filter(referral=referral).values_list("from_status", "to_status", "reason")
    )
    assert steps == [("issued", "registered", "booked"), ("registered", "issued", "cancelled_by_patient")]
    assert all(t.registration_id == appointment.registration_id for t in ReferralTransition.objects.all())


def test_the_waiting_list_holds_the_referral_and_leaving_frees_it(patient, referral, cardiology):
    entry = services.waitlist_join(
        patient=patient,
        service=cardiology,
        referral_number=referral.number,
        referral_code=referral.access_code,
    )
    assert status(referral) == "registered"
    assert (
        refusal(
            services.waitlist_join,
            patient=PatientFactory(),
            service=cardiology,
            referral_number=referral.number,
            referral_code=referral.access_code,
        )
        == "referral_invalid"
    )
    services.waitlist_leave(registration=entry)
    assert status(referral) == "issued"


def test_numbers_are_normalised(make_slot, patient, referral):
    typed = " " + "-".join([referral.number[:3].lower(), referral.number[3:8], referral.number[8:]]) + " "
    appointment = book(make_slot(), patient, referral, number=typed)
    assert appointment.registration.referral_id == referral.pk


def test_a_wrong_code_and_another_patients_referral_get_the_same_refusal(make_slot, patient, referral):
    someone_elses = ReferralFactory(service=referral.service, access_code="1111")
    wrong_code = refusal(book, make_slot(), patient, referral, code="0000")
    wrong_patient = refusal(book, make_slot(), patient, someone_elses, code="1111")
    unknown = refusal(book, make_slot(), patient, referral, number="NOSUCHNUMBER", code="1234")
    assert wrong_code == wrong_patient == unknown == "referral_invalid"


def test_a_few_wrong_codes_lock_the_referral_for_a_while(make_slot, patient, referral, settings):
    """At most CER_REFERRAL_MAX_ATTEMPTS tries, then even the right code is refused until the lock
    ends: a 4-digit code can no longer be found in 10,000 tries."""
    settings.CER_REFERRAL_MAX_ATTEMPTS = 3
    slot = make_slot()
    for code in ("0000", "0001", "0002"):
        assert refusal(book, slot, patient, referral, code=code) == "referral_invalid"
    with pytest.raises(DomainError) as locked:
        book(slot, patient, referral)
    assert locked.value.code == "referral_locked" and locked.value.status == 429
    assert locked.value.headers["Retry-After"] == str(settings.CER_REFERRAL_LOCK_SECONDS)
    assert status(referral) == "issued"  # nothing was written
    from django.core.cache import cache

    cache.clear()  # the lock expired
    assert book(slot, patient, referral).registration.referral_id == referral.pk


def test_one_referral_cannot_hold_two_live_registrations_even_bypassing_the_services(
    patient, referral, cardiology
):
    from django.db import IntegrityError, transaction

    from tests.factories import RegistrationFactory

    RegistrationFactory(patient=patient, service=cardiology, status="waiting", referral=referral)
    other = ServiceFactory(endocrinology=True)  # another service, so only the referral collides
    with pytest.raises(IntegrityError), transaction.atomic():
        RegistrationFactory(patient=patient, service=other, status="waiting", referral=referral)
    assert Referral.objects.get(pk=referral.pk).status == "issued"
