"""Issue 17: a schema an integrator can generate from. Each operation has its own summary and
description (no base class's docstring), every answer documents its headers, and template times are
valid for their schema (not `format: time` with a value RFC 3339 refuses)."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client


@pytest.fixture
def schema(db) -> dict:
    return json.loads(Client().get("/api/schema/?format=json").content)


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_every_operation_has_its_own_summary_and_description(schema):
    descriptions = []
    for path, method, op in _operations(schema):
        assert op.get("summary"), (path, method)
        text = op.get("description", "")
        assert len(text) > 40, (path, method)
        assert "Base class" not in text and "subclasses" not in text, (path, method)
        assert "Scope: `" in text or op["operationId"] in (
            "services_list",
            "reason_codes_list",
            "entitlements_list",
        )
        descriptions.append(text)
    assert len(set(descriptions)) == len(descriptions)


def test_every_answer_documents_its_headers(schema):
    for path, method, op in _operations(schema):
        for status, answer in op["responses"].items():
            headers = answer.get("headers", {})
            assert "X-Request-ID" in headers, (path, method, status)
            if status not in ("401", "403"):
                assert {"RateLimit", "RateLimit-Policy"} <= set(headers), (path, method, status)
            if status == "429":
                assert "Retry-After" in headers, (path, method, status)
    create = schema["paths"]["/api/v1/bookings"]["post"]["responses"]["201"]["headers"]
    assert {"Location", "ETag", "Idempotent-Replayed"} <= set(create)
    detail = schema["paths"]["/api/v1/schedules/{schedule_id}"]["get"]["responses"]
    assert "ETag" in detail["200"]["headers"] and "ETag" in detail["304"]["headers"]


def test_no_field_claims_format_time(schema):
    assert '"format": "time"' not in json.dumps(schema)


def test_template_times_are_answered_as_the_schema_says(api_a, world_a, schema):
    url = f"/api/v1/schedules/{world_a.schedule.pk}"
    body = {
        "templates": [
            {
                "weekday": 0,
                "start_time": "08:00",
                "end_time": "12:00",
                "slot_minutes": 20,
                "valid_from": "2031-01-06",
            }
        ],
        "generate_until": None,
    }
    response = api_a.call("PUT", f"{url}/templates", body, **{"If-Match": "*"})
    assert response.status_code == 200, response.content

    template = api_a.get(url).json()["templates"][0]

    pattern = schema["components"]["schemas"]["TemplateSchema"]["properties"]["start_time"]["pattern"]
    assert template["start_time"] == "08:00" and template["end_time"] == "12:00"
    assert re.fullmatch(pattern, template["start_time"])
