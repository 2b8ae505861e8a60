import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from apps.booking import services
from apps.booking.models import Appointment, Registration
from apps.catalog import reason_cache
from apps.core.errors import DomainError, message_param
from apps.outbox.models import OutboxEvent
from apps.patients.models import ScreeningRecord
from apps.scheduling.models import Slot
from tests.factories import (
    ContractFactory,
    EntitlementFactory,
    FacilityFactory,
    PatientEntitlementFactory,
    PatientFactory,
    ReferralFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)

from .conftest import in_days


def book(slot, patient, referral=None, **kw):
    return services.appointment_book(
        slot_id=slot.pk,
        patient=patient,
        referral_number=referral.number if referral else None,
        referral_code=referral.access_code if referral else None,
        **kw,
    )


def refusal(fn, *args, **kwargs) -> str:
    with pytest.raises(DomainError) as exc:
        fn(*args, **kwargs)
    return exc.value.code


def test_booking_takes_the_slot_uses_the_referral_and_writes_an_event(make_slot, patient, referral):
    slot = make_slot()
    appointment = book(slot, patient, referral)
    slot.refresh_from_db()
    referral.refresh_from_db()
    assert appointment.status == "booked"
    assert slot.status == "booked"
    assert referral.status == "registered"
    assert appointment.registration.status == "booked"
    event = OutboxEvent.objects.get(type="appointment.booked")
    assert event.facility_id == slot.facility_id
    assert event.patient_id == patient.pk
    assert event.payload["appointment_id"] == appointment.pk
    assert event.txid > 0


def test_it_rejects_a_second_cardiology_booking_elsewhere_and_names_the_first(
    make_slot, patient, referral, cardiology
):
    book(make_slot(), patient, referral)
    krakow = FacilityFactory(name="Szpital Kraków")
    ContractFactory(facility=krakow, service=cardiology)
    other = SlotFactory(schedule=ScheduleFactory(facility=krakow, service=cardiology))
    second_referral = ReferralFactory(patient=patient, service=cardiology)
    with pytest.raises(DomainError) as exc:
        book(other, patient, second_referral)
    assert exc.value.code == "active_registration_exists"
    assert "Facility A" in exc.value.message_in("pl")
    other.refresh_from_db()
    second_referral.refresh_from_db()
    assert other.status == "free"
    assert second_referral.status == "issued"  # nothing changed


@pytest.mark.parametrize(
    ("number", "code", "expected"),
    [
        (None, None, "referral_required"),
        ("REFX", "0000", "referral_invalid"),
        ("OWN", "9999", "referral_invalid"),
    ],
)
def test_a_wrong_or_missing_referral_is_refused(make_slot, patient, referral, number, code, expected):
    slot = make_slot()
    number = referral.number if number == "OWN" else number
    assert (
        refusal(
            services.appointment_book,
            slot_id=slot.pk,
            patient=patient,
            referral_number=number,
            referral_code=code,
        )
        == expected
    )
    slot.refresh_from_db()
    assert slot.status == "free"


def test_a_referral_holds_one_registration_and_is_spent_by_the_visit(make_slot, patient, referral):
    appointment = book(make_slot(), patient, referral)
    other_patient_booking = ReferralFactory(patient=patient, service=referral.service)
    assert other_patient_booking.status == "issued"
    # Cancelling frees the referral for another booking (P1); the visit realises it.
    services.appointment_cancel_by_patient(appointment=appointment)
    referral.refresh_from_db()
    assert referral.status == "issued"
    again = book(make_slot(), patient, referral)
    past = again.start + dt.timedelta(minutes=30)
    services.appointment_record_outcome(appointment=again, outcome="attended", now=past)
    referral.refresh_from_db()
    assert referral.status == "realised"
    assert refusal(book, make_slot(), patient, referral) == "referral_used"


def test_an_expired_referral_or_one_for_another_service_is_refused(make_slot, patient, cardiology):
    expired = ReferralFactory(
        patient=patient, service=cardiology, issued_on=dt.date(2025, 1, 1), valid_until=dt.date(2025, 12, 31)
    )
    assert refusal(book, make_slot(), patient, expired) == "referral_expired"
    endo = ReferralFactory(patient=patient, service=ServiceFactory(endocrinology=True))
    assert refusal(book, make_slot(), patient, endo) == "referral_wrong_service"
    someone_elses = ReferralFactory(service=cardiology)
    # The same answer as a wrong code: a code cannot be tried against other people's referrals.
    assert refusal(book, make_slot(), patient, someone_elses) == "referral_invalid"


