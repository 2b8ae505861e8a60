"""Every path that books, moves or allocates, against every booking rule (issue: a rule held on the
web booking and was missed on reschedule, waiting-list allocation and facility rebooking).

Each case breaks exactly one rule for one target slot (or a waiting-list entry's first day); each
path is asked to put the patient there. A path that answers directly must refuse with the rule's
code; an allocation must leave the patient waiting and the slot free. The same paths with no rule
broken succeed, so no cell can pass by refusing everything. The paths and the rules are read from
`apps.booking.rules` (PATHS, RULES), so a new rule or path without a case here fails the test.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from django.utils import timezone

from apps.booking import rules, services
from apps.booking.models import Appointment, Registration
from apps.core.errors import DomainError
from apps.scheduling.models import Slot
from tests.factories import (
    AppointmentFactory,
    ContractFactory,
    PatientFactory,
    ReferralFactory,
    RegistrationFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)

TARGET_DAYS = 12  # the target slot's distance; the patient's current booking is 5 days ahead


@dataclass
class Case:
    rule: str | None  # None: nothing broken, the path must succeed
    service: object
    patient: object
    target: Slot
    current: Slot
    referral: object = None  # what a new registration presents (book, join)
    held_referral: object = None  # what an existing registration holds (reschedule, allocation)
    expected: str = ""
    extra: dict = field(default_factory=dict)


def _slot(schedule, days: float, **kwargs) -> Slot:
    start = (timezone.now() + dt.timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    return SlotFactory(schedule=schedule, start=start, end=start + dt.timedelta(minutes=20), **kwargs)


def make_case(rule: str | None) -> Case:
    referral_rule = rule == "referral"
    service = ServiceFactory() if referral_rule else ServiceFactory(mammography=True)
    schedule = ScheduleFactory(service=service)
    ContractFactory(facility=schedule.facility, service=service)
    current = _slot(schedule, 5)
    target = _slot(schedule, TARGET_DAYS, kind="follow_up" if rule == "slot_kind" else "first")
    target_day = timezone.localdate(target.start)
    birth = dt.date(target_day.year - 50, 3, 1)
    patient = PatientFactory(birth_date=birth, sex="M" if rule == "sex" else "F")
    case = Case(rule=rule, service=service, patient=patient, target=target, current=current)
    if rule == "service_in_scope":
        service.cer_from = target_day + dt.timedelta(days=1)
        service.obligatory_from = service.cer_from
        service.save()
        case.expected = "service_not_covered"
    elif rule == "sex":
        case.expected = "not_eligible_sex"
    elif rule == "age":
        # 74 by birth year is the last year of the programme; the target's year makes the patient 75.
        patient.birth_date = dt.date(target_day.year - 75, 1, 10)
        patient.save()
        case.expected = "not_eligible_age"
    elif rule == "screening_interval":
        patient.screenings.create(service=service, performed_on=target_day - dt.timedelta(days=200))
        case.expected = "not_eligible_interval"
    elif rule == "referral":
        someone_else = ReferralFactory(service=service)
        case.referral = someone_else
        case.held_referral = someone_else
        case.expected = "referral_invalid"
    elif rule == "slot_kind":
        case.expected = "slot_kind_mismatch"
    if referral_rule is False and service.referral_required:
        raise AssertionError("cases without the referral rule use a service that needs none")
    return case


# --- the paths ----------------------------------------------------------------------------------------
# Each returns True when the patient got the target slot; raises DomainError when refused directly.


def _waiting(case: Case) -> Registration:
    case.current.status = "blocked"  # only the target is on offer
    case.current.save()
    return RegistrationFactory(
        patient=case.patient, service=case.service, status="waiting", referral=case.held_referral
    )


def _current_booking(case: Case) -> Appointment:
    case.current.status = "booked"
    case.current.save()
    registration = RegistrationFactory(
        patient=case.patient, service=case.service, status="booked", referral=case.held_referral
    )
    return AppointmentFactory(slot=case.current, registration=registration)


def _referral_args(case: Case) -> dict:
    if case.referral is None:
        return {}
    return {"referral_number": case.referral.number, "referral_code": case.referral.access_code}


def path_hold(case: Case) -> bool:
    services.slot_hold(slot_id=case.target.pk, patient=case.patient)
    return True


def path_book(case: Case) -> bool:
    appointment = services.appointment_book(
        slot_id=case.target.pk, patient=case.patient, channel="desk", **_referral_args(case)
    )
    return appointment.slot_id == case.target.pk


def path_reschedule(case: Case) -> bool:
    current = _current_booking(case)
    new = services.appointment_reschedule(appointment=current, new_slot_id=case.target.pk)
    return new.slot_id == case.target.pk


def path_waitlist_join(case: Case) -> bool:
    services.waitlist_join(
        patient=case.patient,
        service=case.service,
        date_from=timezone.localdate(case.target.start),
        **_referral_args(case),
    )
    return True


def path_allocate_slot(case: Case) -> bool:
    _waiting(case)
    appointment = services.waitlist_allocate_slot(slot_id=case.target.pk)
    return appointment is not None and appointment.slot_id == case.target.pk


def path_allocate_slots(case: Case) -> bool:
    _waiting(case)
    allocated = services.waitlist_allocate_slots(slot_ids=[case.target.pk])
    appointment = allocated[case.target.pk]
    return appointment is not None and appointment.slot_id == case.target.pk


def path_allocate_registration(case: Case) -> bool:
    registration = _waiting(case)
    appointment = services.waitlist_allocate_registration(registration_id=registration.pk)
    return appointment is not None and appointment.slot_id == case.target.pk


def path_facility_cancel_rebook(case: Case) -> bool:
    current = _current_booking(case)
    services.appointment_cancel_by_facility(appointment=current, reason_code="DOCTOR_ILLNESS")
    return Appointment.objects.filter(slot=case.target, status__in=("booked", "confirmed")).exists()


def path_session_cancel_rebook(case: Case) -> bool:
    current = _current_booking(case)
    services.session_cancel_by_facility(
        schedule=case.current.schedule,
        day=timezone.localdate(case.current.start),
        reason_code="DOCTOR_ILLNESS",
    )
    current.refresh_from_db()
    return Appointment.objects.filter(slot=case.target, status__in=("booked", "confirmed")).exists()


PATH_FUNCTIONS = {
    "hold": path_hold,
    "book": path_book,
    "reschedule": path_reschedule,
    "waitlist_join": path_waitlist_join,
    "allocate_slot": path_allocate_slot,
    "allocate_slots": path_allocate_slots,
    "allocate_registration": path_allocate_registration,
    "facility_cancel_rebook": path_facility_cancel_rebook,
    "session_cancel_rebook": path_session_cancel_rebook,
}
DIRECT = {"hold", "book", "reschedule", "waitlist_join"}


def test_every_path_and_every_rule_has_a_case_here():
    assert set(PATH_FUNCTIONS) == {p.name for p in rules.PATHS}
    assert {r.name for r in rules.RULES} == {
        "service_in_scope",
        "sex",
        "age",
        "screening_interval",
        "referral",
        "slot_kind",
    }


CELLS = [(p.name, r.name) for p in rules.PATHS for r in rules.RULES if r.name not in p.deferred]


@pytest.mark.parametrize(("path", "rule"), CELLS)
def test_each_path_refuses_what_each_rule_forbids(db, path, rule):
    case = make_case(rule)
    if path in DIRECT:
        with pytest.raises(DomainError) as refused:
            PATH_FUNCTIONS[path](case)
        assert refused.value.code == case.expected
    else:
        assert PATH_FUNCTIONS[path](case) is False
        case.target.refresh_from_db()
        assert case.target.status == Slot.Status.FREE
        assert Registration.objects.filter(patient=case.patient, status="waiting").exists()


@pytest.mark.parametrize("path", [p.name for p in rules.PATHS])
@pytest.mark.parametrize("service_kind", ["screening", "referral"])
def test_each_path_books_when_no_rule_is_broken(db, path, service_kind):
    case = make_case(None)
    if service_kind == "referral":
        case = make_case("referral")  # then mend it: the patient's own referral
        own = ReferralFactory(patient=case.patient, service=case.service)
        case.referral = case.held_referral = own
        case.rule = None
    assert PATH_FUNCTIONS[path](case) is True


def test_the_document_shows_the_table_the_code_has():
    from django.core.management import call_command

    call_command("booking_rules_doc", "--check")  # raises CommandError when stale


@pytest.mark.parametrize("path", rules.PATHS, ids=lambda p: p.name)
def test_each_path_in_the_table_names_a_real_service(path):
    import importlib

    module, _, name = f"apps.booking.{path.function}".rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_age_is_judged_in_the_new_year_when_a_visit_moves_across_it(db):
    """GIVEN a woman who is 74 by birth year in 2026 (the programme's last year for her)
    AND a mammography booked for 28 December 2026
    WHEN she (or her facility) moves it to 5 January 2027, or the waiting list offers her January
    THEN it is refused: in 2027 she is 75 by birth year."""
    import time_machine

    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC), tick=False):
        service = ServiceFactory(mammography=True)
        schedule = ScheduleFactory(service=service)
        ContractFactory(facility=schedule.facility, service=service)
        december = SlotFactory(
            schedule=schedule,
            start=dt.datetime(2026, 12, 28, 9, 0, tzinfo=dt.UTC),
            end=dt.datetime(2026, 12, 28, 9, 20, tzinfo=dt.UTC),
        )
        january = SlotFactory(
            schedule=schedule,
            start=dt.datetime(2027, 1, 5, 9, 0, tzinfo=dt.UTC),
            end=dt.datetime(2027, 1, 5, 9, 20, tzinfo=dt.UTC),
        )
        woman = PatientFactory(birth_date=dt.date(1952, 12, 30), sex="F")
        booked = services.appointment_book(slot_id=december.pk, patient=woman)
        with pytest.raises(DomainError) as refused:
            services.appointment_reschedule(appointment=booked, new_slot_id=january.pk)
        assert refused.value.code == "not_eligible_age"
        services.appointment_cancel_by_facility(appointment=booked, reason_code="DOCTOR_ILLNESS")
        january.refresh_from_db()
        assert january.status == Slot.Status.FREE
        assert Registration.objects.get(patient=woman, status="waiting")


def test_a_reschedule_into_the_screening_interval_is_refused_with_the_date(db):
    """The issue's case: last mammography 2025-01-12; a February 2027 booking could be moved to
    2026-12-10 (200), and a facility cancellation re-booked her on 2026-12-03, both unchecked."""
    import time_machine

    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC), tick=False):
        service = ServiceFactory(mammography=True)
        schedule = ScheduleFactory(service=service)
        ContractFactory(facility=schedule.facility, service=service)

        def slot(day: dt.date) -> Slot:
            start = dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC)
            return SlotFactory(schedule=schedule, start=start, end=start + dt.timedelta(minutes=20))

        woman = PatientFactory(birth_date=dt.date(1970, 5, 17), sex="F")
        woman.screenings.create(service=service, performed_on=dt.date(2025, 1, 12))
        early, february = slot(dt.date(2026, 12, 3)), slot(dt.date(2027, 2, 1))
        target = slot(dt.date(2026, 12, 10))
        with pytest.raises(DomainError) as direct:
            services.appointment_book(slot_id=target.pk, patient=woman)
        booked = services.appointment_book(slot_id=february.pk, patient=woman)
        with pytest.raises(DomainError) as moved:
            services.appointment_reschedule(appointment=booked, new_slot_id=target.pk)
        assert direct.value.code == moved.value.code == "not_eligible_interval"
        assert str(moved.value.params["next"]) == "2027-01-12"
        services.appointment_cancel_by_facility(appointment=booked, reason_code="DOCTOR_ILLNESS")
        early.refresh_from_db()
        target.refresh_from_db()
        assert early.status == target.status == Slot.Status.FREE
