"""Impossible visit dates are refused at import (file and API) with the row and column; files that
cannot be read as a whole are refused whole, nothing imported; a month that has not ended cannot be
closed."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from apps.core.errors import DomainError
from apps.reconciliation.models import ImportBatch, ReconciliationRun, ReportedVisit, SettlementPolicy
from apps.reconciliation.services import run_create, visits_import
from tests.factories import ServiceFactory
from tests.reconciliation.conftest import reconcile

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("settlement_clock")]

HEADER = "pesel,facility_code,service_code,visit_at,emergency,visit_id\n"


def rows_csv(facility, service, patient, *visit_ats: str) -> bytes:
    lines = [
        f"{patient.pesel},{facility.nfz_code},{service.code},{at},0,D-{n}\n" for n, at in enumerate(visit_ats)
    ]
    return (HEADER + "".join(lines)).encode()


def test_impossible_visit_dates_are_refused_with_row_and_column(facility_a, cardiology, patient):
    future = (timezone.localtime() + dt.timedelta(days=60)).strftime("%Y-%m-%dT%H:%M")
    content = rows_csv(
        facility_a,
        cardiology,
        patient,
        "2026-07-14T09:05",  # fine
        future,  # the 2027-02-15: in the future
        "9999-12-31T23:59",
        "1900-01-01T08:00",  # older than the settlement window
        "0001-01-01T00:00:00",  # a clinic system's empty date: stored as 1 BC before
        "2026-02-30T10:00",  # not a real date
    )

    batch = visits_import(file=content, source="file")

    assert (batch.rows_imported, batch.rows_rejected) == (1, 5)
    assert [(e["line"], e["column"]) for e in batch.errors] == [(n, "visit_at") for n in range(3, 8)]
    reasons = [e["reason"] for e in batch.errors]
    assert reasons[0] == reasons[1] == "visit date in the future"
    assert reasons[2].startswith("visit date older than the settlement window (730 days)")
    assert reasons[3].startswith("bad visit date") and reasons[4].startswith("bad visit date")
    # What was stored can be read back.
    assert [v.facility_visit_id for v in ReportedVisit.objects.all()] == ["D-0"]


def test_the_settlement_window_is_data(facility_a, cardiology, patient):
    SettlementPolicy.objects.update_or_create(pk=1, defaults={"settlement_window_days": 30})
    old = (timezone.localtime() - dt.timedelta(days=45)).strftime("%Y-%m-%dT%H:%M")

    batch = visits_import(file=rows_csv(facility_a, cardiology, patient, old), source="file")

    assert batch.rows_rejected == 1 and "(30 days)" in batch.errors[0]["reason"]


def test_a_visit_from_before_the_service_joined_cer_keeps_its_verdict(facility_a, patient):
    endocrinology = ServiceFactory(endocrinology=True)  # covered from 2026-08-01
    batch = visits_import(
        file=rows_csv(facility_a, endocrinology, patient, "2026-07-14T09:05"), source="file"
    )

    assert batch.rows_imported == 1
    run = reconcile()
    assert run.verdicts.get().reason == "service_not_in_scope"


def test_a_month_that_has_not_ended_cannot_be_closed():
    this_month = timezone.localdate().replace(day=1)

    for scope, start in (("month", this_month), ("day", timezone.localdate())):
        with pytest.raises(DomainError) as refused:
            run_create(scope=scope, period_start=start)
        assert refused.value.code == "reconciliation_period_open"
        assert refused.value.status == 409
    assert not ReconciliationRun.objects.exists()
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    assert run_create(scope="day", period_start=yesterday).period_start == yesterday


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (HEADER.encode(), "header but no visits"),
        (b"[]", "no visits"),
        (
            b"pesel,facility_code,service_code,visit_at,emergancy,visit_id\n1,2,3,4,5,6\n",
            "unknown columns: 'emergancy'",
        ),
    ],
)
def test_files_that_cannot_be_read_whole_are_refused_and_nothing_imported(content, reason):
    with pytest.raises(DomainError) as refused:
        visits_import(file=content, source="file")

    assert refused.value.code == "import_unreadable"
    assert reason in refused.value.message_in("en"), refused.value.message_in("en")
    assert not ImportBatch.objects.exists() and not ReportedVisit.objects.exists()


def test_an_unclosed_quote_refuses_the_file_naming_its_line(facility_a, cardiology, patient):
    content = (
        HEADER
        + f'{patient.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-14T09:05,0,"Q-1\n'
        + f"{patient.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-14T10:05,0,Q-2\n"
        + f"{patient.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-14T11:05,0,Q-3\n"
    ).encode()

    with pytest.raises(DomainError) as refused:
        visits_import(file=content, source="file")

    assert "line 2" in refused.value.message_in("en")
    assert not ReportedVisit.objects.exists()


def test_json_rows_that_are_not_objects_or_misspell_a_field_are_reported_as_such(
    facility_a, cardiology, patient
):
    good = {
        "pesel": patient.pesel,
        "facility_code": facility_a.nfz_code,
        "service_code": cardiology.code,
        "visit_at": "2026-07-14T09:05",
        "visit_id": "J-1",
    }
    rows = [good, "not an object", [1, 2], {**good, "visit_id": "J-2", "emergancy": True}, None]

    batch = visits_import(file=json.dumps(rows).encode(), source="file")

    assert batch.rows_imported == 1
    errors = {e["line"]: e for e in batch.errors}
    assert sorted(errors) == [2, 3, 4, 5]
    assert all("not an object" in errors[n]["reason"] for n in (2, 3, 5))
    assert not any("PESEL" in e["reason"] for e in batch.errors)
    assert (errors[4]["column"], errors[4]["reason"]) == ("emergancy", "unknown field 'emergancy'")


def test_each_row_error_names_its_column(facility_a, cardiology, patient):
    content = (
        HEADER
        + f"12345678901,{facility_a.nfz_code},{cardiology.code},2026-07-14T09:05,0,C-1\n"
        + f"{patient.pesel},NOPE,{cardiology.code},2026-07-14T09:05,0,C-2\n"
        + f"{patient.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-14T09:05,maybe,C-3\n"
        + f"{patient.pesel},{facility_a.nfz_code},{cardiology.code},2026-07-14T09:05,0,C-4,extra\n"
    ).encode()

    batch = visits_import(file=content, source="file")

    assert [(e["line"], e["column"]) for e in batch.errors] == [
        (2, "pesel"),
        (3, "facility_code"),
        (4, "emergency"),
        (5, ""),
    ]
    assert batch.errors[3]["reason"] == "more values than columns in the header"
