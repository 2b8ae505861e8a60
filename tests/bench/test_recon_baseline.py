"""The reconciliation benchmark's one-statement baseline applies the same rules as the run: on a month
with a visit for every rule its eligible count equals the run's (no timings here; bench/ measures)."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.reconciliation.models import Reason, Verdict
from bench.run import _recon_baseline
from tests.factories import PatientFactory, ServiceFactory
from tests.factories.reconciliation import AppointmentFactory, ReportedVisitFactory, warsaw
from tests.reconciliation.conftest import reconcile

pytestmark = pytest.mark.django_db


def test_the_baseline_pays_exactly_the_visits_the_run_pays(patient, cardiology, facility_a, facility_b):
    def visit(**kwargs):
        return ReportedVisitFactory(**{"service": cardiology, "facility": facility_a, **kwargs})

    matched = AppointmentFactory(patient=patient, service=cardiology, facility=facility_a)
    visit(patient=patient)  # matched_registration
    visit(patient=patient, visit_at=warsaw(2026, 7, 14, 12))  # duplicate claim
    visit(patient=patient, emergency=True, visit_at=warsaw(2026, 7, 14, 13))  # emergency, duplicate claim
    assert matched.pk
    for status in ("no_show", "cancelled_by_patient"):
        someone = PatientFactory()
        AppointmentFactory(patient=someone, service=cardiology, facility=facility_a, status=status)
        visit(patient=someone)
        visit(patient=someone, emergency=True, visit_at=warsaw(2026, 7, 14, 15))
    late = PatientFactory()
    AppointmentFactory(
        patient=late, service=cardiology, facility=facility_a, booked_at=warsaw(2026, 7, 14, 11)
    )
    visit(patient=late)  # booked after the visit
    walk_in = PatientFactory()
    visit(patient=walk_in, emergency=True)  # emergency
    visit(patient=walk_in, emergency=True, visit_at=warsaw(2026, 7, 14, 17))  # the same emergency again
    visit(patient=walk_in, emergency=True, facility=facility_b)  # another facility's emergency
    visit(patient=None, patient_pesel="44051401458", emergency=True)  # unknown patient
    visit(patient=PatientFactory())  # no registration
    gone = PatientFactory()
    AppointmentFactory(patient=gone, service=cardiology, facility=facility_a)
    visit(patient=gone, withdrawn=True, version=2)  # withdrawn, though it matched
    visit(patient=PatientFactory(), visit_at=warsaw(2026, 7, 20))  # no registration either
    endocrinology = ServiceFactory(endocrinology=True)
    visit(patient=None, patient_pesel="44051401458", service=endocrinology, emergency=True)  # out of scope

    run = reconcile()
    _, eligible, total = _recon_baseline(
        dt.datetime(2026, 7, 1, tzinfo=dt.UTC) - dt.timedelta(hours=2),
        dt.datetime(2026, 8, 1, tzinfo=dt.UTC) - dt.timedelta(hours=2),
    )

    reasons = set(Verdict.objects.filter(run=run).values_list("reason", flat=True))
    assert {
        Reason.MATCHED_REGISTRATION,
        Reason.DUPLICATE_CLAIM,
        Reason.NO_SHOW,
        Reason.REGISTRATION_CANCELLED,
        Reason.BOOKED_AFTER_VISIT,
        Reason.EMERGENCY,
        Reason.EMERGENCY_NO_PATIENT,
        Reason.NO_REGISTRATION,
        Reason.SERVICE_NOT_IN_SCOPE,
        Reason.WITHDRAWN,
    } <= reasons
    assert (eligible, total) == (run.eligible_count, run.visits_done)
