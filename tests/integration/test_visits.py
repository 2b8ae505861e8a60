"""Visits reported for settlement over the API (POST/GET /api/v1/visits): row-by-row validation,
idempotent re-posts, facility scoping, the batch limit and reading verdicts back."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from apps.integration.apis.visits import MAX_VISITS_PER_REQUEST
from apps.reconciliation.models import ImportBatch, ReconciliationRun, ReportedVisit, Verdict
from apps.reconciliation.services import run_create, run_execute, verdict_override
from tests.factories import PatientFactory
from tests.factories.integration import access_token_create, api_client_create

from .conftest import Api

URL = "/api/v1/visits"


@pytest.fixture
def patients(db):
    return [PatientFactory(), PatientFactory()]


def row(patient, visit_id: str, *, service: str = "KARDIO_1", at: str = "2026-07-14T09:20:00+02:00", **extra):
    return {"visit_id": visit_id, "pesel": patient.pesel, "service_code": service, "visit_at": at, **extra}


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:400]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    return body


def test_it_records_the_posted_visits_for_the_callers_facility(api_a, facility_a, cardiology, patients):
    response = api_a.post(
        URL,
        {
            "visits": [
                row(patients[0], "V-1"),
                row(patients[1], "V-2", at="2026-07-15T10:00", emergency=True),
            ]
        },
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "batch_id": body["batch_id"],
        "received": 2,
        "recorded": 2,
        "duplicates": 0,
        "corrected": 0,
        "rejected": 0,
        "errors": [],
        "errors_truncated": False,
    }
    batch = ImportBatch.objects.get(pk=body["batch_id"])
    assert batch.source == ImportBatch.Source.API and batch.uploaded_by is None
    visits = {v.facility_visit_id: v for v in ReportedVisit.objects.all()}
    assert set(visits) == {"V-1", "V-2"}
    assert {v.facility_id for v in visits.values()} == {facility_a.pk}
    assert visits["V-1"].patient == patients[0] and visits["V-1"].service == cardiology
    assert visits["V-1"].emergency is False and visits["V-2"].emergency is True
    # Without an offset the time is Polish wall-clock time (CEST in July).
    assert visits["V-2"].visit_at == dt.datetime(2026, 7, 15, 8, 0, tzinfo=dt.UTC)
    assert (visits["V-1"].batch_id, visits["V-1"].source_row) == (batch.pk, 1)


def test_posting_the_same_visits_again_changes_nothing(api_a, cardiology, patients):
    first = [row(patients[0], "V-1"), row(patients[1], "V-2")]
    api_a.post(URL, {"visits": first})
    before = list(ReportedVisit.objects.values_list("id", "facility_visit_id", "visit_at", "patient_pesel"))

    # The same ids again, one of them with changed content but no correction_reason: the first report
    # stands and the changed row is rejected (not silently counted as already reported).
    again = api_a.post(
        URL,
        {"visits": [row(patients[0], "V-1"), row(patients[0], "V-2", at="2026-07-20T12:00:00+02:00")]},
        **{"Accept-Language": "en"},
    )

    assert again.status_code == 200
    assert again.json() | {"batch_id": 0} == {
        "batch_id": 0,
        "received": 2,
        "recorded": 0,
        "duplicates": 1,
        "corrected": 0,
        "rejected": 1,
        "errors": [
            {
                "index": 1,
                "visit_id": "V-2",
                "field": "correction_reason",
                "reason": "visit_id already reported with other data: give a correction_reason to correct it",
            }
        ],
        "errors_truncated": False,
    }
    after = list(ReportedVisit.objects.values_list("id", "facility_visit_id", "visit_at", "patient_pesel"))
    assert after == before


def test_a_retry_with_the_same_idempotency_key_replays_the_first_answer(api_a, cardiology, patients):
    body = {"visits": [row(patients[0], "V-1")]}

    first = api_a.post(URL, body, **{"Idempotency-Key": "visits-2026-07-14"})
    retry = api_a.post(URL, body, **{"Idempotency-Key": "visits-2026-07-14"})

    assert retry.status_code == 200 and retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert ImportBatch.objects.count() == 1 and ReportedVisit.objects.count() == 1


def test_bad_rows_are_reported_by_index_and_the_valid_ones_kept(api_a, cardiology, patients):
    bad_pesel = patients[0].pesel[:-1] + str((int(patients[0].pesel[-1]) + 1) % 10)
    rows = [
        row(patients[0], "OK-1"),
        {**row(patients[0], "BAD-PESEL"), "pesel": bad_pesel},
        row(patients[0], "BAD-SERVICE", service="NO_SUCH"),
        row(patients[0], "BAD-DATE", at="14.07.2026"),
        {**row(patients[0], "x"), "visit_id": ""},
        row(patients[0], "BAD-FLAG", emergency="maybe"),
        {k: v for k, v in row(patients[0], "NO-PESEL").items() if k != "pesel"},
        row(patients[1], "OK-2", emergency="tak"),
    ]

    response = api_a.post(URL, {"visits": rows}, **{"Accept-Language": "en"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["received"], body["recorded"], body["duplicates"], body["rejected"]) == (8, 2, 0, 6)
    by_index = {e["index"]: e for e in body["errors"]}
    assert sorted(by_index) == [1, 2, 3, 4, 5, 6]
    assert by_index[1]["visit_id"] == "BAD-PESEL" and by_index[1]["reason"].startswith("invalid PESEL")
    assert "unknown service code" in by_index[2]["reason"]
    assert "bad visit date" in by_index[3]["reason"]
    assert by_index[4]["visit_id"] == "" and "visit_id" in by_index[4]["reason"]
    assert "emergency" in by_index[5]["reason"]
    assert by_index[6]["reason"].startswith("invalid PESEL")
    assert bad_pesel not in response.content.decode()  # reasons never quote a PESEL
    assert set(ReportedVisit.objects.values_list("facility_visit_id", flat=True)) == {"OK-1", "OK-2"}
    assert ReportedVisit.objects.get(facility_visit_id="OK-2").emergency is True


def test_row_reasons_are_in_the_answers_one_language_polish_by_default(api_a, cardiology, patients):
    bad_pesel = patients[0].pesel[:-1] + str((int(patients[0].pesel[-1]) + 1) % 10)
    rows = [
        {**row(patients[0], "BAD-PESEL"), "pesel": bad_pesel},
        row(patients[0], "BAD-SVC", service="NOPE"),
    ]

    polish = api_a.post(URL, {"visits": rows}).json()["errors"]
    english = api_a.post(URL, {"visits": rows}, **{"Accept-Language": "en"}).json()["errors"]

    assert [e["field"] for e in polish] == [e["field"] for e in english] == ["pesel", "service_code"]
    assert polish[0]["reason"] == "niepoprawny PESEL: błędna cyfra kontrolna"  # no English inside
    assert english[0]["reason"] == "invalid PESEL: wrong check digit"
    assert "NOPE" in polish[1]["reason"] and "unknown" not in polish[1]["reason"]
    assert english[1]["reason"].startswith("unknown service code")


def test_only_the_first_thousand_errors_are_listed(api_a, cardiology, patients):
    rows = [row(patients[0], f"B-{n}", service="NO_SUCH") for n in range(1001)]

    body = api_a.post(URL, {"visits": rows}).json()

    assert body["rejected"] == 1001 and len(body["errors"]) == 1000 and body["errors_truncated"] is True


@pytest.mark.parametrize(
    ("visits", "field"),
    [
        (
            [
                {
                    "visit_id": "V-1",
                    "pesel": "44051401359",
                    "service_code": "KARDIO_1",
                    "visit_at": "x",
                    "note": 1,
                }
            ],
            "0",
        ),
        (["not an object"], "0"),
        ([{"visit_id": "V-1", "pesel": "1", "service_code": "K", "visit_at": "x", "facility_code": 5}], "0"),
        ([], "visits"),
        ("V-1", "visits"),
    ],
)
def test_a_request_of_the_wrong_shape_is_refused_whole(api_a, cardiology, visits, field):
    response = api_a.post(URL, {"visits": visits})

    body = _problem(response, 400, "validation_error")
    errors = body["errors"]["visits"] if field != "visits" else body["errors"]
    assert field in errors
    assert not ReportedVisit.objects.exists() and not ImportBatch.objects.exists()


def test_unknown_top_level_fields_and_a_bare_list_are_refused(api_a, cardiology, patients):
    _problem(api_a.post(URL, {"visits": [row(patients[0], "V-1")], "rows": []}), 400, "validation_error")
    _problem(api_a.post(URL, [row(patients[0], "V-1")]), 400, "validation_error")
    # Text that is valid JSON but not storable (a lone surrogate, NUL) is refused by the parser, not a 500.
    _problem(api_a.post(URL, '{"visits": [{"\\ud800": 1}]}'), 400, "malformed_request")
    _problem(api_a.post(URL, '{"\\ud800": 1, "visits": []}'), 400, "malformed_request")
    for text in ("V-1\\u0000", "K\\ud800"):
        _problem(api_a.post(URL, '{"visits": [{"visit_id": "' + text + '"}]}'), 400, "malformed_request")
    assert not ReportedVisit.objects.exists()


def test_visits_naming_another_facility_are_refused_and_nothing_is_recorded(
    api_a, facility_a, facility_b, cardiology, patients
):
    mixed = [row(patients[0], "V-1"), row(patients[1], "V-2", facility_code=facility_b.nfz_code)]

    in_a_row = api_a.post(URL, {"visits": mixed})
    in_the_body = api_a.post(URL, {"facility": facility_b.nfz_code, "visits": [row(patients[0], "V-1")]})

    for response in (in_a_row, in_the_body):
        body = _problem(response, 403, "facility_forbidden")
        assert facility_a.nfz_code in body["detail"]
    assert not ReportedVisit.objects.exists() and not ImportBatch.objects.exists()


def test_naming_the_own_facility_is_accepted(api_a, facility_a, cardiology, patients):
    response = api_a.post(
        URL,
        {
            "facility": facility_a.nfz_code,
            "visits": [row(patients[0], "V-1", facility_code=facility_a.nfz_code)],
        },
    )

    assert response.status_code == 200 and response.json()["recorded"] == 1


def test_visit_ids_are_per_facility(api_a, api_b, facility_a, facility_b, cardiology, patients):
    api_a.post(URL, {"visits": [row(patients[0], "V-1")]})

    response = api_b.post(URL, {"visits": [row(patients[1], "V-1")]})

    assert response.json()["recorded"] == 1
    assert dict(ReportedVisit.objects.values_list("facility_id", "patient_id")) == {
        facility_a.pk: patients[0].pk,
        facility_b.pk: patients[1].pk,
    }


def test_without_the_visits_scope_it_is_403(facility_a, cardiology, patients):
    issued = api_client_create(facility=facility_a, scopes=["bookings:read", "bookings:write"])
    api = Api(access_token_create(issued))

    posted = api.post(URL, {"visits": [row(patients[0], "V-1")]})
    listed = api.get(URL)

    assert "visits:write" in _problem(posted, 403, "forbidden")["detail"]
    _problem(listed, 403, "forbidden")
    assert not ReportedVisit.objects.exists()


def test_without_credentials_it_is_401(anonymous, cardiology, patients):
    response = anonymous.post(URL, {"visits": [row(patients[0], "V-1")]})

    _problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    _problem(anonymous.get(URL), 401, "not_authenticated")
    assert not ReportedVisit.objects.exists()


def test_a_batch_over_the_limit_is_413_and_records_nothing(api_a, cardiology, patients):
    one = row(patients[0], "V")
    rows = [{**one, "visit_id": f"V-{n}"} for n in range(MAX_VISITS_PER_REQUEST + 1)]

    response = api_a.post(URL, json.dumps({"visits": rows}))

    body = _problem(response, 413, "visits_batch_too_large")
    assert str(MAX_VISITS_PER_REQUEST) in body["detail"]
    assert not ReportedVisit.objects.exists() and not ImportBatch.objects.exists()


def test_a_full_batch_is_accepted(api_a, cardiology, patients):
    one = row(patients[0], "V")
    rows = [{**one, "visit_id": f"V-{n}"} for n in range(MAX_VISITS_PER_REQUEST)]

    response = api_a.post(URL, json.dumps({"visits": rows}))

    assert response.status_code == 200 and response.json()["recorded"] == MAX_VISITS_PER_REQUEST


# --- GET /visits ----------------------------------------------------------------------------------


def test_the_list_shows_own_visits_with_their_latest_finished_verdict(
    api_a, api_b, facility_a, django_user_model, cardiology, patients
):
    analyst = django_user_model.objects.create_user("analyst", password="not-used-here-1")
    api_a.post(
        URL,
        {
            "visits": [
                row(patients[0], "V-2", at="2026-07-20T09:00:00+02:00"),
                row(patients[1], "V-1", at="2026-07-14T09:00:00+02:00", emergency=True),
            ]
        },
    )
    api_b.post(URL, {"visits": [row(patients[0], "B-1")]})

    before = api_a.get(URL).json()
    run = run_execute(
        run_id=run_create(scope=ReconciliationRun.Scope.MONTH, period_start=dt.date(2026, 7, 1)).pk
    )
    verdict = Verdict.objects.get(run=run, visit__facility_visit_id="V-2")
    verdict_override(
        verdict=verdict, new_eligible=not verdict.final_eligible, user=analyst, justification="checked"
    )
    # A later run still in progress does not count yet (its overrides are applied at its end).
    running = ReconciliationRun.objects.create(
        scope="day", period_start="2026-07-14", period_end="2026-07-15", rule_version="x", state="running"
    )
    v1_visit = ReportedVisit.objects.get(facility_visit_id="V-1")
    Verdict.objects.create(
        run=running,
        period_start=dt.date(2026, 7, 14),
        visit=v1_visit,
        facility_id=v1_visit.facility_id,
        service_id=v1_visit.service_id,
        visit_at=v1_visit.visit_at,
        eligible=False,
        reason="no_registration",
        rule_version="x",
        final_eligible=False,
    )
    after = api_a.get(URL).json()

    assert [v["visit_id"] for v in before["results"]] == ["V-1", "V-2"]
    assert [v["verdict"] for v in before["results"]] == [None, None]
    assert before["next"] is None
    v1, v2 = after["results"]
    assert v1["emergency"] is True and v1["service"] == "KARDIO_1"
    assert v1["verdict"]["run_id"] == run.pk
    assert v1["verdict"]["reason"] == "emergency" and v1["verdict"]["final_eligible"] is True
    assert v2["verdict"]["overridden"] is True
    assert v2["verdict"]["final_eligible"] is (not v2["verdict"]["eligible"])
    assert v2["verdict"]["rule_version"] == verdict.rule_version
    assert patients[0].pesel not in json.dumps(after)


def test_the_list_filters_by_visit_date_and_pages_with_a_cursor(api_a, api_b, cardiology, patients):
    api_a.post(
        URL,
        {
            "visits": [
                row(patients[0], f"V-{day}", at=f"2026-07-{day:02d}T23:30:00+02:00") for day in range(1, 8)
            ]
        },
    )

    window = api_a.get(f"{URL}?date_from=2026-07-02&date_to=2026-07-05&limit=3").json()
    rest = api_a.get(f"{URL}?date_from=2026-07-02&date_to=2026-07-05&limit=3&cursor={window['next']}").json()
    other = api_b.get(URL).json()

    assert [v["visit_id"] for v in window["results"]] == ["V-2", "V-3", "V-4"]
    assert [v["visit_id"] for v in rest["results"]] == ["V-5"] and rest["next"] is None
    assert other == {"results": [], "next": None}
    _problem(api_a.get(f"{URL}?cursor=garbage"), 400, "invalid_cursor")


def test_impossible_visit_dates_are_refused_per_row_like_a_file(api_a, cardiology, patients):
    rows = [
        row(patients[0], "F-1", at="9999-01-01T10:00:00+01:00"),
        row(patients[0], "F-2", at="0001-01-01T00:00:00"),
        row(patients[0], "F-3", at="1900-01-01T08:00:00"),
        row(patients[1], "OK"),
    ]

    response = api_a.post(URL, {"visits": rows}, **{"Accept-Language": "en"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["recorded"], body["rejected"]) == (1, 3)
    reasons = [e["reason"] for e in body["errors"]]
    assert reasons[0] == "visit date in the future" and reasons[1].startswith("bad visit date")
    assert reasons[2].startswith("visit date older than the settlement window")
    assert list(ReportedVisit.objects.values_list("facility_visit_id", flat=True)) == ["OK"]


def test_a_visit_is_corrected_or_withdrawn_over_the_api_with_a_reason(api_a, cardiology, patients):
    from apps.reconciliation.models import VisitVersion

    assert api_a.post(URL, {"visits": [row(patients[0], "C-1")]}).json()["recorded"] == 1
    moved = row(patients[0], "C-1", at="2026-07-15T09:20:00+02:00")

    refused = api_a.post(URL, {"visits": [moved]}).json()
    corrected = api_a.post(URL, {"visits": [{**moved, "correction_reason": "wrong day"}]}).json()
    withdrawn = api_a.post(
        URL, {"visits": [{**moved, "correction_reason": "not our patient", "withdrawn": True}]}
    ).json()

    assert (refused["rejected"], refused["corrected"]) == (1, 0)
    assert "correction_reason" in refused["errors"][0]["reason"]
    assert (corrected["corrected"], withdrawn["corrected"]) == (1, 1)
    visit = ReportedVisit.objects.get(facility_visit_id="C-1")
    assert (visit.version, visit.withdrawn, visit.correction_reason) == (3, True, "not our patient")
    listed = api_a.get(URL).json()["results"][0]
    assert (listed["version"], listed["withdrawn"], listed["correction_reason"]) == (
        3,
        True,
        "not our patient",
    )
    assert sorted(VisitVersion.objects.values_list("version", flat=True)) == [1, 2]
