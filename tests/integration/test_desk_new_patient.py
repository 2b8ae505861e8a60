"""Desk and phone bookings for a person CeR has never seen: created through the patient registry."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AccessLog
from apps.booking.models import Appointment
from apps.core import pesel
from apps.patients.models import Patient
from tests.factories import PatientFactory

NEW = pesel.generate(dt.date(1962, 11, 3), "F", 1234)
PERSON = {"first_name": "Halina", "last_name": "Nowak", "phone": "+48 601 200 300", "email": "h@example.org"}


def _book(api, slot, headers: dict | None = None, **fields):
    body = {"slot_id": slot.pk, "pesel": NEW, "channel": "phone", **fields}
    return api.post("/api/v1/bookings", body, **(headers or {}))


def test_an_unknown_pesel_with_the_person_confirmed_creates_the_patient_and_books(api_a, world_a):
    slot = world_a.free_slots[0]

    response = _book(api_a, slot, patient=PERSON)

    assert response.status_code == 201, response.content
    patient = Patient.objects.get(pesel=NEW)
    assert (patient.first_name, patient.last_name, patient.sex) == ("Halina", "Nowak", "F")
    assert patient.birth_date == dt.date(1962, 11, 3)
    assert patient.phone == "+48601200300" and patient.email == "h@example.org"
    assert patient.source == Patient.Source.FACILITY
    assert patient.source_facility == world_a.facility and patient.source_channel == "phone"
    appointment = Appointment.objects.get(pk=response.json()["id"])
    assert appointment.patient == patient and appointment.slot_id == slot.pk
    assert response.json()["patient"]["first_name"] == "Halina"
    assert AccessLog.objects.filter(patient=patient, actor_type="api_client").count() == 1


def test_an_unknown_pesel_without_the_person_is_404_telling_the_integrator_to_send_it(api_a, world_a):
    response = _book(api_a, world_a.free_slots[0])
    english = _book(api_a, world_a.free_slots[0], headers={"Accept-Language": "en"})

    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "patient_not_found"
    assert "`patient`" in body["detail"] and "`patient`" in body["title"]
    assert NEW not in response.content.decode()
    assert english.status_code == 404
    assert "send `patient`" in english.json()["detail"]
    assert not Patient.objects.filter(pesel=NEW).exists()
    assert Appointment.objects.count() == 2


def test_an_invalid_pesel_with_the_person_is_400_and_creates_nothing(api_a, world_a):
    response = api_a.post(
        "/api/v1/bookings",
        {"slot_id": world_a.free_slots[0].pk, "pesel": "12345678901", "channel": "desk", "patient": PERSON},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_pesel"
    assert Patient.objects.count() == 2


@pytest.mark.parametrize(
    "person",
    [
        {"first_name": "Halina"},
        {"first_name": "Hal\u0000ina", "last_name": "Nowak"},
        {"first_name": "Halina", "last_name": "x" * 101},
        {"first_name": "Halina", "last_name": "Nowak", "phone": "call me"},
        {"first_name": "Halina", "last_name": "Nowak", "email": "nope"},
        {"first_name": "Halina", "last_name": "Nowak", "sex": "F"},
        "Halina Nowak",
    ],
)
def test_a_malformed_person_is_400_and_creates_nothing(api_a, world_a, person):
    response = _book(api_a, world_a.free_slots[0], patient=person)

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    # NUL is refused by the bounded JSON parser itself (malformed_request), the rest by the serializer.
    assert response.json()["code"] in ("validation_error", "malformed_request")
    assert not Patient.objects.filter(pesel=NEW).exists()


def test_a_lone_surrogate_in_a_name_is_400_not_a_500(api_a, world_a):
    slot_id = world_a.free_slots[0].pk
    raw = (
        f'{{"slot_id": {slot_id}, "pesel": "{NEW}", "channel": "desk", '
        '"patient": {"first_name": "\\ud800", "last_name": "Nowak"}}'
    )

    response = api_a.post("/api/v1/bookings", raw)

    assert response.status_code == 400
    # NUL is refused by the bounded JSON parser itself (malformed_request), the rest by the serializer.
    assert response.json()["code"] in ("validation_error", "malformed_request")
    assert not Patient.objects.filter(pesel=NEW).exists()


def test_a_known_patient_sent_with_the_person_keeps_their_record_and_gets_a_missing_phone(api_a, world_a):
    known = PatientFactory(pesel=NEW, first_name="Halina", last_name="Nowak-Kowalska", phone="")

    response = _book(api_a, world_a.free_slots[0], patient={**PERSON, "last_name": "Nowak"})

    assert response.status_code == 201, response.content
    known.refresh_from_db()
    assert known.last_name == "Nowak-Kowalska" and known.phone == "+48601200300"
    assert known.source == ""
    assert Appointment.objects.get(pk=response.json()["id"]).patient == known


def test_a_refused_booking_of_a_new_person_leaves_no_patient_behind(api_a, world_a):
    taken_by_rule = world_a.free_slots[0]
    # A man cannot book screening mammography: the booking is refused, and the patient it would have
    # created is rolled back with it (one transaction per request).
    man = pesel.generate(dt.date(1962, 11, 3), "M", 1234)

    response = api_a.post(
        "/api/v1/bookings",
        {"slot_id": taken_by_rule.pk, "pesel": man, "channel": "desk", "patient": PERSON},
    )

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "not_eligible_sex"
    assert not Patient.objects.filter(pesel=man).exists()


def test_a_retried_new_patient_booking_is_replayed_not_doubled(api_a, world_a):
    slot = world_a.free_slots[0]

    first = _book(api_a, slot, headers={"Idempotency-Key": "new-1"}, patient=PERSON)
    retry = _book(api_a, slot, headers={"Idempotency-Key": "new-1"}, patient=PERSON)

    assert first.status_code == retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true"
    assert Patient.objects.filter(pesel=NEW).count() == 1
    assert Appointment.objects.filter(slot=slot).count() == 1


def test_the_common_desk_booking_for_a_known_patient_does_not_ask_the_registry_or_take_a_savepoint(
    api_a, world_a
):
    """The registry is asked only on the miss path or when `patient` is sent: a known PESEL without it
    costs what it did (the one prepared plain-SQL read, which the capture shows without its text,
    and no savepoint of its own)."""
    known = PatientFactory()

    def booking_sql(slot, **extra) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            response = api_a.post(
                "/api/v1/bookings", {"slot_id": slot.pk, "pesel": known.pesel, "channel": "desk", **extra}
            )
        assert response.status_code == 201, response.content
        return [q["sql"] or "" for q in queries.captured_queries]

    common = booking_sql(world_a.free_slots[0])
    Appointment.objects.filter(patient=known).update(status="cancelled_by_patient")
    from apps.booking.models import Registration

    Registration.objects.filter(patient=known).update(status="closed")
    with_person = booking_sql(world_a.free_slots[1], patient={"first_name": "A", "last_name": "B"})

    def registry_reads(sql: list[str]) -> list[str]:
        return [q for q in sql if q.lstrip().upper().startswith("SELECT") and "patients_patient" in q]

    def savepoints(sql: list[str]) -> int:
        return sum(1 for q in sql if q.lstrip().upper().startswith("SAVEPOINT"))

    assert registry_reads(common) == [] and registry_reads(with_person)
    assert savepoints(with_person) == savepoints(common) + 1  # the person's, and only with a person
