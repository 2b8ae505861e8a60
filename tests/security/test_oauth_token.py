"""The token endpoint: client credentials only, throttled per client and per address, failures logged
without secrets (issue 15: a facility secret let anyone test staff passwords)."""

from __future__ import annotations

import base64
import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from apps.integration.services import api_client_issue

TOKEN_URL = "/api/v1/oauth/token/"
STAFF_PASSWORD = "correct-horse-battery-staple-42"


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _post(data: dict, client_id: str, secret: str, addr: str = "127.0.0.1"):
    return Client(REMOTE_ADDR=addr).post(TOKEN_URL, data, HTTP_AUTHORIZATION=_basic(client_id, secret))


@pytest.fixture
def issued(facility_a):
    return api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(username="analyst", password=STAFF_PASSWORD, is_staff=True)


def test_the_password_grant_gives_the_same_refusal_for_a_right_and_a_wrong_password(issued, staff_user):
    right = _post(
        {"grant_type": "password", "username": "analyst", "password": STAFF_PASSWORD},
        issued.client_id,
        issued.client_secret,
    )
    wrong = _post(
        {"grant_type": "password", "username": "analyst", "password": "nope"},
        issued.client_id,
        issued.client_secret,
    )

    assert right.status_code == wrong.status_code == 400
    assert right.json() == wrong.json() == {"error": "unsupported_grant_type"}
    assert "access_token" not in right.json()


@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token", "implicit", "urn:x"])
def test_no_other_grant_type_is_served(issued, grant):
    response = _post(
        {"grant_type": grant, "code": "x", "refresh_token": "x"}, issued.client_id, issued.client_secret
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_the_token_url_without_its_slash_answers_rather_than_failing(issued):
    response = Client().post(
        TOKEN_URL.rstrip("/"),
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=_basic(issued.client_id, issued.client_secret),
    )
    assert response.status_code == 200
    assert "access_token" in response.json()


@override_settings(CER_TOKEN_RATE_LIMIT_CLIENT=3, CER_TOKEN_RATE_LIMIT_ADDRESS=1000)
def test_wrong_secrets_for_one_client_are_throttled_whatever_the_address(issued):
    answers = [
        _post(
            {"grant_type": "client_credentials"}, issued.client_id, "wrong", addr=f"127.0.0.{n}"
        ).status_code
        for n in range(1, 6)
    ]
    assert answers[:3] == [401, 401, 401]
    assert answers[3:] == [429, 429]
    refused = _post(
        {"grant_type": "client_credentials"}, issued.client_id, issued.client_secret, addr="127.0.0.9"
    )
    assert refused.status_code == 429  # even the right secret waits: no oracle while throttled
    assert int(refused["Retry-After"]) >= 1
    assert refused.json()["error"] == "slow_down"


@override_settings(CER_TOKEN_RATE_LIMIT_CLIENT=1000, CER_TOKEN_RATE_LIMIT_ADDRESS=3)
def test_one_address_trying_many_clients_is_throttled(issued, facility_b):
    others = [
        api_client_issue(facility=facility_b, name=f"HIS {n}", scopes=["schedules:read"], days=30)
        for n in range(5)
    ]
    answers = [
        _post({"grant_type": "client_credentials"}, o.client_id, "wrong", addr="127.0.0.7").status_code
        for o in others
    ]
    assert answers == [401, 401, 401, 429, 429]
    # another address is not affected
    assert (
        _post(
            {"grant_type": "client_credentials"}, issued.client_id, issued.client_secret, addr="127.0.0.8"
        ).status_code
        == 200
    )


@override_settings(CER_TOKEN_RATE_LIMIT_CLIENT=1000, CER_TOKEN_RATE_LIMIT_ADDRESS=1000)
def test_a_failed_token_request_is_logged_without_the_secret_or_password(issued, staff_user, caplog):
    with caplog.at_level(logging.INFO, logger="cer.security"):
        _post({"grant_type": "client_credentials"}, issued.client_id, "WRONG-SECRET-abc123", addr="127.0.0.5")
        _post(
            {"grant_type": "password", "username": "analyst", "password": STAFF_PASSWORD},
            issued.client_id,
            issued.client_secret,
            addr="127.0.0.5",
        )

    records = [r for r in caplog.records if r.name == "cer.security"]
    assert len(records) == 2
    text = " ".join(r.getMessage() for r in records)
    assert issued.client_id in text and "127.0.0.5" in text
    assert "invalid_client" in text and "unsupported_grant_type" in text
    for secret in ("WRONG-SECRET-abc123", issued.client_secret, STAFF_PASSWORD):
        assert secret not in text


def test_a_leaked_secret_can_be_rotated_without_overlap(issued):
    import io

    from django.core.management import call_command

    call_command("issue_api_client", rotate=issued.client_id, overlap_hours=0, stdout=io.StringIO())
    old = _post({"grant_type": "client_credentials"}, issued.client_id, issued.client_secret)
    assert old.status_code == 401
