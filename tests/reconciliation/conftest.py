from __future__ import annotations

import datetime as dt

import pytest

from apps.reconciliation.models import ReconciliationRun, Verdict
from apps.reconciliation.services import run_create, run_execute
from tests.factories import FacilityFactory


def reconcile(*, month: dt.date = dt.date(2026, 7, 1), facility=None, chunk_size: int = 1000):
    run = run_create(
        scope=ReconciliationRun.Scope.MONTH, period_start=month, facility=facility, chunk_size=chunk_size
    )
    return run_execute(run_id=run.pk)


def verdicts_of(run) -> dict[int, Verdict]:
    return {v.visit_id: v for v in Verdict.objects.filter(run=run)}


@pytest.fixture
def reconcile_month():
    return reconcile


@pytest.fixture
def facility_a(db):
    return FacilityFactory(name="Facility A")


@pytest.fixture
def facility_b(db):
    return FacilityFactory(name="Facility B")


@pytest.fixture
def flushable_db(transactional_db):
    """transaction=True tests end with a TRUNCATE of every table, which the audit log's append-only
    TRUNCATE trigger refuses. For that one flush only, this session skips ordinary triggers
    (`session_replication_role = replica`); the role is reset right after it."""
    from django.db import connection

    yield
    ops = connection.ops
    original = ops.execute_sql_flush

    def flush_once(sql_list):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = replica")
            original(sql_list)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = origin")
            del ops.execute_sql_flush

    ops.execute_sql_flush = flush_once
