from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User

from apps.reconciliation.models import ReconciliationRun, Tariff
from apps.reconciliation.services import run_create, run_execute
from apps.staff.services import staff_group_ensure
from tests.factories import FacilityFactory, PatientFactory
from tests.factories import reconciliation as reconciliation_factories
from tests.factories.reconciliation import AppointmentFactory, ReportedVisitFactory, warsaw
from tests.factories.staff import otp_verified


@pytest.fixture
def staff_user(db):
    user = User.objects.create_user("analyst", password="not-used-here-1")
    user.groups.add(staff_group_ensure())
    return user


@pytest.fixture
def staff_client(client, staff_user):
    return otp_verified(client, staff_user)


@pytest.fixture
def reconciled_month(db, cardiology):
    """July 2026 at two facilities: A has one paid visit, one unregistered and one emergency; B one
    registered elsewhere. Cardiology is priced at 150 PLN."""
    facility_a = FacilityFactory(name="Facility A")
    facility_b = FacilityFactory(name="Facility B")
    Tariff.objects.create(service=cardiology, amount="150.00")
    paid = PatientFactory()
    AppointmentFactory(patient=paid, service=cardiology, facility=facility_a)
    visits = {
        "paid": ReportedVisitFactory(
            patient=paid, service=cardiology, facility=facility_a, facility_visit_id="P-1"
        ),
        "unregistered": ReportedVisitFactory(
            service=cardiology, facility=facility_a, facility_visit_id="U-1", visit_at=warsaw(2026, 7, 20, 11)
        ),
        "emergency": ReportedVisitFactory(
            service=cardiology, facility=facility_a, facility_visit_id="E-1", emergency=True
        ),
    }
    elsewhere = PatientFactory()
    AppointmentFactory(patient=elsewhere, service=cardiology, facility=facility_a)
    visits["elsewhere"] = ReportedVisitFactory(
        patient=elsewhere, service=cardiology, facility=facility_b, facility_visit_id="M-1"
    )
    run = run_create(scope=ReconciliationRun.Scope.MONTH, period_start=dt.date(2026, 7, 1))
    run = run_execute(run_id=run.pk)
    return {"run": run, "a": facility_a, "b": facility_b, "visits": visits}


@pytest.fixture
def settlement_clock():
    """Tests that import visits of 2026 run in November 2026, whatever today is (see
    `tests.factories.reconciliation.SETTLEMENT_NOW`)."""
    with reconciliation_factories.settlement_clock() as traveller:
        yield traveller