def test_slots_in_the_past_blocked_or_taken_are_refused(make_slot, patient, referral):
    past = make_slot(start=timezone.now() - dt.timedelta(hours=2), end=timezone.now() - dt.timedelta(hours=1))
    assert refusal(book, past, patient, referral) == "slot_in_past"
    assert refusal(book, make_slot(status="blocked"), patient, referral) == "slot_not_free"
    taken = make_slot()
    other = PatientFactory()
    book(taken, other, ReferralFactory(service=taken.service, patient=other))
    assert refusal(book, taken, patient, referral) == "slot_not_free"
    referral.refresh_from_db()
    assert referral.status == "issued"


def test_a_slot_held_by_someone_else_is_refused_until_the_hold_expires(make_slot, patient, referral):
    slot = make_slot()
    other = PatientFactory()
    services.slot_hold(slot_id=slot.pk, patient=other)
    assert refusal(book, slot, patient, referral) == "hold_not_yours"
    later = timezone.now() + dt.timedelta(hours=1)
    appointment = services.appointment_book(
        slot_id=slot.pk, patient=patient, referral_number=referral.number, referral_code="4321", now=later
    )
    assert appointment.patient_id == patient.pk


def test_a_hold_expires_and_the_slot_returns_to_the_pool(make_slot, patient):
    slot = make_slot()
    services.slot_hold(slot_id=slot.pk, patient=patient)
    assert services.holds_expire() == 0
    assert services.holds_expire(now=timezone.now() + dt.timedelta(hours=1)) == 1
    slot.refresh_from_db()
    assert (slot.status, slot.held_by_id, slot.hold_until) == ("free", None, None)


def test_holding_a_second_slot_releases_the_first(make_slot, patient):
    first, second = make_slot(), make_slot()
    services.slot_hold(slot_id=first.pk, patient=patient)
    services.slot_hold(slot_id=second.pk, patient=patient)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("free", "held")


def test_an_unknown_slot_is_a_clear_error(patient):
    assert refusal(services.appointment_book, slot_id=999999, patient=patient) == "slot_not_found"


def test_a_service_before_its_cer_date_cannot_be_booked(patient, facility_a):
    endo = ServiceFactory(endocrinology=True, referral_required=False)
    ContractFactory(facility=facility_a, service=endo)
    slot = SlotFactory(schedule=ScheduleFactory(facility=facility_a, service=endo))
    with time_machine.travel(dt.datetime(2026, 7, 1, 8, tzinfo=dt.UTC)):
        early = SlotFactory(
            schedule=slot.schedule,
            start=dt.datetime(2026, 7, 20, 8, tzinfo=dt.UTC),
            end=dt.datetime(2026, 7, 20, 8, 20, tzinfo=dt.UTC),
        )
        assert refusal(book, early, patient) == "service_not_covered"


class TestScreeningEligibility:
    @pytest.fixture
    def mammo_slot(self, mammography, facility_a):
        ContractFactory(facility=facility_a, service=mammography)
        schedule = ScheduleFactory(facility=facility_a, service=mammography)
        return lambda: SlotFactory(schedule=schedule)

    def test_a_man_is_refused(self, mammo_slot):
        man = PatientFactory(sex="M")
        assert refusal(book, mammo_slot(), man) == "not_eligible_sex"

    @pytest.mark.parametrize(("birth_year", "ok"), [(1951, False), (1952, True), (1981, True), (1982, False)])
    def test_age_is_counted_by_birth_year(self, mammo_slot, birth_year, ok):
        # In 2026 the programme covers women born 1952-1981 (45-74 by year of birth).
        slot = mammo_slot()
        woman = PatientFactory(birth_date=dt.date(birth_year, 12, 31))
        with time_machine.travel(dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC), tick=False):
            if ok:
                assert book(slot, woman).status == "booked"
            else:
                assert refusal(book, slot, woman) == "not_eligible_age"

    def test_a_second_mammography_within_24_months_is_refused_with_the_date(self, mammo_slot, mammography):
        woman = PatientFactory(birth_date=dt.date(1970, 1, 1))
        last = timezone.localdate() - dt.timedelta(days=200)
        ScreeningRecord.objects.create(patient=woman, service=mammography, performed_on=last)
        with pytest.raises(DomainError) as exc:
            book(mammo_slot(), woman)
        assert exc.value.code == "not_eligible_interval"
        assert str(exc.value.params["next"]) == last.replace(year=last.year + 2).isoformat()
        # The message words the date as people write it (issue 18); the API params keep ISO.
        assert message_param(last.replace(year=last.year + 2), "pl") in exc.value.message_in("pl")

    def test_a_risk_group_uses_the_shorter_interval(self, mammo_slot, mammography):
        woman = PatientFactory(birth_date=dt.date(1970, 1, 1), screening_risk_group=True)
        ScreeningRecord.objects.create(
            patient=woman, service=mammography, performed_on=timezone.localdate() - dt.timedelta(days=400)
        )
        assert book(mammo_slot(), woman).status == "booked"

    def test_an_attended_screening_starts_the_interval(self, mammo_slot):
        woman = PatientFactory(birth_date=dt.date(1970, 1, 1))
        appointment = book(mammo_slot(), woman)
        services.appointment_record_outcome(
            appointment=appointment, outcome="attended", now=appointment.start + dt.timedelta(minutes=5)
        )
        assert refusal(book, mammo_slot(), woman) == "not_eligible_interval"


