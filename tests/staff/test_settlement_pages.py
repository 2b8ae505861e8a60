"""The settlement analyst's pages (issue 14): payable counts after overrides, current and superseded
runs, overrides reaching the current run, the appointment behind a verdict, run-wide filters, the
settlement export (whole run and filtered view, PL/EN labels, reason texts, justifications, amounts,
typed XLSX cells, CSV for Polish Excel and for tools), the override audit trail, emergency shares
against the threshold, month over month per facility."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from apps.catalog.models import Facility
from apps.core.errors import DomainError
from apps.reconciliation.models import ReconciliationRun, SettlementPolicy, Verdict
from apps.reconciliation.services import run_create, run_execute, verdict_override
from tests.factories import VoivodeshipFactory

pytestmark = pytest.mark.django_db


def verdict_of(month, key: str, run=None) -> Verdict:
    return Verdict.objects.get(run=run or month["run"], visit=month["visits"][key])


def rerun(month_first=dt.date(2026, 7, 1)) -> ReconciliationRun:
    run = run_create(scope=ReconciliationRun.Scope.MONTH, period_start=month_first)
    return run_execute(run_id=run.pk)


def test_the_summary_counts_payable_after_overrides(staff_client, staff_user, reconciled_month):
    verdict_override(
        verdict=verdict_of(reconciled_month, "paid"),
        new_eligible=False,
        user=staff_user,
        justification="fraud",
    )

    page = staff_client.get(reverse("staff:run", kwargs={"run_id": reconciled_month["run"].pk}))

    text = page.content.decode()
    assert "Do zapłaty po zmianach" in text
    by_facility = {row["facility_id"]: row for row in page.context["by_facility"]}
    row_a = by_facility[reconciled_month["a"].pk]
    assert (row_a["eligible"], row_a["payable"], row_a["overridden"]) == (2, 1, 1)


def test_the_newest_finished_run_is_current_older_ones_superseded_and_overrides_reach_it(
    staff_client, staff_user, reconciled_month
):
    old = reconciled_month["run"]
    new = rerun()

    runs_page = staff_client.get(reverse("staff:runs")).content.decode()
    marks = {
        r.pk: (r.is_current, r.is_superseded) for r in staff_client.get(reverse("staff:runs")).context["runs"]
    }
    assert marks[old.pk] == (False, True) and marks[new.pk] == (True, False)
    assert "<strong>aktualny</strong>" in runs_page and "· zastąpiony" in runs_page
    old_page = staff_client.get(reverse("staff:run", kwargs={"run_id": old.pk})).content.decode()
    assert "zastąpiony nowszym przebiegiem" in old_page

    # An override made on the superseded run's verdict reaches the current run's verdict too.
    verdict_override(
        verdict=verdict_of(reconciled_month, "unregistered", run=old),
        new_eligible=True,
        user=staff_user,
        justification="booking lost in an outage",
    )
    current = verdict_of(reconciled_month, "unregistered", run=new)
    assert current.final_eligible is True and current.override_id is not None


def test_a_justification_of_only_zero_width_spaces_is_refused(staff_client, staff_user, reconciled_month):
    verdict = verdict_of(reconciled_month, "unregistered")
    with pytest.raises(DomainError) as refused:
        verdict_override(
            verdict=verdict, new_eligible=True, user=staff_user, justification="\u200b \u200b\ufeff"
        )
    assert refused.value.code == "justification_required"

    url = reverse("staff:verdict", kwargs={"verdict_id": verdict.pk})
    page = staff_client.post(url, {"new_eligible": "yes", "justification": "\u200b\u200b"})
    assert page.status_code == 400 and not verdict.overrides.exists()


def test_the_verdict_page_shows_the_appointments_state_and_booking_time(staff_client, reconciled_month):
    verdict = verdict_of(reconciled_month, "paid")

    page = staff_client.get(reverse("staff:verdict", kwargs={"verdict_id": verdict.pk}))

    appointment = page.context["appointment"]
    assert appointment.id == verdict.matched_appointment_id and appointment.status == "booked"
    booked = timezone.localtime(appointment.booked_at).strftime("%Y-%m-%d %H:%M")
    text = page.content.decode()
    assert f"zarezerwowana {booked}" in text and "zarezerwowana (booked)" in text
    # The reason in the page's language only (English on the analyst's choice).
    assert "zgodna rejestracja w CeR" in text and "matching registration in CeR" not in text
    staff_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    english = staff_client.get(reverse("staff:verdict", kwargs={"verdict_id": verdict.pk})).content.decode()
    assert f"booked {booked}" in english and "booked (booked)" in english
    assert "matching registration in CeR" in english and "zgodna rejestracja" not in english
    assert "Wersje wizyty" in text


def test_the_run_wide_list_filters_by_voivodeship_facility_service_and_reason(staff_client, reconciled_month):
    url = reverse("staff:run_verdicts", kwargs={"run_id": reconciled_month["run"].pk})

    def ids(**query) -> list[str]:
        page = staff_client.get(url, query)
        assert page.status_code == 200
        return sorted(item["verdict"].visit.facility_visit_id for item in page.context["items"])

    malopolskie = VoivodeshipFactory(teryt="12", name="małopolskie", name_en="Lesser Poland")
    Facility.objects.filter(pk=reconciled_month["b"].pk).update(voivodeship=malopolskie)

    assert ids() == ["E-1", "M-1", "P-1", "U-1"]
    assert ids(voivodeship=malopolskie.pk) == ["M-1"]
    assert ids(facility=reconciled_month["a"].nfz_code) == ["E-1", "P-1", "U-1"]
    assert ids(reason="no_registration") == ["U-1"]
    assert ids(service="KARDIO_1", eligible="no") == ["M-1", "U-1"]
    bad = staff_client.get(url, {"facility": "NOPE", "date_from": "0000-99-99"})
    assert bad.status_code == 200 and "errorlist" in bad.content.decode()


def test_the_whole_run_exports_as_typed_xlsx_with_polish_or_english_labels(
    staff_client, staff_user, reconciled_month
):
    verdict_override(
        verdict=verdict_of(reconciled_month, "unregistered"),
        new_eligible=True,
        user=staff_user,
        justification="rejestracja zgubiona",
    )
    url = reverse("staff:run_verdicts", kwargs={"run_id": reconciled_month["run"].pk})

    polish = load_workbook(io.BytesIO(staff_client.get(url, {"export": "xlsx", "lang": "pl"}).content)).active
    english = load_workbook(
        io.BytesIO(staff_client.get(url, {"export": "xlsx", "lang": "en"}).content)
    ).active

    header, *rows = [list(r) for r in polish.iter_rows(values_only=True)]
    assert header[:3] == ["kod placówki", "id wizyty w placówce", "kod świadczenia"]
    assert next(english.iter_rows(values_only=True))[:3] == (
        "facility code",
        "facility visit id",
        "service code",
    )
    assert len(rows) == 4  # the whole run, every facility
    by_id = {r[1]: dict(zip(header, r, strict=True)) for r in rows}
    unregistered = by_id["U-1"]
    assert unregistered["data wizyty"] == dt.datetime(2026, 7, 20, 11, 0)  # a real date cell, Warsaw time
    assert unregistered["do zapłaty wg reguł"] is False and unregistered["do zapłaty"] is True
    assert unregistered["powód"] == "brak rejestracji w CeR"
    assert unregistered["uzasadnienie zmiany"] == "rejestracja zgubiona"
    assert unregistered["zmienił"] == "analyst"
    assert unregistered["taryfa (PLN)"] == 150 and unregistered["do zapłaty (PLN)"] == 150
    assert by_id["M-1"]["do zapłaty (PLN)"] == 0 and by_id["M-1"]["przebieg"] == reconciled_month["run"].pk
    english_rows = {r[1]: r for r in english.iter_rows(min_row=2, values_only=True)}
    assert "no registration in CeR" in english_rows["U-1"]


def test_the_csv_is_readable_by_polish_excel_and_by_tools(staff_client, reconciled_month):
    url = reverse("staff:run_verdicts", kwargs={"run_id": reconciled_month["run"].pk})

    excel = b"".join(staff_client.get(url, {"export": "csv", "csv": "excel", "lang": "pl"}).streaming_content)
    tools = b"".join(
        staff_client.get(url, {"export": "csv", "reason": "facility_mismatch"}).streaming_content
    )

    assert excel.startswith(b"\xef\xbb\xbf")  # the byte-order mark Polish Excel needs for UTF-8
    rows = list(csv.reader(io.StringIO(excel.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][0] == "kod placówki" and len(rows) == 5
    mismatch = next(r for r in rows if r[1] == "M-1")
    assert "rejestracja w innej placówce" in mismatch and "nie" in mismatch and "0,00" in mismatch
    assert not tools.startswith(b"\xef\xbb\xbf")
    parsed = list(csv.DictReader(io.StringIO(tools.decode())))
    assert [r["facility_visit_id"] for r in parsed] == ["M-1"]  # the filtered view
    assert parsed[0]["visit_at"] == "2026-07-14T09:05:00+02:00" and parsed[0]["final_eligible"] == "no"
    assert parsed[0]["payable_pln"] == "0.00" and parsed[0]["tariff_pln"] == "150.00"


def test_all_overrides_are_listed_with_who_when_and_why(staff_client, staff_user, reconciled_month):
    verdict_override(
        verdict=verdict_of(reconciled_month, "unregistered"),
        new_eligible=True,
        user=staff_user,
        justification="outage on 20 July",
    )

    page = staff_client.get(reverse("staff:overrides"))
    other = staff_client.get(reverse("staff:overrides"), {"facility": reconciled_month["b"].nfz_code})

    text = page.content.decode()
    assert "outage on 20 July" in text and "analyst" in text and "U-1" in text
    assert "outage on 20 July" not in other.content.decode()


def test_emergency_shares_are_shown_against_the_threshold_kept_as_data(staff_client, reconciled_month):
    url = reverse("staff:run", kwargs={"run_id": reconciled_month["run"].pk})
    SettlementPolicy.objects.update_or_create(pk=1, defaults={"emergency_share_threshold": Decimal("50")})

    calm = staff_client.get(url)
    SettlementPolicy.objects.update_or_create(pk=1, defaults={"emergency_share_threshold": Decimal("10")})
    flagged = staff_client.get(url)

    shares = {s.facility_id: s for s in flagged.context["shares"]}
    assert shares[reconciled_month["a"].pk].percent == 33.3  # 1 of facility A's 3 visits
    assert calm.context["outliers"] == []
    assert [s.facility_id for s in flagged.context["outliers"]] == [reconciled_month["a"].pk]
    assert "Do sprawdzenia:" in flagged.content.decode()


def test_month_over_month_per_facility_shows_months_without_a_run(staff_client, reconciled_month):
    august = rerun(dt.date(2026, 9, 1))  # no visits in September; August has no run at all
    assert august.state == "done"

    page = staff_client.get(reverse("staff:facility_trends"))

    table = page.context["table"]
    months = [(m["month"], m["has_run"]) for m in table["months"]]
    assert months[-3:] == [
        (dt.date(2026, 7, 1), True),
        (dt.date(2026, 8, 1), False),
        (dt.date(2026, 9, 1), True),
    ]
    row_a = next(r for r in table["rows"] if r["code"] == reconciled_month["a"].nfz_code)
    july = next(c for c in row_a["cells"] if c["month"] == dt.date(2026, 7, 1))
    assert (july["counts"]["visits"], july["counts"]["ineligible"], july["percent"]) == (3, 1, 33.3)
    assert "(brak przebiegu)" in page.content.decode()


def test_a_month_that_has_not_ended_is_a_form_error(staff_client):
    month = timezone.localdate().strftime("%Y-%m")

    page = staff_client.post(reverse("staff:run_start"), {"month": month})

    assert page.status_code == 400 and "nie zakończył" in page.content.decode()
    assert not ReconciliationRun.objects.exists()


def test_a_month_without_a_run_stays_on_the_trend_chart_as_a_gap(staff_client, reconciled_month):
    rerun(dt.date(2026, 9, 1))

    page = staff_client.get(reverse("staff:trends"))

    points = [(b["point"].month, b["point"].run_id is not None) for b in page.context["bars"]]
    assert points == [(dt.date(2026, 7, 1), True), (dt.date(2026, 8, 1), False), (dt.date(2026, 9, 1), True)]
    assert "brak zakończonego przebiegu" in page.content.decode()
