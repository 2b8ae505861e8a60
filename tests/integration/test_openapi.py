"""The OpenAPI schema: valid for an independent validator, complete, and true to the running API."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, seed, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from tests.factories.integration import access_token_create, api_client_create


@pytest.fixture
def schema_json(db) -> dict:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_schema_validates_with_openapi_spec_validator(schema_json):
    validate(schema_json)


def test_every_operation_declares_oauth2_scope_errors_and_problem_responses(schema_json):
    scheme = schema_json["components"]["securitySchemes"]["oauth2"]
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "/api/v1/oauth/token/"
    operations = [
        (path, method, op)
        for path, item in schema_json["paths"].items()
        for method, op in item.items()
        if path.startswith("/api/v1/")
    ]
    assert len(operations) >= 27
    for path, method, op in operations:
        assert "oauth2" in op["security"][0], (path, method)
        assert {"401", "429"} <= set(op["responses"]), (path, method)
        problem = op["responses"]["401"]["content"]
        assert "application/problem+json" in problem or "application/json" in problem
        if method in ("post", "put", "patch"):
            assert any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])), (path, method)


def test_swagger_ui_and_redoc_are_served(db):
    assert Client().get("/api/docs/").status_code == 200
    assert Client().get("/api/redoc/").status_code == 200


API = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def demo_token(world_a, issued_a):
    """A demo client's token; the raw WSGI app must not close the test's connection between calls
    (Django's own test client disconnects the same signal handlers)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield access_token_create(issued_a)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@API.parametrize()
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_api_matches_its_schema_and_never_fails_with_5xx(case, demo_token):
    _call_and_validate(case, demo_token)


# Issue 17: no failure with a second seed either (other generated inputs, same short budget).
@API.parametrize()
@seed(20261201)
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_matches_its_schema_with_a_second_seed(case, demo_token):
    _call_and_validate(case, demo_token)


def _call_and_validate(case, token: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[
            not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
            status_code_conformance,
        ],
    )


__all__ = ["api_client_create"]
