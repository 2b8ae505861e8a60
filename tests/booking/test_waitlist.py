import datetime as dt

import pytest
from django.utils import timezone

from apps.booking import services
from apps.booking.models import Appointment, Registration
from apps.booking.selectors import waitlist_position
from apps.core.errors import DomainError
from apps.outbox.models import OutboxEvent
from tests.factories import (
    EntitlementFactory,
    LocalityFactory,
    PatientEntitlementFactory,
    PatientFactory,
    ReferralFactory,
)

from .conftest import in_days


def join(patient, service, category="stable", **prefs):
    referral = ReferralFactory(patient=patient, service=service, category=category)
    return services.waitlist_join(
        patient=patient,
        service=service,
        referral_number=referral.number,
        referral_code=referral.access_code,
        **prefs,
    )


def test_queue_order_is_entitlement_then_urgent_then_time(cardiology):
    stable_first = join(PatientFactory(), cardiology)
    urgent = join(PatientFactory(), cardiology, category="urgent")
    donor = PatientFactory()
    PatientEntitlementFactory(patient=donor, entitlement=EntitlementFactory())
    entitled = join(donor, cardiology)
    stable_second = join(PatientFactory(), cardiology)
    positions = [waitlist_position(registration=r) for r in (entitled, urgent, stable_first, stable_second)]
    assert positions == [1, 2, 3, 4]
    assert entitled.entitlement.code == "ZHDK"


def test_a_freed_slot_goes_to_the_first_matching_patient_and_says_why(make_slot, cardiology, patient):
    slot = make_slot(start=in_days(5), end=in_days(5) + dt.timedelta(minutes=20))
    first = join(
        PatientFactory(), cardiology, date_from=timezone.localdate() + dt.timedelta(days=20)
    )  # too late
    second = join(PatientFactory(), cardiology)
    appointment = services.waitlist_allocate_slot(slot_id=slot.pk)
    assert appointment is not None
    assert appointment.registration_id == second.pk
    assert appointment.channel == "waitlist"
    assert appointment.allocation["queue_position"] == 2
    assert appointment.allocation["category"] == "stable"
    assert "entitlement" in appointment.allocation["order"]
    first.refresh_from_db()
    assert first.status == "waiting"
    assert OutboxEvent.objects.filter(type="appointment.allocated", patient_id=second.patient_id).exists()


def test_preferences_place_and_distance_are_respected(make_slot, cardiology, facility_a):
    slot = make_slot()
    far_city = LocalityFactory(
        simc="9220001", name="Gdańsk", voivodeship__teryt="22", lat=54.352, lon=18.6466
    )
    join(PatientFactory(), cardiology, locality=far_city, max_distance_km=50)
    join(PatientFactory(), cardiology, facility=facility_a, voivodeship=facility_a.voivodeship)
    appointment = services.waitlist_allocate_slot(slot_id=slot.pk)
    assert appointment.registration.facility_id == facility_a.pk


def test_a_released_allocation_moves_to_the_next_patient_and_the_first_keeps_their_place(
    make_slot, cardiology, django_capture_on_commit_callbacks
):
    slot = make_slot()
    first = join(PatientFactory(), cardiology)
    second = join(PatientFactory(), cardiology)
    appointment = services.waitlist_allocate_slot(slot_id=slot.pk)
    assert appointment.registration_id == first.pk
    with django_capture_on_commit_callbacks(execute=True):
        services.allocation_release(appointment=appointment)
    first.refresh_from_db()
    assert first.status == "waiting"
    assert waitlist_position(registration=first) == 1
    assert Appointment.objects.get(slot=slot, status="booked").registration_id == second.pk


def test_joining_twice_or_while_booked_is_refused(cardiology):
    patient = PatientFactory()
    join(patient, cardiology)
    with pytest.raises(DomainError) as exc:
        join(patient, cardiology)
    assert exc.value.code == "active_registration_exists"
    assert Registration.objects.filter(patient=patient).count() == 1


def test_booking_directly_turns_the_waiting_entry_into_the_booking(make_slot, cardiology):
    patient = PatientFactory()
    registration = join(patient, cardiology)
    appointment = services.appointment_book(
        slot_id=make_slot().pk, patient=patient
    )  # referral claimed at join
    assert appointment.registration_id == registration.pk
    registration.refresh_from_db()
    assert registration.status == "booked"


def test_leaving_the_waiting_list(cardiology):
    registration = join(PatientFactory(), cardiology)
    services.waitlist_leave(registration=registration)
    registration.refresh_from_db()
    assert registration.status == "closed"
    with pytest.raises(DomainError):
        services.waitlist_leave(registration=registration)


def test_the_sweep_books_waiting_patients_into_new_slots_in_order(make_slot, cardiology):
    a = join(PatientFactory(), cardiology)
    b = join(PatientFactory(), cardiology, category="urgent")
    slot_early = make_slot(start=in_days(2), end=in_days(2) + dt.timedelta(minutes=20))
    make_slot(start=in_days(3), end=in_days(3) + dt.timedelta(minutes=20))
    assert services.waitlist_sweep(service=cardiology) == 2
    assert Appointment.objects.get(registration=b).slot_id == slot_early.pk  # urgent first
    assert Appointment.objects.filter(registration=a).exists()


def test_slots_beyond_the_look_ahead_are_not_allocated(make_slot, cardiology):
    join(PatientFactory(), cardiology)
    far = make_slot(
        start=in_days(60), end=in_days(60) + dt.timedelta(minutes=20)
    )  # visits look 40 days ahead
    assert services.waitlist_allocate_slot(slot_id=far.pk) is None


def test_a_patient_cancellation_offers_the_slot_to_the_waiting_list(
    make_slot, cardiology, django_capture_on_commit_callbacks
):
    slot = make_slot()
    booker = PatientFactory()
    appointment = services.appointment_book(
        slot_id=slot.pk,
        patient=booker,
        referral_number=ReferralFactory(patient=booker, service=cardiology).number,
        referral_code="1234",
    )
    waiting = join(PatientFactory(), cardiology, date_from=timezone.localdate() + dt.timedelta(days=30))
    waiting_now = join(PatientFactory(), cardiology)
    with django_capture_on_commit_callbacks(execute=True):
        services.appointment_cancel_by_patient(appointment=appointment)
    assert Appointment.objects.get(slot=slot, status="booked").registration_id == waiting_now.pk
    waiting.refresh_from_db()
    assert waiting.status == "waiting"


def test_a_released_allocation_records_why(make_slot, cardiology):
    from apps.catalog.services import reference_load

    reference_load()
    join(PatientFactory(), cardiology)
    appointment = services.waitlist_allocate_slot(slot_id=make_slot().pk)
    services.allocation_release(appointment=appointment)
    appointment.refresh_from_db()
    assert (appointment.status, appointment.reason.code) == ("released", "ALLOCATION_DECLINED")
