"""Celery tasks of the reconciliation: a daily run for the previous day and a monthly close.

Tasks take ids and call services; executing a run is idempotent (a done run returns at once, an
unfinished one resumes after its last committed chunk), so a redelivered task is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from apps.core.errors import DomainError

from .models import ReconciliationRun
from .services import run_create, run_execute

logger = logging.getLogger(__name__)

PERIODIC_TASKS = [
    {
        "name": "reconciliation: previous day",
        "task": "apps.reconciliation.tasks.reconcile_previous_day_task",
        "crontab": {"minute": "30", "hour": "2"},
    },
    {
        # Facilities report a month's visits in the first days of the next month (settlement).
        "name": "reconciliation: monthly close",
        "task": "apps.reconciliation.tasks.reconcile_month_close_task",
        "crontab": {"minute": "0", "hour": "3", "day_of_month": "10"},
    },
]


def run_enqueue(*, run: ReconciliationRun) -> None:
    """Start a run's execution once the transaction that created it has committed."""
    transaction.on_commit(lambda: run_execute_task.delay(run.pk))


@shared_task(bind=True, max_retries=30, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300, acks_late=True)
def run_execute_task(self, run_id: int) -> str | None:
    if not ReconciliationRun.objects.filter(pk=run_id).exists():
        return None
    try:
        return run_execute(run_id=run_id).state
    except DomainError as exc:
        if exc.code == "reconciliation_busy":
            # Another worker holds this scope: try again later rather than run it twice.
            raise self.retry(countdown=300) from exc
        raise


@shared_task
def reconcile_previous_day_task() -> int:
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    run = run_create(scope=ReconciliationRun.Scope.DAY, period_start=yesterday)
    run_enqueue(run=run)
    return run.pk


@shared_task
def reconcile_month_close_task() -> int:
    last_month = timezone.localdate().replace(day=1) - dt.timedelta(days=1)
    run = run_create(scope=ReconciliationRun.Scope.MONTH, period_start=last_month.replace(day=1))
    run_enqueue(run=run)
    return run.pk