def test_confirm_cancel_and_the_slot_goes_back_to_the_pool(make_slot, patient, referral):
    slot = make_slot()
    appointment = book(slot, patient, referral)
    assert services.appointment_confirm(appointment=appointment).status == "confirmed"
    cancelled = services.appointment_cancel_by_patient(appointment=appointment)
    slot.refresh_from_db()
    assert cancelled.status == "cancelled_by_patient"
    assert slot.status == "free"
    assert cancelled.registration.status == "closed"
    assert refusal(services.appointment_confirm, appointment=cancelled) == "booking_state"
    assert list(OutboxEvent.objects.order_by("id").values_list("type", flat=True)) == [
        "appointment.booked",
        "appointment.confirmed",
        "appointment.cancelled",
    ]


def test_an_unknown_cancellation_reason_changes_nothing(make_slot, patient, referral):
    appointment = book(make_slot(), patient, referral)
    assert refusal(services.appointment_cancel_by_facility, appointment=appointment, reason_code="NOPE") == (
        "unknown_reason"
    )
    appointment.refresh_from_db()
    assert appointment.status == "booked"


def test_reschedule_moves_the_booking_and_frees_the_old_slot_together(make_slot, patient, referral):
    old_slot, new_slot = make_slot(), make_slot()
    appointment = book(old_slot, patient, referral)
    services.appointment_confirm(appointment=appointment)
    new = services.appointment_reschedule(appointment=appointment, new_slot_id=new_slot.pk)
    old_slot.refresh_from_db()
    new_slot.refresh_from_db()
    appointment.refresh_from_db()
    assert (old_slot.status, new_slot.status) == ("free", "booked")
    assert appointment.status == "rescheduled" and appointment.rescheduled_to_id == new.pk
    assert new.status == "confirmed"
    assert new.registration_id == appointment.registration_id


def test_a_failed_reschedule_changes_nothing(make_slot, patient, referral):
    old_slot = make_slot()
    appointment = book(old_slot, patient, referral)
    blocked = make_slot(status="blocked")
    assert refusal(services.appointment_reschedule, appointment=appointment, new_slot_id=blocked.pk) == (
        "slot_not_free"
    )
    appointment.refresh_from_db()
    old_slot.refresh_from_db()
    assert (appointment.status, old_slot.status) == ("booked", "booked")


def test_outcome_only_after_the_start(make_slot, patient, referral):
    appointment = book(make_slot(), patient, referral)
    assert refusal(services.appointment_record_outcome, appointment=appointment, outcome="attended") == (
        "outcome_too_early"
    )
    after = appointment.start + dt.timedelta(minutes=30)
    done = services.appointment_record_outcome(appointment=appointment, outcome="no_show", now=after)
    assert done.status == "no_show"
    assert done.reason.code == "NO_SHOW"
    assert (
        refusal(services.appointment_record_outcome, appointment=done, outcome="bogus") == "validation_error"
    )


def test_unconfirmed_bookings_are_released_at_their_deadline(make_slot, patient, referral):
    slot = make_slot(start=in_days(5), end=in_days(5) + dt.timedelta(minutes=20))
    appointment = book(slot, patient, referral)
    assert appointment.confirm_by == slot.start - dt.timedelta(hours=48)
    assert services.appointments_release_unconfirmed() == 0
    assert (
        services.appointments_release_unconfirmed(now=appointment.confirm_by + dt.timedelta(minutes=1)) == 1
    )
    appointment.refresh_from_db()
    slot.refresh_from_db()
    assert appointment.status == "released"
    assert slot.status == "free"
    # Running it again (a second worker, a retry) changes nothing more.
    assert (
        services.appointments_release_unconfirmed(now=appointment.confirm_by + dt.timedelta(minutes=2)) == 0
    )


