"""The in-process booking profile's plumbing (no timings): requests handed to the WSGI application as
a server would, headers included, and the steps it times wrapped without changing their answers."""

from __future__ import annotations

import json

import pytest
from django.core.wsgi import get_wsgi_application

from bench.profile_booking import PHASES, _environ, _time_phases, call


@pytest.fixture
def connections_kept():
    """The test's connection (and its transaction) survive the requests, as under Django's test client."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
def test_a_request_goes_through_the_wsgi_application_with_its_body_and_headers(mammography, connections_kept):
    from tests.factories import PatientFactory, ScheduleFactory, SlotFactory
    from tests.factories.integration import access_token_create, api_client_create

    application = get_wsgi_application()
    assert call(application, _environ("GET", "/api/v1/ping")) == (200, b'{"status":"ok"}')

    schedule = ScheduleFactory(service=mammography)
    slot, patient = SlotFactory(schedule=schedule), PatientFactory()
    issued = api_client_create(facility=schedule.facility, scopes=["bookings:write"])
    body = json.dumps({"slot_id": slot.pk, "pesel": patient.pesel, "channel": "desk"}).encode()
    headers = {
        "Authorization": f"Bearer {access_token_create(issued)}",
        "Content-Type": "application/json",
        "Idempotency-Key": "profiled",
    }
    status, answer = call(application, _environ("POST", "/api/v1/bookings", body, headers))
    assert status == 201 and json.loads(answer)["patient"]["pesel"] == patient.pesel
    again, replayed = call(application, _environ("POST", "/api/v1/bookings", body, headers))
    assert (again, json.loads(replayed)) == (201, json.loads(answer))  # the same key: the first answer


def test_every_timed_step_exists_and_is_counted_when_called(monkeypatch):
    import importlib

    for module_name, path in PHASES:  # each is still where the profile looks for it
        owner = importlib.import_module(module_name)
        for name in path.split("."):
            owner = getattr(owner, name)
        assert callable(owner), path

    from apps.integration import idempotency

    monkeypatch.setattr("bench.profile_booking.PHASES", (("apps.integration.idempotency", "request_hash"),))
    monkeypatch.setattr(idempotency, "request_hash", idempotency.request_hash)  # restored afterwards
    phases: dict[str, list[float]] = {}
    _time_phases(phases)
    digest = idempotency.request_hash(method="POST", path="/x", body=b"{}")
    assert len(digest) == 64 and phases["request_hash"][0] == 1
