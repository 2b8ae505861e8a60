"""Credentials: OAuth 2 client credentials, secrets hashed, expiry, rotation, revocation, scopes."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io

import pytest
import time_machine
from django.contrib.auth.hashers import identify_hasher
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application

from apps.core.errors import DomainError
from apps.integration.models import ApiClient
from apps.integration.services import api_client_issue, api_client_revoke, api_client_rotate

from .conftest import Api

TOKEN_URL = "/api/v1/oauth/token/"


def token_request(client_id: str, secret: str, scope: str | None = None):
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    return Client().post(TOKEN_URL, data, HTTP_AUTHORIZATION=f"Basic {basic}")


def test_it_issues_a_token_for_valid_client_credentials_and_the_token_opens_the_api(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)

    response = token_request(issued.client_id, issued.client_secret)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "schedules:read"
    assert Api(body["access_token"]).get("/api/v1/schedules").status_code == 200


def test_the_secret_is_stored_only_as_a_hash_and_tokens_only_as_a_checksum(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    token = token_request(issued.client_id, issued.client_secret).json()["access_token"]

    stored = Application.objects.get(client_id=issued.client_id).client_secret
    assert stored != issued.client_secret
    assert identify_hasher(stored)
    row = AccessToken.objects.get()
    assert token not in (row.token, row.token_checksum)


def test_it_refuses_a_wrong_secret(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)

    response = token_request(issued.client_id, issued.client_secret + "x")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_a_token_never_carries_a_scope_the_client_was_not_granted(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)

    response = token_request(issued.client_id, issued.client_secret, scope="schedules:read bookings:read")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_only_the_client_credentials_grant_is_accepted(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    basic = base64.b64encode(f"{issued.client_id}:{issued.client_secret}".encode()).decode()

    response = Client().post(
        TOKEN_URL,
        {"grant_type": "password", "username": "x", "password": "y"},
        HTTP_AUTHORIZATION=f"Basic {basic}",
    )

    assert response.status_code in (400, 401)
    assert "access_token" not in response.json()


def test_an_expired_client_gets_no_token_and_its_tokens_stop_working(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=1)
    token = token_request(issued.client_id, issued.client_secret).json()["access_token"]

    with time_machine.travel(timezone.now() + dt.timedelta(days=1, minutes=1)):
        AccessToken.objects.update(expires=timezone.now() + dt.timedelta(hours=1))
        assert token_request(issued.client_id, issued.client_secret).status_code == 401
        response = Api(token).get("/api/v1/schedules")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_revocation_stops_tokens_and_token_requests_at_once(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    token = token_request(issued.client_id, issued.client_secret).json()["access_token"]

    api_client_revoke(client_id=issued.client_id)

    assert Api(token).get("/api/v1/schedules").status_code == 401
    assert token_request(issued.client_id, issued.client_secret).status_code == 401
    assert ApiClient.objects.get().revoked_at is not None


def test_rotation_keeps_both_secrets_valid_until_the_old_one_ends(facility_a):
    old = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=60)

    new = api_client_rotate(client_id=old.client_id, overlap=dt.timedelta(days=7))

    assert new.client_secret != old.client_secret
    assert token_request(old.client_id, old.client_secret).status_code == 200
    assert token_request(new.client_id, new.client_secret).status_code == 200
    old_token = token_request(old.client_id, old.client_secret).json()["access_token"]
    assert Api(old_token).get("/api/v1/schedules").status_code == 200  # its principal is now cached
    with time_machine.travel(timezone.now() + dt.timedelta(days=7, minutes=1)):
        AccessToken.objects.update(expires=timezone.now() + dt.timedelta(hours=1))
        assert token_request(old.client_id, old.client_secret).status_code == 401
        assert Api(old_token).get("/api/v1/schedules").status_code == 401
        assert token_request(new.client_id, new.client_secret).status_code == 200


def test_a_revoked_client_cannot_be_rotated(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    api_client_revoke(client_id=issued.client_id)

    with pytest.raises(DomainError, match="revoked or expired"):
        api_client_rotate(client_id=issued.client_id)


def test_unknown_scopes_are_refused_at_issue(facility_a):
    with pytest.raises(DomainError, match="Unknown or empty scopes: admin:all"):
        api_client_issue(facility=facility_a, name="HIS", scopes=["admin:all"], days=30)
    assert not ApiClient.objects.exists()


def test_the_command_prints_the_secret_once_and_stores_only_its_hash(facility_a):
    out = io.StringIO()

    call_command(
        "issue_api_client",
        facility=facility_a.nfz_code,
        scopes="schedules:read,bookings:read",
        days=30,
        stdout=out,
    )

    lines = dict(line.split(":", 1) for line in out.getvalue().splitlines() if line.startswith("client_"))
    client_id, secret = lines["client_id"].strip(), lines["client_secret"].strip()
    assert token_request(client_id, secret).status_code == 200
    assert Application.objects.get(client_id=client_id).client_secret != secret


def test_the_command_rotates_and_revokes(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    out = io.StringIO()

    call_command("issue_api_client", rotate=issued.client_id, stdout=out)
    call_command("issue_api_client", revoke=issued.client_id, stdout=out)

    assert "client_secret:" in out.getvalue()
    assert ApiClient.objects.get().revoked_at is not None


def test_the_command_refuses_an_unknown_facility(db):
    with pytest.raises(CommandError):
        call_command("issue_api_client", facility="99/X/0000", stdout=io.StringIO())


def test_staff_can_issue_rotate_and_revoke_in_the_admin(facility_a, admin_client):
    response = admin_client.post(
        "/admin/integration/apiclient/add/",
        {
            "facility": facility_a.pk,
            "name": "RIS",
            "scopes": "schedules:read,bookings:read",
            "expires_at_0": (timezone.localdate() + dt.timedelta(days=90)).isoformat(),
            "expires_at_1": "12:00:00",
            "credentials-TOTAL_FORMS": "0",
            "credentials-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert response.status_code == 200
    client = ApiClient.objects.get()
    assert "client_secret" in response.content.decode()
    assert client.credentials.count() == 1

    admin_client.post(
        "/admin/integration/apiclient/",
        {"action": "rotate_secret", "_selected_action": [client.pk]},
    )
    assert client.credentials.count() == 2
    admin_client.post("/admin/integration/apiclient/", {"action": "revoke", "_selected_action": [client.pk]})
    client.refresh_from_db()
    assert client.revoked_at is not None


def test_a_known_token_costs_no_database_read_and_revocation_still_applies_at_once(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    api = Api(token_request(issued.client_id, issued.client_secret).json()["access_token"])
    assert api.get("/api/v1/schedules").status_code == 200

    with CaptureQueriesContext(connection) as queries:
        assert api.get("/api/v1/schedules").status_code == 200
    assert not [q for q in queries.captured_queries if "oauth2_provider" in q["sql"]]

    api_client_revoke(client_id=issued.client_id)

    assert api.get("/api/v1/schedules").status_code == 401


def test_scopes_taken_away_in_the_admin_apply_to_a_cached_token_at_once(facility_a, admin_client):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    api = Api(token_request(issued.client_id, issued.client_secret).json()["access_token"])
    assert api.get("/api/v1/schedules").status_code == 200
    client = issued.client

    response = admin_client.post(
        f"/admin/integration/apiclient/{client.pk}/change/",
        {
            "facility": facility_a.pk,
            "name": "HIS",
            "scopes": "bookings:read",
            "expires_at_0": timezone.localtime(client.expires_at).date().isoformat(),
            "expires_at_1": "12:00:00",
            "credentials-TOTAL_FORMS": "1",
            "credentials-INITIAL_FORMS": "1",
            "credentials-0-id": client.credentials.get().pk,
            "credentials-0-client": client.pk,
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert api.get("/api/v1/schedules").status_code == 403


def test_a_cached_principal_that_no_longer_unpickles_falls_back_to_the_database(facility_a):
    from django.core.cache import cache

    from apps.integration.auth import _principal_key

    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    token = token_request(issued.client_id, issued.client_secret).json()["access_token"]
    key = cache.make_and_validate_key(_principal_key(hashlib.sha256(token.encode()).hexdigest()))
    cache._cache.get_client(key, write=True).set(key, b"\\x80\\x05not a pickle")  # as another release left it

    assert Api(token).get("/api/v1/schedules").status_code == 200


def test_a_token_deleted_outside_the_services_stops_working_at_once_though_cached(facility_a):
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    api = Api(token_request(issued.client_id, issued.client_secret).json()["access_token"])
    assert api.get("/api/v1/schedules").status_code == 200  # cached now

    AccessToken.objects.all().delete()  # as DOT's admin or `cleartokens` would

    assert api.get("/api/v1/schedules").status_code == 401


# --- the principal kept in the process (issue 19) ------------------------------------------------


def test_a_principal_is_kept_in_the_process_and_costs_no_database_or_cached_principal_read(facility_a):
    from django.core.cache import cache

    from apps.integration.auth import _principal_key

    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    token = token_request(issued.client_id, issued.client_secret).json()["access_token"]
    api = Api(token)
    assert api.get("/api/v1/schedules").status_code == 200
    cache.delete(_principal_key(hashlib.sha256(token.encode()).hexdigest()))  # not the shared copy either

    from django.test import RequestFactory

    from apps.integration.auth import ApiClientAuthentication

    request = RequestFactory().get("/api/v1/schedules", HTTP_AUTHORIZATION=f"Bearer {token}")
    with CaptureQueriesContext(connection) as queries:
        principal, _ = ApiClientAuthentication().authenticate(request)
    assert principal.client.pk == issued.client.pk
    assert [q["sql"] for q in queries.captured_queries] == []


def test_revocation_in_another_process_reaches_the_copy_in_this_one_at_the_next_request(facility_a):
    """Another web server revokes the client: it changes the rows and bumps the generation in Redis
    (what `api_client_revoke` does there); this process holds the principal in memory and stops
    using it at once."""
    from apps.integration.auth import principal_generation_bump

    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    api = Api(token_request(issued.client_id, issued.client_secret).json()["access_token"])
    assert api.get("/api/v1/schedules").status_code == 200  # in this process's copy now
    with connection.cursor() as cursor:  # the other server's write, which signals nothing here
        cursor.execute(
            "UPDATE integration_apiclient SET revoked_at = now() WHERE id = %s", [issued.client.pk]
        )
    from django.core.cache import cache

    cache.clear()  # nor is the shared copy in Redis of any help
    assert api.get("/api/v1/schedules").status_code == 200  # no bump yet: the copy is still used
    principal_generation_bump()
    assert api.get("/api/v1/schedules").status_code == 401


def test_authentication_and_rate_limit_share_one_round_trip_and_count_once(facility_a, settings):
    from apps.core.cache import redis_client

    settings.CER_API_RATE_LIMIT = 3
    issued = api_client_issue(facility=facility_a, name="HIS", scopes=["schedules:read"], days=30)
    api = Api(token_request(issued.client_id, issued.client_secret).json()["access_token"])
    for key in redis_client().scan_iter(f"cer:api-rate:{issued.client.pk}:*"):
        redis_client().delete(key)
    answers = [api.get("/api/v1/schedules") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]  # each request counted once
    assert [a["RateLimit"].split(";")[1] for a in answers[:3]] == ["r=2", "r=1", "r=0"]
