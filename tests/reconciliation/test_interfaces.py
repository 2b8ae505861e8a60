"""The `reconcile` command and the Celery tasks are thin interfaces over the run services."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from unittest import mock

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.core.periodic import declared_tasks
from apps.reconciliation import tasks
from apps.reconciliation.models import ReconciliationRun, Verdict
from tests.factories.reconciliation import AppointmentFactory, ReportedVisitFactory

pytestmark = pytest.mark.django_db


def test_reconcile_command_runs_a_month_with_a_progress_bar(patient, cardiology, facility_a):
    AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)
    ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)
    ReportedVisitFactory(service=cardiology, facility=facility_a)
    out = StringIO()

    call_command(
        "reconcile", "--month", "2026-07", "--facility", facility_a.nfz_code, "--chunk-size", "1", stdout=out
    )

    run = ReconciliationRun.objects.get()
    assert (run.state, run.facility_id, run.scope) == ("done", facility_a.pk, "month")
    text = out.getvalue()
    assert "[###############---------------]  50% 1/2 visits" in text
    assert "100% 2/2 visits" in text and "1 eligible, 1 ineligible" in text


@pytest.mark.parametrize(
    "args",
    [["--month", "2026-13"], ["--month", "2026-07", "--facility", "00/NONE"], ["--day", "yesterday"]],
)
def test_reconcile_command_refuses_bad_arguments(args):
    with pytest.raises(CommandError):
        call_command("reconcile", *args, stdout=StringIO())
    assert not ReconciliationRun.objects.exists()


def test_the_schedules_are_declared_for_beat():
    names = {t["task"] for t in declared_tasks()}

    assert "apps.reconciliation.tasks.reconcile_previous_day_task" in names
    assert "apps.reconciliation.tasks.reconcile_month_close_task" in names


@time_machine.travel(dt.datetime(2026, 8, 10, 1, 0, tzinfo=dt.UTC), tick=False)
def test_the_periodic_tasks_queue_yesterday_and_last_month(django_capture_on_commit_callbacks):
    with (
        mock.patch.object(tasks.run_execute_task, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        day_run = tasks.reconcile_previous_day_task()
        month_run = tasks.reconcile_month_close_task()

    day = ReconciliationRun.objects.get(pk=day_run)
    month = ReconciliationRun.objects.get(pk=month_run)
    assert (day.scope, day.period_start, day.period_end) == ("day", dt.date(2026, 8, 9), dt.date(2026, 8, 10))
    assert (month.scope, month.period_start, month.period_end) == (
        "month",
        dt.date(2026, 7, 1),
        dt.date(2026, 8, 1),
    )
    assert [c.args for c in delay.call_args_list] == [(day_run,), (month_run,)]


def test_the_execute_task_reconciles_and_ignores_a_vanished_run(patient, cardiology, facility_a):
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)
    run = ReconciliationRun.objects.create(
        scope="day", period_start=dt.date(2026, 7, 14), period_end=dt.date(2026, 7, 15), rule_version="x"
    )

    assert tasks.run_execute_task.run(run.pk) == "done"
    assert tasks.run_execute_task.run(run.pk) == "done"
    assert Verdict.objects.get(run=run).visit_id == visit.pk
    assert tasks.run_execute_task.run(run.pk + 100) is None


def test_reconcile_command_refuses_a_month_that_has_not_ended():
    from django.utils import timezone

    with pytest.raises(CommandError, match="has not ended"):
        call_command("reconcile", "--month", timezone.localdate().strftime("%Y-%m"), stdout=StringIO())
