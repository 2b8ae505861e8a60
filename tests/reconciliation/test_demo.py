from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User

from apps.core import demo as core_demo
from apps.reconciliation.demo import demo_seed
from apps.reconciliation.models import Override, ReconciliationRun, ReportedVisit, Verdict
from tests.factories import FacilityFactory, PatientFactory, ServiceFactory
from tests.factories.reconciliation import AppointmentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("settlement_clock")]


@pytest.fixture(autouse=True)
def credentials_file(tmp_path, monkeypatch):
    path = tmp_path / "demo-credentials.txt"
    monkeypatch.setattr(core_demo, "CREDENTIALS_FILE", path)
    return path


def test_without_appointments_the_demo_reconciles_reported_visits_idempotently(credentials_file, cardiology):
    ServiceFactory(endocrinology=True)
    FacilityFactory.create_batch(3)
    PatientFactory.create_batch(2)  # emergencies are reported for patients CeR knows

    demo_seed(out=StringIO())
    counts = (ReportedVisit.objects.count(), ReconciliationRun.objects.count(), Override.objects.count())
    demo_seed(out=StringIO())

    assert (
        ReportedVisit.objects.count(),
        ReconciliationRun.objects.count(),
        Override.objects.count(),
    ) == counts
    july = ReconciliationRun.objects.get(period_start="2026-07-01")
    assert july.state == "done" and july.ineligible_count > 0 and july.eligible_count > 0
    reasons = set(Verdict.objects.values_list("reason", flat=True))
    assert {"no_registration", "emergency", "facility_not_obliged", "service_not_in_scope"} <= reasons
    staff = User.objects.get(username="nfz")
    assert staff.has_perm("reconciliation.review_reconciliation") and staff.has_usable_password()
    remembered = credentials_file.read_text()
    assert remembered.count("user nfz, password ") == 1


def test_with_appointments_the_demo_matches_them_and_flags_some(cardiology):
    facilities = FacilityFactory.create_batch(2)
    for n in range(12):
        AppointmentFactory(patient=PatientFactory(), service=cardiology, facility=facilities[n % 2])
    PatientFactory()  # comes as an emergency, without a booking

    demo_seed(out=StringIO())

    reasons = set(Verdict.objects.values_list("reason", flat=True))
    assert {"matched_registration", "no_registration", "duplicate_claim", "emergency"} <= reasons
    assert Override.objects.count() == 1