def test_a_booking_close_to_the_visit_needs_no_confirmation(make_slot, patient, referral):
    slot = make_slot(
        start=timezone.now() + dt.timedelta(hours=20), end=timezone.now() + dt.timedelta(hours=21)
    )
    assert book(slot, patient, referral).confirm_by is None


def test_facility_cancellation_rebooks_the_patient_at_the_earliest_matching_slot(
    make_slot, patient, referral
):
    slot = make_slot(start=in_days(3), end=in_days(3) + dt.timedelta(minutes=20))
    later = make_slot(start=in_days(9), end=in_days(9) + dt.timedelta(minutes=20))
    earlier = make_slot(start=in_days(6), end=in_days(6) + dt.timedelta(minutes=20))
    appointment = book(slot, patient, referral)
    services.appointment_cancel_by_facility(appointment=appointment, reason_code="DOCTOR_ILLNESS")
    slot.refresh_from_db()
    assert slot.status == "cancelled"
    new = Appointment.objects.get(patient=patient, status="booked")
    assert new.slot_id == earlier.pk
    assert new.registration_id == appointment.registration_id
    later.refresh_from_db()
    assert later.status == "free"


def test_facility_cancellation_without_a_slot_puts_the_patient_back_at_their_place(
    make_slot, patient, referral
):
    appointment = book(make_slot(), patient, referral)
    services.appointment_cancel_by_facility(appointment=appointment, reason_code="DOCTOR_ILLNESS")
    registration = Registration.objects.get(pk=appointment.registration_id)
    assert registration.status == "waiting"
    assert registration.joined_at == appointment.registration.joined_at
    assert OutboxEvent.objects.filter(type="registration.waiting").exists()


def test_a_whole_session_is_cancelled_and_every_patient_keeps_a_place(schedule, make_slot, cardiology):
    day = in_days(4)
    booked = []
    for i in range(3):
        s = make_slot(start=day + dt.timedelta(minutes=20 * i), end=day + dt.timedelta(minutes=20 * (i + 1)))
        p = PatientFactory()
        r = ReferralFactory(patient=p, service=cardiology)
        booked.append(book(s, p, r))
    free_same_day = make_slot(start=day + dt.timedelta(hours=2), end=day + dt.timedelta(hours=2, minutes=20))
    spare = make_slot(start=in_days(8), end=in_days(8) + dt.timedelta(minutes=20))
    result = services.session_cancel_by_facility(
        schedule=schedule, day=timezone.localdate(day), reason_code="DOCTOR_ILLNESS"
    )
    assert result == {"cancelled": 3, "rebooked": 1, "waiting": 2, "slots_closed": 1}
    free_same_day.refresh_from_db()
    assert free_same_day.status == "cancelled"
    # The first in line (earliest registration) got the one spare slot.
    assert Appointment.objects.get(slot=spare).patient_id == booked[0].patient_id
    assert Registration.objects.filter(status="waiting").count() == 2


def test_a_booking_is_one_locking_read_and_one_write(make_slot, patient, django_assert_num_queries):
    """The busiest write of the system: the slot lock with every fact the rules need, then one
    statement for registration, appointment, slot and event. In a caller's transaction (the API's;
    here the test's) no savepoint is taken unless an e-referral is claimed before the write."""
    slot = make_slot()
    referral = ReferralFactory(patient=patient, service=slot.service, access_code="4321")
    with django_assert_num_queries(6):  # the referral's row lock, a savepoint, its claim, the release
        book(slot, patient, referral)
    other = PatientFactory()
    screening = ServiceFactory(code="NOREF", referral_required=False)
    ContractFactory(facility=slot.facility, service=screening)
    free = SlotFactory(schedule=ScheduleFactory(facility=slot.facility, service=screening))
    with django_assert_num_queries(2) as ran:
        book(free, other)
    assert not any("SAVEPOINT" in str(q["sql"]) for q in ran.captured_queries)


