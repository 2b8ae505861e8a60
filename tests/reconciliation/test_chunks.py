"""Chunks of a run: plain inserts replaced on re-execution, counts kept with the chunk's progress,
duplicate claims across chunks, and PESELs resolved once per run attempt (docs/reconciliation.md)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction

from apps.reconciliation import engine
from apps.reconciliation.models import Reason, Verdict
from apps.reconciliation.services import run_create, run_execute
from tests.factories import PatientFactory
from tests.factories.reconciliation import AppointmentFactory, ReportedVisitFactory, warsaw
from tests.reconciliation.conftest import reconcile

pytestmark = pytest.mark.django_db

MONTH = dt.date(2026, 7, 1)
START, END = warsaw(2026, 7, 1, 0), warsaw(2026, 8, 1, 0)


def counted(run) -> tuple[int, int]:
    verdicts = Verdict.objects.filter(run=run)
    return verdicts.filter(eligible=True).count(), verdicts.filter(eligible=False).count()


def test_executing_a_chunk_again_replaces_its_verdicts(patient, cardiology, facility_a):
    AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)
    visits = [
        ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a),
        ReportedVisitFactory(service=cardiology, facility=facility_a),
    ]
    run = run_create(scope="month", period_start=MONTH)
    lo, hi = visits[0].pk - 1, visits[-1].pk

    with transaction.atomic():
        first = engine.chunk_process(run_id=run.pk, lo=lo, hi=hi, start=START, end=END, facility_id=None)
        again = engine.chunk_process(run_id=run.pk, lo=lo, hi=hi, start=START, end=END, facility_id=None)

    assert first == again == engine.ChunkResult(decided=2, eligible=1)
    assert Verdict.objects.filter(run=run).count() == 2
    assert sorted(Verdict.objects.filter(run=run).values_list("reason", flat=True)) == [
        Reason.MATCHED_REGISTRATION,
        Reason.NO_REGISTRATION,
    ]


def test_a_claim_in_a_later_chunk_but_earlier_in_the_day_keeps_the_registration(
    patient, cardiology, facility_a
):
    """GIVEN two visits claiming one appointment, the one imported later (higher id) being earlier
    WHEN the run decides them one per chunk
    THEN the earlier visit keeps the claim and the run's counts agree with its verdicts."""
    appointment = AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)
    late = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 15)
    )
    early = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 8)
    )

    run = reconcile(chunk_size=1)

    verdicts = {v.visit_id: v for v in Verdict.objects.filter(run=run)}
    assert run.chunks_done == 2
    assert (verdicts[early.pk].reason, verdicts[early.pk].matched_appointment_id) == (
        Reason.MATCHED_REGISTRATION,
        appointment.pk,
    )
    assert (verdicts[late.pk].eligible, verdicts[late.pk].reason) == (False, Reason.DUPLICATE_CLAIM)
    assert (run.eligible_count, run.ineligible_count) == counted(run) == (1, 1)
    assert run.visits_done == 2


def test_counts_of_a_resumed_run_are_those_of_a_clean_run(cardiology, facility_a, facility_b, monkeypatch):
    for n in range(5):
        patient = PatientFactory()
        if n % 2 == 0:
            AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)
        ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)
        if n == 0:
            ReportedVisitFactory(
                patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 17)
            )
    clean = reconcile(chunk_size=2)
    real_chunk = engine.chunk_process
    calls: list[int] = []

    def crashing_chunk(**kwargs):
        calls.append(kwargs["lo"])
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return real_chunk(**kwargs)

    monkeypatch.setattr(engine, "chunk_process", crashing_chunk)
    run = run_create(scope="month", period_start=MONTH, chunk_size=2)
    with pytest.raises(RuntimeError):
        run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert (run.eligible_count + run.ineligible_count, run.visits_done) == (2, 2)

    monkeypatch.setattr(engine, "chunk_process", real_chunk)
    resumed = run_execute(run_id=run.pk)

    counts = (resumed.eligible_count, resumed.ineligible_count)
    assert counts == (clean.eligible_count, clean.ineligible_count) == counted(resumed) == (3, 3)
    assert resumed.visits_done == resumed.visits_total == 6


def test_a_patient_who_joined_between_a_crash_and_the_resume_is_resolved(cardiology, facility_a, monkeypatch):
    first = ReportedVisitFactory(service=cardiology, facility=facility_a)
    newcomer = PatientFactory.build()
    pending = ReportedVisitFactory(
        patient=None, patient_pesel=newcomer.pesel, service=cardiology, facility=facility_a
    )
    real_chunk = engine.chunk_process

    def crash_on_second(**kwargs):
        if kwargs["lo"] >= first.pk:
            raise RuntimeError("worker lost")
        return real_chunk(**kwargs)

    monkeypatch.setattr(engine, "chunk_process", crash_on_second)
    run = run_create(scope="month", period_start=MONTH, chunk_size=1)
    with pytest.raises(RuntimeError):
        run_execute(run_id=run.pk)
    pending.refresh_from_db()
    assert pending.patient_id is None
    newcomer.save()
    AppointmentFactory(patient=newcomer, service=cardiology, facility=facility_a)

    monkeypatch.setattr(engine, "chunk_process", real_chunk)
    done = run_execute(run_id=run.pk)

    pending.refresh_from_db()
    assert pending.patient_id == newcomer.pk
    assert Verdict.objects.get(run=done, visit=pending).reason == Reason.MATCHED_REGISTRATION


def test_a_large_run_refreshes_statistics_and_still_marks_duplicates(
    patient, cardiology, facility_a, monkeypatch
):
    """Runs from `ANALYZE_FROM` verdicts ANALYZE the verdict table before the duplicate and override
    passes (in the run's transaction); the passes give the same answer."""
    from apps.reconciliation import services

    monkeypatch.setattr(services, "ANALYZE_FROM", 1)
    AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)
    first = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)
    second = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 16)
    )

    run = reconcile(chunk_size=1)

    reasons = dict(Verdict.objects.filter(run=run).values_list("visit_id", "reason"))
    assert reasons == {first.pk: Reason.MATCHED_REGISTRATION, second.pk: Reason.DUPLICATE_CLAIM}
    assert (run.eligible_count, run.ineligible_count) == (1, 1)
