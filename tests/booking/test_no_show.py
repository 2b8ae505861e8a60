"""The no-show rule: bookings left without an outcome past the catalogue's `no_show_after_hours`."""

import datetime as dt

import pytest

from apps.booking import services
from apps.booking.models import Appointment, Registration
from apps.outbox.models import OutboxEvent
from tests.factories import PatientFactory, ReferralFactory

from .test_booking import book, refusal
from .test_concurrency import race

pytestmark = pytest.mark.django_db

VISIT = dt.timedelta(minutes=20)


@pytest.fixture
def past_booking(make_slot, patient, referral):
    """A booking made a week before its visit, which was ten days ago; no outcome recorded."""
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=10)
    slot = make_slot(start=start, end=start + VISIT)
    return book(slot, patient, referral, now=start - dt.timedelta(days=7))


def _at(appointment, hours_after_end):
    return appointment.slot.end + dt.timedelta(hours=hours_after_end)


def test_a_booking_without_outcome_becomes_a_no_show_after_the_catalogue_hours(past_booking):
    assert past_booking.service.no_show_after_hours == 72
    assert services.appointments_mark_no_show(now=_at(past_booking, 71)) == 0
    assert services.appointments_mark_no_show(now=_at(past_booking, 72)) == 1
    past_booking.refresh_from_db()
    assert past_booking.status == "no_show"
    assert past_booking.reason.code == "NO_SHOW_AUTO"
    assert past_booking.registration.status == "closed"
    assert past_booking.registration.closed_reason == "no_show"
    event = OutboxEvent.objects.get(aggregate_id=past_booking.pk, type="appointment.no_show")
    assert event.payload["automatic"] is True
    # A second run, or a run after a crash, changes nothing more and records nothing more.
    assert services.appointments_mark_no_show(now=_at(past_booking, 80)) == 0
    assert OutboxEvent.objects.filter(type="appointment.no_show").count() == 1


def test_the_rule_leaves_recorded_outcomes_future_visits_and_services_without_it(
    make_slot, past_booking, referral
):
    other = PatientFactory()
    start = past_booking.start + dt.timedelta(hours=1)
    attended = book(
        make_slot(start=start, end=start + VISIT),
        other,
        ReferralFactory(patient=other, service=past_booking.service),
        now=start - dt.timedelta(days=1),
    )
    services.appointment_record_outcome(appointment=attended, outcome="attended", now=start + VISIT)
    later = PatientFactory()
    soon = _at(past_booking, 100) - dt.timedelta(hours=1)
    upcoming = book(
        make_slot(start=soon, end=soon + VISIT),
        later,
        ReferralFactory(patient=later, service=past_booking.service),
        now=soon - dt.timedelta(days=2),
    )
    assert services.appointments_mark_no_show(now=_at(past_booking, 100)) == 1
    statuses = dict(Appointment.objects.values_list("pk", "status"))
    assert statuses == {past_booking.pk: "no_show", attended.pk: "attended", upcoming.pk: "booked"}

    service = past_booking.service
    service.no_show_after_hours = None
    service.save()
    assert services.appointments_mark_no_show(now=_at(past_booking, 10_000)) == 0
    assert Appointment.objects.get(pk=upcoming.pk).status == "booked"


def test_after_an_automatic_no_show_the_patient_can_book_again(past_booking, make_slot, patient):
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    slot = make_slot(start=soon, end=soon + VISIT)
    assert refusal(book, slot, patient, ReferralFactory(patient=patient, service=past_booking.service)) == (
        "active_registration_exists"
    )
    services.appointments_mark_no_show()
    again = book(slot, patient, ReferralFactory(patient=patient, service=past_booking.service))
    assert again.status == "booked"
    assert Registration.objects.filter(patient=patient, status="booked").count() == 1


def test_the_facility_can_still_record_an_automatic_no_show_as_attended(past_booking):
    services.appointments_mark_no_show()
    corrected = services.appointment_record_outcome(appointment=past_booking, outcome="attended")
    assert corrected.status == "attended" and corrected.reason is None
    assert corrected.registration.closed_reason == "attended"
    assert OutboxEvent.objects.filter(aggregate_id=past_booking.pk, type="appointment.attended").exists()


def test_a_no_show_recorded_by_the_facility_is_final(past_booking):
    services.appointment_record_outcome(appointment=past_booking, outcome="no_show")
    assert refusal(services.appointment_record_outcome, appointment=past_booking, outcome="attended") == (
        "booking_state"
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_two_workers_at_once_mark_each_booking_once(make_slot, cardiology):
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=10)
    for i in range(30):
        patient = PatientFactory()
        at = start + i * VISIT
        referral = ReferralFactory(patient=patient, service=cardiology)
        book(make_slot(start=at, end=at + VISIT), patient, referral, now=at - dt.timedelta(days=1))
    results = race([lambda: services.appointments_mark_no_show(batch=4) for _ in range(4)])
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 30
    assert Appointment.objects.filter(status="no_show", reason__code="NO_SHOW_AUTO").count() == 30
    assert OutboxEvent.objects.filter(type="appointment.no_show").count() == 30


def test_system_reasons_are_chosen_by_code_not_by_kind(make_slot, patient, referral, cardiology):
    """The reference data has several codes per kind (NO_SHOW and LATE_ARRIVAL, UNCONFIRMED_RELEASED
    and MOVED_EARLIER): the system's own transitions name theirs."""
    from apps.catalog.services import reference_load

    reference_load()
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=2)
    missed = book(
        make_slot(start=start, end=start + VISIT), patient, referral, now=start - dt.timedelta(days=5)
    )
    assert services.appointment_record_outcome(appointment=missed, outcome="no_show").reason.code == "NO_SHOW"

    other = PatientFactory()
    soon = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=5)
    unconfirmed = book(
        make_slot(start=soon, end=soon + VISIT), other, ReferralFactory(patient=other, service=cardiology)
    )
    services.appointments_release_unconfirmed(now=unconfirmed.confirm_by + dt.timedelta(minutes=1))
    unconfirmed.refresh_from_db()
    assert (unconfirmed.status, unconfirmed.reason.code) == ("released", "UNCONFIRMED_RELEASED")
