"""The authorisation matrix, generated from the live OpenAPI schema (issue 15): every operation the
schema publishes is called by each persona, and a new operation without an entry in the matrix
(`ENDPOINTS` of test_authorization.py, which also holds the expired and revoked cases) fails here.

Personas: no token (401), a token of the facility without the operation's scope (403), another
facility's token (404 for an object of facility A, nothing of A in a list, nothing created in A),
and a token holding only the scope the schema documents for the operation (2xx: least privilege is
enough). The scope in the matrix must be the one the schema documents.
"""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from apps.integration.models import WebhookSubscription
from apps.outbox.models import OutboxEvent
from apps.reconciliation.models import ReportedVisit
from apps.scheduling.models import Schedule
from tests.factories.integration import access_token_create, api_client_create

from .conftest import Api
from .test_authorization import ENDPOINTS, FACILITY_LISTS, Endpoint, _call, _is_problem, extras  # noqa: F401

ALL_SCOPES = sorted({e.scope for e in ENDPOINTS.values() if e.scope})


def _schema_operations() -> list[tuple[str, str, str]]:
    """(METHOD, path template, the scope the schema documents or "") of every published operation."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for path, items in schema["paths"].items():
        for method, operation in items.items():
            scopes = [
                s for requirement in operation.get("security", []) for s in requirement.get("oauth2", [])
            ]
            assert len(scopes) <= 1, (method, path, scopes)
            operations.append((method.upper(), path, scopes[0] if scopes else ""))
    return sorted(operations)


OPERATIONS = _schema_operations()


def _entry(method: str, path: str, world, extras_) -> tuple[str, Endpoint]:
    pattern = re.compile("^" + "[^/]+".join(re.escape(part) for part in re.split(r"\{[^/]+?\}", path)) + "$")
    found = [
        (name, e)
        for name, e in ENDPOINTS.items()
        if e.method == method and pattern.match(e.url(world, extras_))
    ]
    assert found, f"{method} {path} is in the schema but has no entry in the authorisation matrix (ENDPOINTS)"
    assert len(found) == 1, found
    return found[0]


def test_the_schema_publishes_operations_and_every_entry_is_one_of_them():
    assert len(OPERATIONS) >= 30
    assert len(ENDPOINTS) == len(OPERATIONS)  # no entry for an operation the schema no longer has


@pytest.mark.parametrize(("method", "path", "scope"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_every_persona_gets_the_expected_answer(method, path, scope, world_a, extras, anonymous, api_b):  # noqa: F811
    """GIVEN one operation of the live schema and its entry in the matrix
    WHEN no token, a token without its scope, a token with only its documented scope and another
         facility's token call it
    THEN 401, 403, success, and nothing of facility A (404 for its objects, none in lists, no change)."""
    name, endpoint = _entry(method, path, world_a, extras)
    assert endpoint.scope == scope, (
        f"{name}: the matrix expects {endpoint.scope!r}, the schema says {scope!r}"
    )
    events = OutboxEvent.objects.count()

    _is_problem(_call(anonymous, endpoint, world_a, extras), 401)

    if scope:
        without = [s for s in ALL_SCOPES if s != scope]
        refused = _call(
            Api(access_token_create(api_client_create(facility=world_a.facility, scopes=without))),
            endpoint,
            world_a,
            extras,
        )
        _is_problem(refused, 403)
        assert scope in refused.json()["detail"]
    assert OutboxEvent.objects.count() == events  # refusals change nothing

    # Exactly the documented scope; an operation open to any credentials gets the least useful one.
    issued = api_client_create(facility=world_a.facility, scopes=[scope or "changes:read"])
    allowed = _call(Api(access_token_create(issued)), endpoint, world_a, extras)
    assert allowed.status_code in (200, 201, 202, 204), (name, allowed.content[:400])

    def facility_a_rows() -> tuple[int, ...]:
        return (
            OutboxEvent.objects.filter(facility=world_a.facility).count(),
            Schedule.objects.filter(facility=world_a.facility).count(),
            ReportedVisit.objects.filter(facility=world_a.facility).count(),
            WebhookSubscription.objects.filter(facility=world_a.facility).count(),
        )

    before = facility_a_rows()
    other = _call(api_b, endpoint, world_a, extras)
    if endpoint.per_object:
        _is_problem(other, 404)
    elif method == "GET":
        assert other.status_code == 200
        rows = other.json()["results"] if isinstance(other.json(), dict) else other.json()
        if name in FACILITY_LISTS:
            assert rows == [], name
        assert world_a.patient.pesel not in other.content.decode()
    assert facility_a_rows() == before  # whatever another facility does, nothing of A changes
