"""The database unreachable (a PostgreSQL restart or failover, issue 15): the API answers 503
problem+json with Retry-After and the pages a 503 page saying to try again shortly, never a 500
(apps/core/middleware.py). The restart itself, under a booking load: tests/chaos/test_faults.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from django.db import connections
from django.test import Client


@pytest.fixture
def database_down(django_db_blocker) -> Iterator[None]:
    """`default` points at a loopback port that is bound but not listening: every connection is
    refused, as while the server restarts."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        configured = connections.settings
        saved_settings, saved_default = configured["default"], connections["default"]
        configured["default"] = {**saved_settings, "HOST": "127.0.0.1", "PORT": str(closed.getsockname()[1])}
        connections["default"] = connections.create_connection("default")
        try:
            with django_db_blocker.unblock():
                yield
        finally:
            connections["default"].close()
            configured["default"] = saved_settings
            connections["default"] = saved_default


@pytest.mark.parametrize("path", ["/api/v1/bookings", "/api/v1/slots?service=MAMMO"])
def test_the_api_answers_503_problem_json_with_retry_after(database_down, path):
    response = Client(raise_request_exception=False, HTTP_AUTHORIZATION="Bearer x").get(path)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"]


@pytest.mark.parametrize("path", ["/", "/facilities/1/"])
def test_pages_answer_503_with_retry_after_in_the_page_language(database_down, path):
    response = Client(raise_request_exception=False).get(path)
    assert response.status_code == 503
    assert response["Retry-After"]
    assert response["Content-Type"].startswith("text/html")
    assert "Spróbuj" in response.content.decode() or "spróbuj" in response.content.decode()