def test_the_one_statement_writes_what_the_rules_decided(make_slot, patient, referral):
    strong = EntitlementFactory(code="INW_WOJ", priority=30)
    PatientEntitlementFactory(patient=patient, entitlement=strong, valid_from=dt.date(2020, 1, 1))
    PatientEntitlementFactory(patient=patient, entitlement=EntitlementFactory(code="ZHDK", priority=10))
    slot = make_slot()
    appointment = book(slot, patient, referral)
    stored = Appointment.objects.select_related("registration").get(pk=appointment.pk)
    registration = stored.registration
    assert (registration.status, registration.entitlement_id) == ("booked", strong.pk)
    assert registration.priority == 30
    assert registration.referral_id == referral.pk and registration.pk == appointment.registration_id
    assert (stored.slot_id, stored.patient_id, stored.facility_id, stored.start) == (
        slot.pk,
        patient.pk,
        slot.facility_id,
        slot.start,
    )
    assert (stored.status, stored.channel, stored.version, stored.allocation) == ("booked", "web", 1, {})
    event = OutboxEvent.objects.get(type="appointment.booked")
    assert event.payload["registration_id"] == registration.pk
    assert event.payload["slot_id"] == slot.pk and event.aggregate_id == appointment.pk
    slot.refresh_from_db()
    assert (slot.status, slot.hold_until, slot.held_by_id) == ("booked", None, None)


def test_a_refused_write_leaves_nothing_behind(make_slot, patient, referral, cardiology):
    """The registration index refuses the second booking inside the one statement: no appointment, no
    event, the slot stays free and the referral unused (the savepoint undoes its claim)."""
    book(make_slot(), patient, referral)
    second = make_slot(start=in_days(9))
    second_referral = ReferralFactory(patient=patient, service=cardiology)
    before = (Appointment.objects.count(), Registration.objects.count(), OutboxEvent.objects.count())
    # The facts say "no waiting entry", so the write runs and meets the live registration.
    assert refusal(book, second, patient, second_referral) == "active_registration_exists"
    assert (Appointment.objects.count(), Registration.objects.count(), OutboxEvent.objects.count()) == before
    second.refresh_from_db()
    second_referral.refresh_from_db()
    assert second.status == "free" and second_referral.status == "issued"


def test_a_refused_write_without_a_referral_leaves_nothing_behind_without_a_savepoint(make_slot, patient):
    """In the caller's transaction and with no referral to claim, the one statement is the only write:
    refused, it wrote nothing, so the caller may commit (the API stores the refusal)."""
    screening = ServiceFactory(code="NOREF", referral_required=False)
    facility = make_slot().facility
    ContractFactory(facility=facility, service=screening)
    schedule = ScheduleFactory(facility=facility, service=screening)
    book(SlotFactory(schedule=schedule), patient)
    second = SlotFactory(schedule=schedule, start=in_days(9))
    before = (Appointment.objects.count(), Registration.objects.count(), OutboxEvent.objects.count())
    assert refusal(book, second, patient) == "active_registration_exists"
    assert (Appointment.objects.count(), Registration.objects.count(), OutboxEvent.objects.count()) == before
    second.refresh_from_db()
    assert second.status == "free"


def test_a_partial_write_without_a_savepoint_fails_the_callers_transaction(make_slot, patient):
    """A slot marked free with a live appointment on it (a broken invariant) lets the statement write
    the registration and then refuse the appointment. With no savepoint to undo it, the booking is not
    refused (the API would commit the registration with its stored 409) but fails, and the caller's
    transaction rolls back; on its own (the patient's page) the booking's transaction does."""
    from django.db import transaction

    from apps.booking.sql import PartialBookingWrite

    screening = ServiceFactory(code="NOREF", referral_required=False)
    facility = make_slot().facility
    ContractFactory(facility=facility, service=screening)
    slot = SlotFactory(schedule=ScheduleFactory(facility=facility, service=screening))
    book(slot, PatientFactory())
    Slot.objects.filter(pk=slot.pk).update(status="free")
    registrations = Registration.objects.count()
    with pytest.raises(PartialBookingWrite), transaction.atomic():
        book(slot, patient)
    assert Registration.objects.count() == registrations


def test_a_patient_cancellation_is_one_locking_read_and_one_write(
    make_slot, patient, referral, django_assert_num_queries
):
    """The appointment locked with what ending it needs, then one statement: the appointment ended,
    the registration closed, the e-referral freed, the slot freed and queued, the event (plus the
    savepoint the test's transaction turns the service's transaction into). The drain is asked for
    after the commit."""
    appointment = book(make_slot(), patient, referral)
    # The reason codes as a running process has them: loaded and committed (this test's never commit).
    reason_cache.clear()
    reason_cache.reason_by_code("PATIENT_REQUEST")
    with django_assert_num_queries(4):
        services.appointment_cancel_by_patient(appointment=appointment)
    stored = Appointment.objects.select_related("registration__referral").get(pk=appointment.pk)
    assert (stored.status, stored.registration.status) == ("cancelled_by_patient", "closed")
    assert stored.registration.referral.status == "issued"
    assert Slot.objects.get(pk=appointment.slot_id).status == "free"
