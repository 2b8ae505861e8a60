"""Headers on every page, API docs' assets from the project, the changes feed's own scope, and the
least patient data in API answers (issue 15)."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from tests.factories import PatientFactory
from tests.factories.integration import access_token_create

PAGES = ["/", "/login/", "/staff/login/", "/admin/login/", "/api/docs/", "/api/redoc/", "/no-such-page/"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_a_csp_without_inline_scripts_and_the_other_headers(path):
    response = Client().get(path)
    csp = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert "Permissions-Policy" in response
    # ...and the page itself has no inline script that the policy would block.
    html = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path


@pytest.mark.django_db
def test_api_answers_have_a_deny_all_csp(api_a):
    assert api_a.get("/api/v1/services")["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_load_their_assets_from_the_project_not_a_cdn(path):
    html = Client().get(path).content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))', html)
    assert assets
    for url in assets:
        assert url.startswith("/static/drf_spectacular_sidecar/"), url
        assert finders.find(url.removeprefix("/static/")), url
    assert "cdn.jsdelivr.net" not in html and "@latest" not in html


@pytest.mark.django_db
def test_the_swagger_script_is_served_separately(db):
    response = Client().get("/api/docs/?script=")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")


def test_the_changes_feed_needs_its_own_read_scope(world_a, issued_a):
    without = access_token_create(issued_a, scopes=["schedules:read", "bookings:read"])
    with_scope = access_token_create(issued_a, scopes=["changes:read"])
    from tests.integration.conftest import Api

    refused = Api(without).get("/api/v1/changes")
    assert refused.status_code == 403
    assert "changes:read" in refused.json()["detail"]
    assert Api(with_scope).get("/api/v1/changes").status_code == 200


def test_booking_answers_carry_no_contact_data(world_a, api_a):
    patient = PatientFactory(phone="+48500999888", email="someone@example.org")
    created = api_a.post(
        "/api/v1/bookings", {"slot_id": world_a.free_slots[0].pk, "pesel": patient.pesel, "channel": "desk"}
    )
    assert created.status_code == 201, created.content
    listed = api_a.get("/api/v1/bookings")
    detail = api_a.get(f"/api/v1/bookings/{created.json()['id']}")
    for response in (created, listed, detail):
        text = response.content.decode()
        assert "+48500999888" not in text and "someone@example.org" not in text
    assert set(created.json()["patient"]) == {"pesel", "first_name", "last_name"}
