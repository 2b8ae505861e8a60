"""Issue 17: every problem code is catalogued (docs/errors.md equals the registry), answers come in one
language chosen by Accept-Language (Polish by default) with no raw placeholder, `instance` is the
request id, `type` resolves, and the schema lists each operation's codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client

from apps.core.errors import ACTIONS, MESSAGES, api_codes, catalogue_markdown
from tests.factories import ContractFactory, ServiceFactory

ROOT = Path(__file__).resolve().parents[2]
RAISED = re.compile(r"""(?:DomainError\(|problem\(\s*\d{3},\s*|_problem\(\s*\d{3},\s*)\s*["']([a-z_]+)["']""")


def test_docs_errors_md_is_the_registry():
    assert (ROOT / "docs" / "errors.md").read_text() == catalogue_markdown(), (
        "run `make manage ARGS=errors_catalogue`"
    )


def test_every_code_the_code_raises_is_in_the_registry_with_what_to_do():
    raised = set()
    for path in (ROOT / "apps").rglob("*.py"):
        raised |= set(RAISED.findall(path.read_text()))
    assert len(raised) > 40
    assert raised - set(MESSAGES) == set()
    assert set(ACTIONS) == set(MESSAGES)


def test_a_415_is_polish_by_default_and_english_on_request_without_placeholders(api_a, world_a):
    def post(**headers):
        return api_a.client.post(
            "/api/v1/schedules",
            data="service=X",
            content_type="application/x-www-form-urlencoded",
            HTTP_AUTHORIZATION=f"Bearer {api_a.token}",
            **headers,
        ).json()

    polish, english = post(), post(HTTP_ACCEPT_LANGUAGE="en")

    _, pl, en = MESSAGES["unsupported_media_type"]
    assert polish["code"] == english["code"] == "unsupported_media_type"
    assert (polish["title"], polish["detail"]) == (pl, pl)
    assert (english["title"], english["detail"]) == (en, en)
    assert not any("{" in body[key] for body in (polish, english) for key in ("title", "detail"))


def test_a_validation_problem_speaks_one_language(api_a, world_a):
    response = api_a.post(f"/api/v1/bookings/{world_a.booking.pk}/confirm", {"force": True})
    english = api_a.post(
        f"/api/v1/bookings/{world_a.booking.pk}/confirm", {"force": True}, **{"Accept-Language": "en"}
    )

    body = response.json()
    assert body["title"] == MESSAGES["validation_error"][1]
    assert body["detail"].startswith("Zobacz") and body["errors"] == {"force": ["Nieznane pole."]}
    assert english.json()["title"] == "The data is not valid."
    assert english.json()["errors"] == {"force": ["Unknown field."]}


def test_an_authentication_failure_is_in_the_negotiated_language(anonymous, db):
    polish = anonymous.get("/api/v1/services", Authorization="Bearer nope").json()
    english = anonymous.get(
        "/api/v1/services", Authorization="Bearer nope", **{"Accept-Language": "en"}
    ).json()

    assert polish["detail"] == "Token dostępu jest niepoprawny albo wygasł."
    assert english["detail"] == "The access token is invalid or expired."
    assert polish["title"] == MESSAGES["authentication_failed"][1]


def test_instance_is_the_request_id(api_a, world_a):
    response = api_a.get("/api/v1/bookings/999999999", **{"X-Request-ID": "desk-42.retry-1"})

    assert response.status_code == 404
    assert response["X-Request-ID"] == "desk-42.retry-1"
    assert response.json()["instance"] == "desk-42.retry-1"


def test_an_unknown_path_problem_carries_a_generated_request_id(db):
    response = Client().get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.json()["instance"] == response["X-Request-ID"] != ""


def test_a_problem_type_resolves_to_its_catalogue_entry(db):
    body = Client().get("/api/v1/bookings/1").json()  # 401: no token
    entry = Client().get(body["type"].removeprefix("https://cer.nfz.gov.pl"))

    assert entry.status_code == 200
    assert entry.json()["code"] == body["code"] == "not_authenticated"
    assert entry.json()["what_to_do"] == ACTIONS["not_authenticated"]
    assert Client().get("/problems/made_up").status_code == 404


def test_a_rerun_naming_an_existing_external_id_says_it_is_a_duplicate(api_a, facility_a):
    service = ServiceFactory()
    ContractFactory(facility=facility_a, service=service)
    body = {"service": service.code, "external_id": "HIS-SCHED-7"}
    first = api_a.post("/api/v1/schedules", body)

    again = api_a.post("/api/v1/schedules", body, **{"Accept-Language": "en"})

    assert again.status_code == 409
    assert again.json()["code"] == "external_id_taken"
    assert str(first.json()["id"]) in again.json()["detail"]


@pytest.fixture
def schema(db) -> dict:
    return json.loads(Client().get("/api/schema/?format=json").content)


def test_the_schema_lists_each_operations_codes_per_status(schema):
    known = set(api_codes())
    for path, item in schema["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                listed = re.findall(r"\[`([a-z_]+)`\]", answer["description"])
                assert listed, (path, method, status)
                assert set(listed) <= known, (path, method, status)
                assert all(MESSAGES[c][0] == int(status) for c in listed), (path, method, status)
    create = schema["paths"]["/api/v1/bookings"]["post"]["responses"]["409"]["description"]
    assert "`referral_used`" in create and "`outcome_too_early`" not in create
