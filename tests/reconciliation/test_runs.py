"""Runs: idempotent re-runs, crash and resume, progress, and two runs of one scope at once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.core.errors import DomainError
from apps.reconciliation import engine
from apps.reconciliation.models import Reason, ReconciliationRun, Verdict
from apps.reconciliation.services import run_create, run_execute
from tests.factories import PatientFactory
from tests.factories.reconciliation import AppointmentFactory, ReportedVisitFactory, warsaw
from tests.reconciliation.conftest import reconcile

MONTH = warsaw(2026, 7, 1).date()


def outcome(run) -> dict[int, tuple[bool, str, int | None]]:
    return {
        v.visit_id: (v.eligible, v.reason, v.matched_appointment_id) for v in Verdict.objects.filter(run=run)
    }


def mixed_month(cardiology, facility_a, facility_b, visits: int = 6) -> None:
    """Half the patients booked at A (one claimed twice), the rest at B or not at all."""
    for n in range(visits):
        patient = PatientFactory()
        if n % 3 == 0:
            AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)
        elif n % 3 == 1:
            AppointmentFactory(patient=patient, service=cardiology, facility=facility_b)
        ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)
        if n == 0:
            ReportedVisitFactory(
                patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 7, 14, 16)
            )


@pytest.mark.django_db
def test_a_second_run_gives_the_same_verdicts(cardiology, facility_a, facility_b):
    mixed_month(cardiology, facility_a, facility_b)

    first = reconcile(chunk_size=2)
    second = reconcile(chunk_size=5)

    assert first.pk != second.pk
    assert outcome(first) == outcome(second)
    assert {r for _, r, _ in outcome(first).values()} == {
        Reason.MATCHED_REGISTRATION,
        Reason.DUPLICATE_CLAIM,
        Reason.FACILITY_MISMATCH,
        Reason.NO_REGISTRATION,
    }
    assert (second.eligible_count, second.ineligible_count) == (first.eligible_count, first.ineligible_count)


@pytest.mark.django_db
def test_executing_a_finished_run_again_changes_nothing(cardiology, facility_a, facility_b):
    mixed_month(cardiology, facility_a, facility_b)
    run = reconcile(chunk_size=2)
    before = outcome(run)

    again = run_execute(run_id=run.pk)

    assert outcome(again) == before
    assert (again.attempts, again.chunks_done) == (1, run.chunks_done)


@pytest.mark.django_db
def test_progress_is_recorded_chunk_by_chunk(cardiology, facility_a, facility_b):
    mixed_month(cardiology, facility_a, facility_b)
    seen: list[tuple[int, int]] = []
    run = run_create(scope="month", period_start=MONTH, chunk_size=2)

    done = run_execute(run_id=run.pk, on_progress=lambda r: seen.append((r.visits_done, r.visits_total)))

    assert done.state == "done" and done.progress_percent == 100
    assert done.visits_total == 7 and done.chunks_done == 4
    assert seen[0] == (0, 7) and seen[-1] == (7, 7)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.django_db
def test_a_run_that_crashed_after_its_first_chunk_resumes_where_it_stopped(
    cardiology, facility_a, facility_b, monkeypatch
):
    """GIVEN a run whose worker dies after committing its first chunk
    WHEN the run is asked for again and executed
    THEN it skips the committed chunk and ends with the verdicts of a clean run."""
    mixed_month(cardiology, facility_a, facility_b)
    clean = outcome(reconcile(chunk_size=2))
    calls: list[int] = []
    real_chunk = engine.chunk_process

    def crashing_chunk(**kwargs):
        calls.append(kwargs["lo"])
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return real_chunk(**kwargs)

    monkeypatch.setattr(engine, "chunk_process", crashing_chunk)
    run = run_create(scope="month", period_start=MONTH, facility=None, chunk_size=2)
    # The clean run above is done, so this is a new run of the same scope.
    with pytest.raises(RuntimeError):
        run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == "failed" and "worker lost" in run.error
    assert run.chunks_done == 1 and Verdict.objects.filter(run=run).count() == 2
    cursor_after_first = run.cursor_visit_id

    calls.clear()
    monkeypatch.setattr(engine, "chunk_process", real_chunk)
    monkeypatch.setattr(engine, "chunk_process", lambda **kw: calls.append(kw["lo"]) or real_chunk(**kw))
    resumed = run_create(scope="month", period_start=MONTH, chunk_size=2)
    assert resumed.pk == run.pk
    finished = run_execute(run_id=resumed.pk)

    assert calls[0] == cursor_after_first
    assert finished.state == "done" and finished.attempts == 2 and finished.chunks_done == 4
    assert outcome(finished) == clean


@pytest.mark.django_db
def test_a_month_that_is_busy_refuses_and_changes_nothing(cardiology, facility_a):
    ReportedVisitFactory(service=cardiology, facility=facility_a)
    run = run_create(scope="month", period_start=MONTH)
    key = f"reconciliation:month:{MONTH.isoformat()}:*"
    # Another session holds the scope's lock (a worker in the middle of this month).
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(7305, hashtext(%s))", [key])
        with pytest.raises(DomainError) as refused:
            run_execute(run_id=run.pk)
        # Released here and not by closing: a closed session's locks go when its server process
        # exits, which the client does not wait for, so the next line could still find it held.
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(7305, hashtext(%s))", [key])
    finally:
        other.close()
    assert refused.value.code == "reconciliation_busy"
    assert "2026-07" in refused.value.message_in("en")
    run.refresh_from_db()
    assert run.state == "queued" and not Verdict.objects.filter(run=run).exists()
    assert run_execute(run_id=run.pk).state == "done"


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_one_month_at_once_the_second_refuses(cardiology, facility_a, facility_b):
    """Two real threads (own connections): while the first holds the month, the second is refused."""
    mixed_month(cardiology, facility_a, facility_b)
    first_run = run_create(scope="month", period_start=MONTH, chunk_size=2)
    inside, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def pause_in_first_chunk(run):
        if run.chunks_done == 1:
            inside.set()
            release.wait(timeout=30)

    def first_worker():
        try:
            results["first"] = run_execute(run_id=first_run.pk, on_progress=pause_in_first_chunk).state
        except Exception as exc:  # pragma: no cover - reported through the assertion below
            results["first"] = exc
        finally:
            connection.close()

    def second_worker():
        try:
            results["second"] = run_execute(run_id=first_run.pk).state
        except DomainError as exc:
            results["second"] = exc.code
        finally:
            connection.close()

    worker = threading.Thread(target=first_worker)
    worker.start()
    assert inside.wait(timeout=30)
    second = threading.Thread(target=second_worker)
    second.start()
    second.join(timeout=30)
    release.set()
    worker.join(timeout=30)

    assert results == {"first": "done", "second": "reconciliation_busy"}
    run = ReconciliationRun.objects.get(pk=first_run.pk)
    assert run.attempts == 1 and Verdict.objects.filter(run=run).count() == 7
