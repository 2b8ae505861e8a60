"""`GET /api/v1/ping`: the trivial DRF endpoint the benchmarks measure the booking storm against."""

from __future__ import annotations

import json

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext


def test_ping_answers_anyone_without_touching_the_database(db):
    with CaptureQueriesContext(connection) as queries:
        response = Client().get("/api/v1/ping")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}
    assert len(queries) == 0


def test_ping_is_not_part_of_the_published_api_schema(db):
    schema = json.loads(Client().get("/api/schema/?format=json").content)
    assert "/api/v1/ping" not in schema["paths"]
    assert "/api/v1/bookings" in schema["paths"]
