"""Corrections and withdrawals of reported visits (file and API): a reason is required, every version
is kept, the latest counts, and each verdict names the version its run used."""

from __future__ import annotations

import pytest

from apps.reconciliation.models import Reason, ReportedVisit, Verdict, VisitVersion
from apps.reconciliation.services import visits_import
from tests.factories.reconciliation import AppointmentFactory, warsaw
from tests.reconciliation.conftest import reconcile

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("settlement_clock")]

HEADER = "pesel,facility_code,service_code,visit_at,emergency,visit_id,correction_reason,withdrawn\n"


def line(patient, facility, service, at: str, *, emergency=0, reason="", withdrawn=0, visit_id="K-1") -> str:
    fields = (patient.pesel, facility.nfz_code, service.code, at, emergency, visit_id, reason, withdrawn)
    return ",".join(str(f) for f in fields) + "\n"


def test_a_correction_with_a_reason_makes_a_new_version_and_the_latest_counts(
    patient, cardiology, facility_a
):
    AppointmentFactory(patient=patient, service=cardiology, facility=facility_a, start=warsaw(2026, 7, 15, 9))
    visits_import(
        file=(HEADER + line(patient, facility_a, cardiology, "2026-07-14T09:05")).encode(), source="file"
    )
    visit = ReportedVisit.objects.get()
    first_run = reconcile()
    assert Verdict.objects.get(run=first_run).reason == Reason.NO_REGISTRATION  # the wrong day

    fixed = HEADER + line(patient, facility_a, cardiology, "2026-07-15T09:05", reason="wrong day typed")
    batch = visits_import(file=fixed.encode(), source="upload")

    assert (batch.rows_corrected, batch.rows_imported, batch.rows_duplicate, batch.rows_rejected) == (
        1,
        0,
        0,
        0,
    )
    visit.refresh_from_db()
    assert (visit.version, visit.visit_at, visit.correction_reason) == (
        2,
        warsaw(2026, 7, 15, 9, 5),
        "wrong day typed",
    )
    old = VisitVersion.objects.get(visit=visit)
    assert (old.version, old.visit_at, old.withdrawn) == (1, warsaw(2026, 7, 14, 9, 5), False)
    second_run = reconcile()
    verdicts = {v.run_id: v for v in Verdict.objects.filter(visit=visit)}
    assert (verdicts[first_run.pk].visit_version, verdicts[first_run.pk].reason) == (
        1,
        Reason.NO_REGISTRATION,
    )
    assert (verdicts[second_run.pk].visit_version, verdicts[second_run.pk].reason) == (
        2,
        Reason.MATCHED_REGISTRATION,
    )
    # Sending the corrected row again changes nothing.
    again = visits_import(file=(fixed + "\n").encode(), source="upload")
    assert (again.rows_duplicate, again.rows_corrected) == (1, 0)
    assert VisitVersion.objects.count() == 1


def test_the_emergency_flag_can_be_corrected_and_a_visit_withdrawn(patient, cardiology, facility_a):
    visits_import(
        file=(HEADER + line(patient, facility_a, cardiology, "2026-07-14T09:05")).encode(), source="file"
    )
    flag = HEADER + line(
        patient, facility_a, cardiology, "2026-07-14T09:05", emergency=1, reason="was urgent"
    )
    visits_import(file=flag.encode(), source="file")
    assert reconcile().verdicts.get().reason == Reason.EMERGENCY

    no_reason = HEADER + line(patient, facility_a, cardiology, "2026-07-14T09:05", emergency=1, withdrawn=1)
    refused = visits_import(file=no_reason.encode(), source="file")
    assert [(e["line"], e["column"], e["reason"]) for e in refused.errors] == [
        (2, "correction_reason", "a withdrawal needs a correction_reason")
    ]
    invisible = HEADER + line(
        patient, facility_a, cardiology, "2026-07-14T09:05", emergency=1, withdrawn=1, reason="\u200b\u200b"
    )
    assert visits_import(file=invisible.encode(), source="file").rows_rejected == 1
    withdraw = HEADER + line(
        patient, facility_a, cardiology, "2026-07-14T09:05", emergency=1, withdrawn=1, reason="reported twice"
    )
    assert visits_import(file=withdraw.encode(), source="file").rows_corrected == 1

    visit = ReportedVisit.objects.get()
    assert (visit.version, visit.withdrawn) == (3, True)
    assert list(VisitVersion.objects.values_list("version", "emergency", "withdrawn")) == [
        (2, True, False),
        (1, False, False),
    ]
    run = reconcile()
    verdict = run.verdicts.get()
    assert (verdict.eligible, verdict.reason, verdict.visit_version) == (False, Reason.WITHDRAWN, 3)


def test_withdrawing_a_visit_never_reported_is_refused(patient, cardiology, facility_a):
    content = HEADER + line(patient, facility_a, cardiology, "2026-07-14T09:05", withdrawn=1, reason="oops")

    batch = visits_import(file=content.encode(), source="file")

    assert batch.rows_rejected == 1 and "never reported" in batch.errors[0]["reason"]
    assert not ReportedVisit.objects.exists()
