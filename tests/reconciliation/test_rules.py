"""Every rule and reason code of the reconciliation, one visit at a time (docs/reconciliation.md)."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.booking.models import Appointment
from apps.reconciliation.engine import RULES_VERSION
from apps.reconciliation.models import ELIGIBLE_REASONS, Reason, Verdict, reason_text
from tests.factories import PatientFactory, ServiceFactory
from tests.factories.reconciliation import AppointmentFactory, ReportedVisitFactory, warsaw
from tests.reconciliation.conftest import reconcile, verdicts_of

pytestmark = pytest.mark.django_db


def verdict_for(visit, **kwargs) -> Verdict:
    run = reconcile(**kwargs)
    return Verdict.objects.get(run=run, visit=visit)


def test_a_visit_with_its_booked_appointment_that_day_is_eligible(patient, cardiology, facility_a):
    appointment = AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (True, Reason.MATCHED_REGISTRATION)
    assert verdict.matched_appointment_id == appointment.pk
    assert verdict.final_eligible is True
    assert verdict.rule_version == f"{RULES_VERSION}.s{cardiology.rule_version}"


@pytest.mark.parametrize("status", ["confirmed", "attended"])
def test_an_appointment_that_took_place_or_was_confirmed_matches(status, patient, cardiology, facility_a):
    AppointmentFactory(patient=patient, service=cardiology, facility=facility_a, status=status, ended_at=None)
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)

    assert verdict_for(visit).reason == Reason.MATCHED_REGISTRATION


def test_the_match_uses_the_polish_calendar_day_not_utc(patient, cardiology, facility_a):
    # 00:30 in Warsaw on 14 July is 22:30 UTC on 13 July.
    AppointmentFactory(
        patient=patient, service=cardiology, facility=facility_a, start=warsaw(2026, 7, 14, 0, 30)
    )
    visit = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 11)
    )

    assert verdict_for(visit).reason == Reason.MATCHED_REGISTRATION


def test_a_visit_on_another_day_than_the_booking_has_no_registration(patient, cardiology, facility_a):
    AppointmentFactory(patient=patient, service=cardiology, facility=facility_a, start=warsaw(2026, 7, 14))
    visit = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 15)
    )

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (False, Reason.NO_REGISTRATION)
    assert verdict.matched_appointment_id is None


def test_a_visit_without_any_registration_is_ineligible(patient, cardiology, facility_a):
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)

    assert verdict_for(visit).reason == Reason.NO_REGISTRATION


def test_a_pesel_unknown_to_cer_has_no_registration(cardiology, facility_a):
    visit = ReportedVisitFactory(
        patient=None, patient_pesel="44051401458", service=cardiology, facility=facility_a
    )

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (False, Reason.NO_REGISTRATION)


def test_a_patient_who_joined_cer_after_the_import_is_resolved_by_the_run(cardiology, facility_a):
    patient = PatientFactory.build()
    visit = ReportedVisitFactory(
        patient=None, patient_pesel=patient.pesel, service=cardiology, facility=facility_a
    )
    patient.save()
    AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)

    verdict = verdict_for(visit)

    visit.refresh_from_db()
    assert visit.patient_id == patient.pk
    assert verdict.reason == Reason.MATCHED_REGISTRATION


@pytest.mark.parametrize(
    "status", ["cancelled_by_patient", "cancelled_by_facility", "released", "rescheduled"]
)
def test_a_registration_ended_before_the_visit_is_ineligible(status, patient, cardiology, facility_a):
    appointment = AppointmentFactory(patient=patient, service=cardiology, facility=facility_a, status=status)
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (False, Reason.REGISTRATION_CANCELLED)
    assert verdict.matched_appointment_id == appointment.pk


def test_a_cancellation_recorded_after_the_visit_does_not_undo_the_registration(
    patient, cardiology, facility_a
):
    AppointmentFactory(
        patient=patient,
        service=cardiology,
        facility=facility_a,
        status=Appointment.Status.CANCELLED_BY_FACILITY,
        ended_at=warsaw(2026, 7, 14, 18),
    )
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)

    assert verdict_for(visit).reason == Reason.MATCHED_REGISTRATION


def test_a_live_appointment_wins_over_a_cancelled_one_the_same_day(patient, cardiology, facility_a):
    AppointmentFactory(
        patient=patient,
        service=cardiology,
        facility=facility_a,
        status="cancelled_by_patient",
        start=warsaw(2026, 7, 14, 8),
    )
    live = AppointmentFactory(
        patient=patient, service=cardiology, facility=facility_a, start=warsaw(2026, 7, 14, 12)
    )
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)

    verdict = verdict_for(visit)

    assert (verdict.reason, verdict.matched_appointment_id) == (Reason.MATCHED_REGISTRATION, live.pk)


def test_a_registration_at_another_facility_is_a_facility_mismatch(
    patient, cardiology, facility_a, facility_b
):
    AppointmentFactory(patient=patient, service=cardiology, facility=facility_b)
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (False, Reason.FACILITY_MISMATCH)


def test_a_registration_for_another_service_is_a_service_mismatch(
    patient, cardiology, mammography, facility_a
):
    AppointmentFactory(patient=patient, service=mammography, facility=facility_a)
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (False, Reason.SERVICE_MISMATCH)


def test_the_same_registration_claimed_twice_pays_the_first_visit_only(patient, cardiology, facility_a):
    appointment = AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)
    later = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 15)
    )
    first = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 9)
    )
    same_time_higher_id = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 15)
    )

    verdicts = verdicts_of(reconcile(chunk_size=1))

    assert verdicts[first.pk].reason == Reason.MATCHED_REGISTRATION
    assert verdicts[later.pk].reason == Reason.DUPLICATE_CLAIM
    assert verdicts[same_time_higher_id.pk].reason == Reason.DUPLICATE_CLAIM
    assert not verdicts[later.pk].eligible and not verdicts[later.pk].final_eligible
    assert {v.matched_appointment_id for v in verdicts.values()} == {appointment.pk}


def test_an_emergency_visit_is_eligible_without_registration(patient, cardiology, facility_a):
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a, emergency=True)

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (True, Reason.EMERGENCY)


def test_a_visit_the_facility_itself_recorded_as_a_no_show_is_not_paid(patient, cardiology, facility_a):
    appointment = AppointmentFactory(
        patient=patient, service=cardiology, facility=facility_a, status="no_show", ended_at=None
    )
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.final_eligible, verdict.reason) == (False, False, Reason.NO_SHOW)
    assert verdict.matched_appointment_id == appointment.pk


def test_a_booking_made_after_the_visit_began_is_not_paid(patient, cardiology, facility_a):
    # The case: a visit at 08:00 and a booking made at 10:57 the same day.
    appointment = AppointmentFactory(
        patient=patient,
        service=cardiology,
        facility=facility_a,
        start=warsaw(2026, 7, 14, 8),
        booked_at=warsaw(2026, 7, 14, 10, 57),
    )
    visit = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 8)
    )

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (False, Reason.BOOKED_AFTER_VISIT)
    assert verdict.matched_appointment_id == appointment.pk


def test_a_booking_made_the_same_morning_before_the_visit_is_paid(patient, cardiology, facility_a):
    AppointmentFactory(
        patient=patient,
        service=cardiology,
        facility=facility_a,
        start=warsaw(2026, 7, 14, 10),
        booked_at=warsaw(2026, 7, 14, 7, 55),
    )
    visit = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 10)
    )

    assert verdict_for(visit).reason == Reason.MATCHED_REGISTRATION


def test_a_booking_in_time_wins_over_a_late_one_the_same_day(patient, cardiology, facility_a):
    in_time = AppointmentFactory(
        patient=patient, service=cardiology, facility=facility_a, start=warsaw(2026, 7, 14, 16)
    )
    AppointmentFactory(
        patient=patient,
        service=cardiology,
        facility=facility_a,
        start=warsaw(2026, 7, 14, 9),
        booked_at=warsaw(2026, 7, 14, 12),
        status="attended",
    )
    visit = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 9)
    )

    verdict = verdict_for(visit)

    assert (verdict.reason, verdict.matched_appointment_id) == (Reason.MATCHED_REGISTRATION, in_time.pk)


def test_an_emergency_with_a_pesel_unknown_to_cer_is_not_paid(cardiology, facility_a):
    visit = ReportedVisitFactory(
        patient=None, patient_pesel="44051401458", service=cardiology, facility=facility_a, emergency=True
    )

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (False, Reason.EMERGENCY_NO_PATIENT)


def test_an_emergency_on_a_cancelled_bookings_slot_is_not_paid(patient, cardiology, facility_a):
    AppointmentFactory(
        patient=patient, service=cardiology, facility=facility_a, status="cancelled_by_patient"
    )
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a, emergency=True)

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (False, Reason.REGISTRATION_CANCELLED)


def test_an_emergency_claim_of_an_appointment_already_claimed_is_a_duplicate(patient, cardiology, facility_a):
    appointment = AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)
    first = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)
    second = ReportedVisitFactory(
        patient=patient,
        service=cardiology,
        facility=facility_a,
        emergency=True,
        visit_at=warsaw(2026, 7, 14, 11),
    )

    verdicts = verdicts_of(reconcile())

    assert (verdicts[first.pk].reason, verdicts[first.pk].matched_appointment_id) == (
        Reason.MATCHED_REGISTRATION,
        appointment.pk,
    )
    assert (verdicts[second.pk].eligible, verdicts[second.pk].reason) == (False, Reason.DUPLICATE_CLAIM)


def test_the_same_emergency_claimed_twice_the_same_day_pays_the_first_only(
    patient, cardiology, facility_a, facility_b
):
    first = ReportedVisitFactory(
        patient=patient,
        service=cardiology,
        facility=facility_a,
        emergency=True,
        visit_at=warsaw(2026, 7, 14, 9),
    )
    again = ReportedVisitFactory(
        patient=patient,
        service=cardiology,
        facility=facility_a,
        emergency=True,
        visit_at=warsaw(2026, 7, 14, 9),
    )
    elsewhere = ReportedVisitFactory(
        patient=patient,
        service=cardiology,
        facility=facility_b,
        emergency=True,
        visit_at=warsaw(2026, 7, 14, 9),
    )
    next_day = ReportedVisitFactory(
        patient=patient,
        service=cardiology,
        facility=facility_a,
        emergency=True,
        visit_at=warsaw(2026, 7, 15, 9),
    )

    run = reconcile()
    verdicts = verdicts_of(run)

    assert verdicts[first.pk].reason == verdicts[elsewhere.pk].reason == verdicts[next_day.pk].reason
    assert verdicts[first.pk].reason == Reason.EMERGENCY
    assert (verdicts[again.pk].eligible, verdicts[again.pk].reason) == (False, Reason.DUPLICATE_CLAIM)
    assert (run.eligible_count, run.ineligible_count) == (3, 1)


def test_an_emergency_before_the_service_joined_cer_keeps_its_out_of_scope_verdict(patient, facility_a):
    endocrinology = ServiceFactory(endocrinology=True)  # covered from 2026-08-01
    visit = ReportedVisitFactory(
        patient=None, patient_pesel="44051401458", service=endocrinology, facility=facility_a, emergency=True
    )

    assert verdict_for(visit).reason == Reason.SERVICE_NOT_IN_SCOPE


def test_every_reason_has_a_polish_and_an_english_text():
    for reason in Reason:
        polish, english = reason_text(reason, "pl"), reason_text(reason, "en")
        assert polish and english and polish != english and polish != reason.value


def test_a_service_not_yet_covered_by_cer_is_eligible(patient, facility_a):
    endocrinology = ServiceFactory(endocrinology=True)  # covered from 2026-08-01
    visit = ReportedVisitFactory(patient=patient, service=endocrinology, facility=facility_a)

    verdict = verdict_for(visit)

    assert (verdict.eligible, verdict.reason) == (True, Reason.SERVICE_NOT_IN_SCOPE)


def test_before_the_obligation_date_of_the_service_a_visit_is_eligible(patient, cardiology, facility_a):
    # Cardiology: covered from 2026-01-01, registration obligatory from 2026-07-01.
    visit = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 6, 30, 10)
    )

    verdict = verdict_for(visit, month=dt.date(2026, 6, 1))

    assert (verdict.eligible, verdict.reason) == (True, Reason.FACILITY_NOT_OBLIGED)


def test_a_facility_with_a_later_obligation_date_is_not_yet_obliged(patient, cardiology, facility_a):
    facility_a.obligatory_from = dt.date(2026, 9, 1)
    facility_a.save()
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)

    assert verdict_for(visit).reason == Reason.FACILITY_NOT_OBLIGED


def test_every_reason_code_is_either_eligible_or_not():
    assert {r.value for r in Reason} == {
        "matched_registration",
        "service_not_in_scope",
        "facility_not_obliged",
        "emergency",
        "no_registration",
        "registration_cancelled",
        "facility_mismatch",
        "service_mismatch",
        "duplicate_claim",
        "no_show",
        "booked_after_visit",
        "emergency_no_patient",
        "withdrawn",
    }
    assert {str(r) for r in ELIGIBLE_REASONS} == {
        "matched_registration",
        "service_not_in_scope",
        "facility_not_obliged",
        "emergency",
    }


def test_a_run_covers_only_its_month_and_facility(patient, cardiology, facility_a, facility_b):
    inside = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)
    ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_b)
    ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 8, 1, 0, 10)
    )

    run = reconcile(facility=facility_a)

    assert set(verdicts_of(run)) == {inside.pk}
    assert (run.state, run.visits_total, run.visits_done, run.ineligible_count) == ("done", 1, 1, 1)
