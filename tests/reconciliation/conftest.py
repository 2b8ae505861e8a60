from __future__ import annotations

import datetime as dt

import pytest

from apps.reconciliation.models import ReconciliationRun, Verdict
from apps.reconciliation.services import run_create, run_execute
from tests.factories import FacilityFactory
from tests.factories import reconciliation as reconciliation_factories


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
def settlement_clock():
    """Tests that import visits of 2026 run in November 2026, whatever today is (see
    `tests.factories.reconciliation.SETTLEMENT_NOW`)."""
    with reconciliation_factories.settlement_clock() as traveller:
        yield traveller
