"""FHIR Appointment for facility systems: their OAuth token and facility scope; every read audited."""

from __future__ import annotations

import pytest

from apps.audit.models import AccessLog
from tests.factories.integration import access_token_create, api_client_create

from .conftest import fhir_json

pytestmark = pytest.mark.django_db


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def token_a(fhir_world):
    return access_token_create(api_client_create(facility=fhir_world.facility))


@pytest.fixture
def token_b(fhir_world):
    return access_token_create(api_client_create(facility=fhir_world.far_facility, name="HIS B"))


def test_a_facility_system_reads_its_appointment_and_the_read_is_audited(client, fhir_world, token_a):
    appointment = fhir_world.appointment
    response = client.get(f"/fhir/Appointment/{appointment.pk}", **bearer(token_a))
    assert response.status_code == 200
    body = fhir_json(response)
    assert body["status"] == "booked"
    assert body["slot"] == [{"reference": f"Slot/{fhir_world.booked.pk}"}]
    assert body["participant"][0]["actor"]["identifier"]["value"] == fhir_world.patient.pesel
    assert response["Cache-Control"] == "no-store"
    log = AccessLog.objects.get()
    assert log.patient_id == fhir_world.patient.pk
    assert log.facility_id == fhir_world.facility.pk
    assert log.action == f"GET /fhir/Appointment/{appointment.pk}"


def test_appointment_search_by_date_and_status_pages_and_audits_each_patient(client, fhir_world, token_a):
    start = fhir_world.appointment.start
    day = start.date().isoformat()
    url = f"/fhir/Appointment?date=ge{day}&status=booked&_count=1"
    body = fhir_json(client.get(url, **bearer(token_a)))
    assert [e["resource"]["id"] for e in body["entry"]] == [str(fhir_world.appointment.pk)]
    assert AccessLog.objects.filter(patient=fhir_world.patient).count() == 1
    none = fhir_json(client.get("/fhir/Appointment?status=cancelled&date=lt2000-01-01", **bearer(token_a)))
    assert none.get("entry", []) == []


def test_another_facilitys_appointment_is_simply_not_found(client, fhir_world, token_b):
    response = client.get(f"/fhir/Appointment/{fhir_world.appointment.pk}", **bearer(token_b))
    assert response.status_code == 404
    assert fhir_json(response)["issue"][0]["code"] == "not-found"
    listed = fhir_json(client.get("/fhir/Appointment", **bearer(token_b)))
    assert listed.get("entry", []) == []
    assert not AccessLog.objects.exists()


@pytest.mark.parametrize("header", [{}, {"HTTP_AUTHORIZATION": "Bearer not-a-token"}])
def test_appointments_need_a_facility_token(client, fhir_world, header):
    response = client.get(f"/fhir/Appointment/{fhir_world.appointment.pk}", **header)
    assert response.status_code == 401
    assert fhir_json(response)["issue"][0]["code"] == "login"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_appointments_need_the_bookings_read_scope(client, fhir_world):
    issued = api_client_create(facility=fhir_world.facility, scopes=("schedules:read",))
    response = client.get("/fhir/Appointment", **bearer(access_token_create(issued)))
    assert response.status_code == 403
    assert fhir_json(response)["issue"][0]["code"] == "forbidden"
