"""Importing reported visits: CSV and JSON, bad rows reported by line, re-imports change nothing."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.core.errors import DomainError
from apps.reconciliation.models import ImportBatch, ReportedVisit
from apps.reconciliation.services import visits_import
from tests.factories import PatientFactory, ServiceFactory
from tests.factories.reconciliation import warsaw

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("settlement_clock")]

UNKNOWN_PESEL = "44051401458"  # valid, but nobody in CeR has it


def csv_file(facility, service, patient, extra_rows: str = "") -> bytes:
    return (
        "pesel,facility_code,service_code,visit_at,emergency,visit_id\n"
        f"{patient.pesel},{facility.nfz_code},{service.code},2026-07-14T09:05,0,A-1\n"
        f"{UNKNOWN_PESEL},{facility.nfz_code},{service.code},2026-07-14 10:00,1,A-2\n" + extra_rows
    ).encode()


def test_a_csv_file_is_imported_and_patients_are_resolved(facility_a, cardiology, patient):
    batch = visits_import(file=csv_file(facility_a, cardiology, patient), source="file")

    assert (batch.rows_total, batch.rows_imported, batch.rows_rejected, batch.errors) == (2, 2, 0, [])
    first, second = ReportedVisit.objects.order_by("source_row")
    assert (first.facility_visit_id, first.patient_id, first.emergency) == ("A-1", patient.pk, False)
    assert first.visit_at == warsaw(2026, 7, 14, 9, 5)  # wall-clock time in Poland
    assert (second.patient_id, second.patient_pesel, second.emergency) == (None, UNKNOWN_PESEL, True)
    assert (first.source_row, second.source_row, first.batch_id) == (2, 3, batch.pk)


def test_bad_rows_are_reported_with_their_line_and_the_good_ones_kept(facility_a, cardiology, patient):
    bad = (
        f"12345678901,{facility_a.nfz_code},{cardiology.code},2026-07-14T09:05,0,B-1\n"
        f"{patient.pesel},99/NOPE/1,{cardiology.code},2026-07-14T09:05,0,B-2\n"
        f"{patient.pesel},{facility_a.nfz_code},NOPE,2026-07-14T09:05,0,B-3\n"
        f"{patient.pesel},{facility_a.nfz_code},{cardiology.code},14.07.2026,0,B-4\n"
        f"{patient.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-14T09:05,maybe,B-5\n"
        f"{patient.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-14T09:05,0,\n"
    )

    batch = visits_import(file=csv_file(facility_a, cardiology, patient, bad), source="file")

    assert (batch.rows_total, batch.rows_imported, batch.rows_rejected) == (8, 2, 6)
    assert [e["line"] for e in batch.errors] == [4, 5, 6, 7, 8, 9]
    reasons = [e["reason"] for e in batch.errors]
    assert reasons[0] == "invalid PESEL: wrong check digit"
    assert "unknown facility code" in reasons[1] and "unknown service code" in reasons[2]
    assert reasons[3].startswith("bad visit date") and "emergency" in reasons[4] and "visit_id" in reasons[5]
    assert not any(patient.pesel in r for r in reasons)  # never echo personal data
    assert set(ReportedVisit.objects.values_list("facility_visit_id", flat=True)) == {"A-1", "A-2"}


def test_re_importing_the_same_file_changes_nothing(facility_a, cardiology, patient):
    content = csv_file(facility_a, cardiology, patient)
    first = visits_import(file=content, source="file")

    again = visits_import(file=content, source="upload")

    assert again.pk == first.pk and again.already_imported
    assert ImportBatch.objects.count() == 1 and ReportedVisit.objects.count() == 2


def test_a_visit_id_already_reported_with_other_data_and_no_reason_is_refused_not_dropped(
    facility_a, cardiology, patient
):
    visits_import(file=csv_file(facility_a, cardiology, patient), source="file")
    other = PatientFactory()
    changed = (
        "pesel,facility_code,service_code,visit_at,visit_id\n"
        f"{other.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-20T09:05,A-1\n"
        f"{other.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-20T09:05,A-3\n"
        f"{other.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-21T09:05,A-3\n"
        f"{other.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-20T09:05,A-3\n"
    ).encode()

    batch = visits_import(file=changed, source="file")

    assert (batch.rows_imported, batch.rows_duplicate, batch.rows_corrected, batch.rows_rejected) == (
        1,
        1,
        0,
        2,
    )
    assert [(e["line"], e["column"]) for e in batch.errors] == [(2, "correction_reason"), (4, "visit_id")]
    assert "give a correction_reason" in batch.errors[0]["reason"]
    kept = ReportedVisit.objects.get(facility=facility_a, facility_visit_id="A-1")
    assert kept.patient_id == patient.pk and kept.visit_at == warsaw(2026, 7, 14, 9, 5) and kept.version == 1
    assert ReportedVisit.objects.get(facility_visit_id="A-3").visit_at == warsaw(2026, 7, 20, 9, 5)


def test_a_json_file_is_imported_with_rows_numbered_from_one(facility_a, patient):
    mammography = ServiceFactory(mammography=True)
    rows = [
        {
            "pesel": patient.pesel,
            "facility_code": facility_a.nfz_code,
            "service_code": mammography.code,
            "visit_at": "2026-07-14T07:05:00Z",
            "emergency": True,
            "visit_id": 77,
        },
        {
            "pesel": patient.pesel,
            "facility_code": facility_a.nfz_code,
            "service_code": mammography.code,
            "visit_at": "soon",
            "visit_id": "78",
        },
        "not an object",
    ]

    batch = visits_import(file=json.dumps({"visits": rows}).encode(), source="api")

    assert (batch.rows_imported, batch.rows_rejected) == (1, 2)
    assert [e["line"] for e in batch.errors] == [2, 3]
    visit = ReportedVisit.objects.get()
    assert (visit.facility_visit_id, visit.emergency, visit.visit_at) == (
        "77",
        True,
        warsaw(2026, 7, 14, 9, 5),
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"pesel,visit_at\n1,2\n", "missing columns"),
        (b"[{", "invalid JSON"),
        (b'{"rows": []}', "expected a list"),
        (b"\xff\xfe\x00", "UTF-8"),
    ],
)
def test_an_unreadable_file_is_refused_whole(content, reason):
    with pytest.raises(DomainError) as refused:
        visits_import(file=content, source="file")

    assert refused.value.code == "import_unreadable" and reason in refused.value.message_in("en")
    assert not ImportBatch.objects.exists()


def test_the_import_command_reports_counts_and_bad_lines(tmp_path, facility_a, cardiology, patient):
    path = tmp_path / "july.csv"
    path.write_bytes(csv_file(facility_a, cardiology, patient, f"x,{facility_a.nfz_code},K,2026-07-01,0,Z\n"))
    out = StringIO()

    call_command("import_visits", str(path), stdout=out)
    call_command("import_visits", str(path), stdout=out)

    text = out.getvalue()
    assert "2 imported, 0 already reported, 1 rejected (of 3 rows)" in text
    assert "line 4: invalid PESEL" in text and "already imported" in text
    with pytest.raises(CommandError):
        call_command("import_visits", str(tmp_path / "missing.csv"))


def test_a_pesel_refusal_reads_in_one_language_on_the_staff_pages():
    from apps.reconciliation.imports import row_error_text

    stored = {"message": "invalid PESEL: %(reason)s", "params": {"reason": "wrong check digit"}}
    assert row_error_text(stored, "pl") == "niepoprawny PESEL: błędna cyfra kontrolna"
    assert row_error_text(stored, "en") == "invalid PESEL: wrong check digit"
