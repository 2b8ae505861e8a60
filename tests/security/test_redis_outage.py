"""Redis unreachable (issue 15): the API answers 503 problem+json with Retry-After, never a 500;
readiness keeps the instance in the balancer while patient pages work; nothing is lost and an
idempotent retry after recovery books exactly once. Redis is "stopped" by pointing the cache at a
closed loopback port (nothing listens on port 1)."""

from __future__ import annotations

import copy

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings

from apps.booking.models import Appointment
from tests.factories import PatientFactory

CLOSED = "redis://127.0.0.1:1/0"


def _redis_down():
    caches = copy.deepcopy(django_settings.CACHES)
    caches["default"]["LOCATION"] = CLOSED
    return override_settings(CACHES=caches, REDIS_URL=CLOSED)


def test_api_reads_and_writes_answer_503_with_retry_after(world_a, api_a):
    with _redis_down():
        read = api_a.get("/api/v1/schedules")
        write = api_a.post(
            "/api/v1/bookings",
            {"slot_id": world_a.free_slots[0].pk, "pesel": PatientFactory().pesel, "channel": "desk"},
        )
    for response in (read, write):
        assert response.status_code == 503
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "service_unavailable"
        assert int(response["Retry-After"]) > 0


def test_a_booking_retried_after_the_outage_is_made_exactly_once(world_a, api_a):
    body = {"slot_id": world_a.free_slots[0].pk, "pesel": PatientFactory().pesel, "channel": "desk"}
    before = Appointment.objects.count()
    with _redis_down():
        during = api_a.post("/api/v1/bookings", body, **{"Idempotency-Key": "outage-1"})
    after = api_a.post("/api/v1/bookings", body, **{"Idempotency-Key": "outage-1"})
    again = api_a.post("/api/v1/bookings", body, **{"Idempotency-Key": "outage-1"})

    assert during.status_code == 503
    assert after.status_code == again.status_code == 201, after.content
    assert again["Idempotent-Replayed"] == "true"
    assert Appointment.objects.count() == before + 1


def test_the_token_endpoint_answers_503_not_500(issued_a):
    with _redis_down():
        response = Client().post("/api/v1/oauth/token/", {"grant_type": "client_credentials"})
    assert response.status_code == 503
    assert response["Retry-After"]


@pytest.mark.django_db
def test_readiness_stays_ready_degraded_and_the_full_check_fails(client):
    with _redis_down():
        ready = client.get("/readyz")
        full = client.get("/readyz/full")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["redis"].startswith("error: ConnectionError")
    assert full.status_code == 503


@pytest.mark.django_db
def test_patient_pages_still_work_and_code_sign_in_refuses_politely(client):
    patient = PatientFactory(phone="+48500100300")
    with _redis_down():
        home = client.get("/")
        login = client.get("/login/")
        signin = client.post("/login/", {"pesel": patient.pesel})
    assert home.status_code == login.status_code == 200
    assert signin.status_code == 200  # the form again, with the message; no code was sent
    assert "niedostępne" in signin.content.decode()
