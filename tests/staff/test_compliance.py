"""The schedule compliance list: facilities whose published schedule is shorter than the service's
minimum horizon, per facility and service, filterable and exportable, for NFZ staff only."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from apps.notifications.lifecycle import compliance_check
from apps.notifications.models import ComplianceCheck
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    LocalityFactory,
    PatientFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
    VoivodeshipFactory,
)
from tests.factories.integration import access_token_create, api_client_create
from tests.factories.staff import otp_verified

pytestmark = pytest.mark.django_db

URL = reverse("staff:compliance")


@pytest.fixture
def checked(cardiology):
    """Today's check: in mazowieckie, cardiology published 5 days ahead at `short` and 40 at `good`
    (30 required); in małopolskie, mammography (60 required) with nothing published at `empty`.
    A week ago another facility was short too (an older check day)."""
    mammography = ServiceFactory(mammography=True, min_horizon_days=60)
    krakow = LocalityFactory(
        simc="0950463",
        name="Kraków",
        voivodeship=VoivodeshipFactory(teryt="12", name="małopolskie", name_en="Lesser Poland"),
    )
    short = FacilityFactory(name="Krótka")
    good = FacilityFactory(name="Dobra")
    empty = FacilityFactory(name="Pusta", locality=krakow)
    for facility, service, days in (
        (short, cardiology, 5),
        (good, cardiology, 40),
        (empty, mammography, None),
    ):
        ContractFactory(facility=facility, service=service)
        if days is not None:
            SlotFactory(
                schedule=ScheduleFactory(facility=facility, service=service),
                start=timezone.now() + dt.timedelta(days=days),
            )
    assert compliance_check() == 3
    earlier = FacilityFactory(name="Dawniej")
    ComplianceCheck.objects.create(
        day=timezone.localdate() - dt.timedelta(days=7),
        facility=earlier,
        service=cardiology,
        published_until=None,
        published_days=0,
        required_days=30,
        compliant=False,
    )
    return {
        "short": short,
        "good": good,
        "empty": empty,
        "earlier": earlier,
        "cardiology": cardiology,
        "mammography": mammography,
        "krakow": krakow,
    }


def _codes(response) -> list[str]:
    return [check.facility.nfz_code for check in response.context["page"]]


def _check(facility) -> ComplianceCheck:
    return ComplianceCheck.objects.get(facility=facility, day=timezone.localdate())


def test_staff_see_the_latest_days_shortfalls_largest_first(staff_client, checked):
    response = staff_client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    # The facility with nothing published misses all 60 days; the cardiology one misses 30 - 5ish.
    assert _codes(response) == [checked["empty"].nfz_code, checked["short"].nfz_code]
    short = _check(checked["short"])
    rows = {c.facility_id: c for c in response.context["page"]}
    assert rows[checked["empty"].pk].days_short == 60
    assert rows[checked["short"].pk].days_short == 30 - short.published_days > 0
    assert checked["good"].nfz_code not in html and checked["earlier"].nfz_code not in html
    assert "Zgodność harmonogramów" in html and "małopolskie" in html
    assert short.published_until.strftime("%Y-%m-%d") in html
    assert response.context["counts"] == {"checked": 3, "short": 2}


def test_the_list_filters_by_voivodeship_and_service(staff_client, checked):
    by_region = staff_client.get(URL, {"voivodeship": "12"})
    by_service = staff_client.get(URL, {"service": "KARDIO_1"})
    both = staff_client.get(URL, {"voivodeship": "14", "service": "MAMMO_SCR"})

    assert _codes(by_region) == [checked["empty"].nfz_code]
    assert _codes(by_service) == [checked["short"].nfz_code]
    assert _codes(both) == []
    assert "Brak placówek poniżej wymaganego horyzontu." in both.content.decode()


def test_compliant_pairs_and_earlier_days_can_be_shown(staff_client, checked):
    everything = staff_client.get(URL, {"include_compliant": "on"})
    week_ago = staff_client.get(URL, {"day": (timezone.localdate() - dt.timedelta(days=7)).isoformat()})

    rows = {c.facility_id: c for c in everything.context["page"]}
    assert set(rows) == {checked["empty"].pk, checked["short"].pk, checked["good"].pk}
    assert rows[checked["good"].pk].days_short == 0
    assert _codes(week_ago) == [checked["earlier"].nfz_code]


def test_the_page_says_when_no_check_has_run_yet(staff_client):
    response = staff_client.get(URL)

    assert response.status_code == 200
    assert "Kontrola zgodności jeszcze się nie odbyła." in response.content.decode()


def test_the_staff_navigation_links_to_it(staff_client):
    assert f'href="{URL}"' in staff_client.get(reverse("staff:runs")).content.decode()


def test_the_filtered_list_exports_as_csv_and_xlsx(staff_client, checked):
    csv_response = staff_client.get(URL, {"service": "KARDIO_1", "export": "csv"})
    xlsx_response = staff_client.get(URL, {"export": "xlsx"})

    assert csv_response["Content-Disposition"].startswith('attachment; filename="compliance-')
    text = b"".join(csv_response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    short = _check(checked["short"])
    assert rows[0][:3] == ["check_day", "facility_code", "facility_name"]
    assert rows[1:] == [
        [
            timezone.localdate().isoformat(),
            checked["short"].nfz_code,
            "Krótka",
            "mazowieckie",
            "KARDIO_1",
            checked["cardiology"].name_pl,
            short.published_until.isoformat(),
            str(short.published_days),
            "30",
            str(30 - short.published_days),
            "no",
        ]
    ]
    sheet = load_workbook(io.BytesIO(xlsx_response.content)).active
    values = list(sheet.values)
    assert sheet.title == "compliance" and len(values) == 3
    assert [row[1] for row in values[1:]] == [checked["empty"].nfz_code, checked["short"].nfz_code]


def test_a_reviewer_without_export_permission_sees_the_list_but_cannot_export(client, checked):
    reviewer = User.objects.create_user("reviewer", password="not-used-here-1")
    reviewer.user_permissions.add(Permission.objects.get(codename="review_reconciliation"))
    otp_verified(client, reviewer)

    page = client.get(URL)

    assert page.status_code == 200 and "export=csv" not in page.content.decode()
    assert client.get(URL, {"export": "csv"}).status_code == 403


def test_anonymous_visitors_and_patients_cannot_reach_it(client, checked):
    anonymous = client.get(URL, {"export": "csv"})
    user = User.objects.create_user("patient-user", password="not-used-here-1")
    PatientFactory(user=user)
    client.force_login(user)
    patient = client.get(URL)
    patient_export = client.get(URL, {"export": "csv"})

    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("staff:login"))
    assert patient.status_code == 403 and patient_export.status_code == 403


def test_a_facility_api_client_cannot_reach_it(client, checked):
    issued = api_client_create(facility=checked["short"])
    token = access_token_create(issued)

    response = client.get(URL, {"export": "csv"}, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 302 and response["Location"].startswith(reverse("staff:login"))
    assert checked["short"].nfz_code not in response.content.decode()


def test_the_xlsx_export_has_typed_cells(staff_client, checked):
    """Days as date cells, counts as numbers, compliant as a boolean (not text), in one language."""
    response = staff_client.get(URL, {"export": "xlsx", "include_compliant": "on", "lang": "en"})

    sheet = load_workbook(io.BytesIO(response.content)).active
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert header == [
        "check day",
        "facility code",
        "facility",
        "voivodeship",
        "service code",
        "service",
        "published until",
        "horizon (days)",
        "required (days)",
        "days short",
        "compliant",
    ]
    by_code = {r[1]: dict(zip(header, r, strict=True)) for r in rows}
    short = by_code[checked["short"].nfz_code]
    check = _check(checked["short"])
    # openpyxl reads a date cell back as a datetime at midnight; text would come back as str.
    assert short["check day"] == dt.datetime.combine(timezone.localdate(), dt.time())
    assert short["published until"] == dt.datetime.combine(check.published_until, dt.time())
    assert short["horizon (days)"] == check.published_days and isinstance(short["required (days)"], int)
    assert short["days short"] == 30 - check.published_days
    assert short["compliant"] is False and by_code[checked["good"].nfz_code]["compliant"] is True
    empty = by_code[checked["empty"].nfz_code]
    assert empty["published until"] is None and empty["voivodeship"] == "Lesser Poland"
    cells = {c.column_letter: c for c in next(sheet.iter_rows(min_row=2, max_row=2))}
    assert cells["A"].is_date and cells["A"].number_format == "yyyy-mm-dd"
    assert cells["K"].data_type == "b" and cells["H"].data_type == "n"
