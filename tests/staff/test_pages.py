"""The staff review pages: runs, summaries, trends, drill-down, overrides, exports and uploads."""

from __future__ import annotations

import csv
import io
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import load_workbook

from apps.audit.models import AccessLog
from apps.core import pesel
from apps.reconciliation import tasks
from apps.reconciliation.models import ImportBatch, ReconciliationRun, ReportedVisit, Verdict

pytestmark = pytest.mark.django_db


def visits_url(month, facility) -> str:
    return reverse("staff:facility_visits", kwargs={"run_id": month["run"].pk, "facility_id": facility.pk})


def test_the_runs_page_shows_state_and_progress(staff_client, reconciled_month):
    ReconciliationRun.objects.create(
        scope="month",
        period_start="2026-08-01",
        period_end="2026-09-01",
        rule_version="x",
        state="running",
        visits_total=200,
        visits_done=50,
    )

    html = staff_client.get(reverse("staff:runs")).content.decode()

    assert 'value="25"' in html and "w toku" in html and "zakończony" in html
    assert 'http-equiv="refresh"' in html  # live progress while a run is active


def test_starting_a_run_queues_it_after_commit(staff_client, django_capture_on_commit_callbacks, facility_a):
    with (
        mock.patch.object(tasks.run_execute_task, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = staff_client.post(
            reverse("staff:run_start"), {"month": "2026-07", "facility": facility_a.nfz_code}
        )

    run = ReconciliationRun.objects.get()
    assert response.status_code == 302
    assert (run.scope, str(run.period_start), run.facility_id, run.state) == (
        "month",
        "2026-07-01",
        facility_a.pk,
        "queued",
    )
    delay.assert_called_once_with(run.pk)


def test_a_bad_month_is_a_form_error(staff_client):
    response = staff_client.post(reverse("staff:run_start"), {"month": "July"})

    assert response.status_code == 400 and "RRRR-MM" in response.content.decode()
    assert not ReconciliationRun.objects.exists()


def test_the_summary_counts_per_facility_and_service_with_the_amount_at_stake(staff_client, reconciled_month):
    response = staff_client.get(reverse("staff:run", kwargs={"run_id": reconciled_month["run"].pk}))

    by_facility = {row["facility_id"]: row for row in response.context["by_facility"]}
    a, b = by_facility[reconciled_month["a"].pk], by_facility[reconciled_month["b"].pk]
    assert (a["visits"], a["eligible"], a["ineligible"], str(a["at_stake"])) == (3, 2, 1, "150.00")
    assert (b["visits"], b["ineligible"], str(b["at_stake"])) == (1, 1, "150.00")
    reasons = [r.value for r in response.context["reasons"]]
    assert a["by_reason"][reasons.index("no_registration")] == 1
    assert b["by_reason"][reasons.index("facility_mismatch")] == 1
    [service] = response.context["by_service"]
    assert (service["visits"], service["ineligible"], str(service["at_stake"])) == (4, 2, "300.00")


def test_the_trend_chart_is_inline_svg_with_a_data_table(staff_client, reconciled_month):
    response = staff_client.get(reverse("staff:trends"))

    html = response.content.decode()
    assert "<svg" in html and "<script" not in html
    assert "2026-07: 50,0%" in html  # 2 of 4 visits ineligible (Polish decimal comma)


def test_the_drill_down_masks_pesels_and_records_the_read(staff_client, staff_user, reconciled_month):
    paid = reconciled_month["visits"]["paid"]

    response = staff_client.get(visits_url(reconciled_month, reconciled_month["a"]))

    html = response.content.decode()
    assert response.status_code == 200 and "P-1" in html and "U-1" in html and "M-1" not in html
    assert pesel.mask(paid.patient_pesel) in html and paid.patient_pesel not in html
    logged = AccessLog.objects.filter(actor_type="staff", actor_id=str(staff_user.pk))
    assert paid.patient_id in set(logged.values_list("patient_id", flat=True))
    assert logged.first().action == "staff:facility_visits"


def test_the_drill_down_filters(staff_client, reconciled_month):
    url = visits_url(reconciled_month, reconciled_month["a"])

    ineligible = staff_client.get(url, {"eligible": "no"}).content.decode()
    by_reason = staff_client.get(url, {"reason": "emergency"}).content.decode()
    by_date = staff_client.get(url, {"date_from": "2026-07-15"}).content.decode()

    assert "U-1" in ineligible and "P-1" not in ineligible
    assert "E-1" in by_reason and "U-1" not in by_reason
    assert "U-1" in by_date and "P-1" not in by_date


def _export(staff_client, month, kind: str, **filters):
    response = staff_client.get(visits_url(month, month["a"]), {**filters, "export": kind})
    assert response.status_code == 200
    return response


def test_the_csv_export_of_a_filtered_list_parses_back(staff_client, staff_user, reconciled_month):
    response = _export(staff_client, reconciled_month, "csv", eligible="yes")

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(r["facility_visit_id"] for r in rows) == ["E-1", "P-1"]
    paid = next(r for r in rows if r["facility_visit_id"] == "P-1")
    assert (paid["eligible"], paid["reason"], paid["final_eligible"]) == (
        "yes",
        "matched_registration",
        "yes",
    )
    assert paid["patient_pesel"] == pesel.mask(reconciled_month["visits"]["paid"].patient_pesel)
    assert AccessLog.objects.filter(actor_id=str(staff_user.pk), action="staff:export:csv").exists()


def test_the_xlsx_export_parses_back(staff_client, reconciled_month):
    response = _export(staff_client, reconciled_month, "xlsx", reason="no_registration")

    sheet = load_workbook(io.BytesIO(response.content)).active
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert header[:3] == ["facility_code", "facility_visit_id", "service_code"]
    assert [(r[1], r[6], r[7]) for r in rows] == [("U-1", "no_registration", False)]  # typed cells


def test_an_override_through_the_page_needs_a_justification_and_shows_in_the_trail(
    staff_client, staff_user, reconciled_month
):
    verdict = Verdict.objects.get(
        run=reconciled_month["run"], visit=reconciled_month["visits"]["unregistered"]
    )
    url = reverse("staff:verdict", kwargs={"verdict_id": verdict.pk})

    missing = staff_client.post(url, {"new_eligible": "yes", "justification": "   "})
    assert missing.status_code == 400 and not verdict.overrides.exists()
    assert "errorlist" in missing.content.decode()

    done = staff_client.post(url, {"new_eligible": "yes", "justification": "Desk booking lost in outage."})
    page = staff_client.get(url).content.decode()

    assert done.status_code == 302
    verdict.refresh_from_db()
    assert verdict.final_eligible is True and verdict.reason == "no_registration"
    assert "Desk booking lost in outage." in page and "analyst" in page
    assert AccessLog.objects.filter(actor_id=str(staff_user.pk), action="staff:verdict_detail").exists()


def test_uploading_a_file_reports_its_bad_lines(
    settlement_clock, staff_client, staff_user, reconciled_month, cardiology, patient
):
    content = (
        "pesel,facility_code,service_code,visit_at,emergency,visit_id\n"
        f"{patient.pesel},{reconciled_month['a'].nfz_code},{cardiology.code},2026-07-03T10:00,0,UP-1\n"
        f"{patient.pesel},{reconciled_month['a'].nfz_code},{cardiology.code},not-a-date,0,UP-2\n"
    ).encode()

    response = staff_client.post(
        reverse("staff:imports"), {"file": SimpleUploadedFile("july.csv", content, "text/csv")}, follow=True
    )

    batch = ImportBatch.objects.get()
    assert (batch.source, batch.uploaded_by, batch.rows_imported, batch.rows_rejected) == (
        "upload",
        staff_user,
        1,
        1,
    )
    html = response.content.decode()
    assert "zła data wizyty" in html and ">3<" in html and "<td>visit_at</td>" in html  # line and column
    assert ReportedVisit.objects.filter(facility_visit_id="UP-1").exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("visits.txt", b"x", ".csv"), ("visits.csv", b"pesel\n1\n", "brak kolumn")],
)
def test_a_bad_upload_is_a_form_error(staff_client, name, content, message):
    response = staff_client.post(reverse("staff:imports"), {"file": SimpleUploadedFile(name, content)})

    assert response.status_code == 400 and message in response.content.decode()
    assert not ImportBatch.objects.exists()


def test_unknown_ids_are_404_not_500(staff_client):
    assert staff_client.get(reverse("staff:run", kwargs={"run_id": 999})).status_code == 404
    assert staff_client.get(reverse("staff:verdict", kwargs={"verdict_id": 999})).status_code == 404
    assert staff_client.get(reverse("staff:import", kwargs={"batch_id": 999})).status_code == 404


def test_a_bad_filter_is_shown_on_the_form_not_a_500(staff_client, reconciled_month):
    response = staff_client.get(
        visits_url(reconciled_month, reconciled_month["a"]), {"date_from": "yesterday"}
    )

    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
