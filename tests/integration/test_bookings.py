"""Bookings through the API: desk bookings by PESEL, transitions, audited reads."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit.models import AccessLog
from apps.booking.models import Appointment
from apps.integration.models import IdempotencyRecord
from apps.outbox.models import OutboxEvent
from apps.scheduling.models import Slot
from tests.factories import PatientFactory, ScheduleFactory, SlotFactory


def test_a_desk_booking_is_registered_for_a_patient_identified_by_pesel(api_a, world_a):
    patient = PatientFactory()
    slot = world_a.free_slots[0]

    response = api_a.post(
        "/api/v1/bookings", {"slot_id": slot.pk, "pesel": patient.pesel, "channel": "phone"}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["channel"] == "phone"
    assert body["patient"]["pesel"] == patient.pesel
    appointment = Appointment.objects.get(pk=body["id"])
    assert appointment.patient == patient
    assert appointment.facility == world_a.facility
    assert patient.pesel not in response["Location"]
    assert AccessLog.objects.filter(patient=patient, actor_type="api_client").count() == 1


@pytest.mark.parametrize(
    ("pesel", "status", "code"),
    [
        ("12345678901", 400, "invalid_pesel"),
        ("70051701235", 400, "invalid_pesel"),
        ("abc", 400, "validation_error"),
    ],
)
def test_an_invalid_pesel_is_refused(api_a, world_a, pesel, status, code):
    response = api_a.post(
        "/api/v1/bookings", {"slot_id": world_a.free_slots[0].pk, "pesel": pesel, "channel": "desk"}
    )

    assert response.status_code == status
    assert response.json()["code"] == code
    assert Appointment.objects.count() == 2


def test_an_unknown_patient_is_a_404_problem(api_a, world_a):
    from apps.core import pesel

    unknown = pesel.generate(dt.date(1960, 1, 2), "F", 4321)

    response = api_a.post(
        "/api/v1/bookings", {"slot_id": world_a.free_slots[0].pk, "pesel": unknown, "channel": "desk"}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "patient_not_found"
    assert unknown not in response.content.decode()


def test_a_slot_of_another_facility_cannot_be_booked(api_b, world_a):
    response = api_b.post(
        "/api/v1/bookings",
        {"slot_id": world_a.free_slots[0].pk, "pesel": PatientFactory().pesel, "channel": "desk"},
    )

    assert response.status_code == 404
    assert Slot.objects.get(pk=world_a.free_slots[0].pk).status == "free"


def test_a_slot_already_taken_is_refused_before_anything_is_written_or_the_patient_read(api_a, world_a):
    taken = world_a.booking.slot
    body = {"slot_id": taken.pk, "pesel": PatientFactory().pesel, "channel": "desk"}

    with CaptureQueriesContext(connection) as queries:
        response = api_a.post("/api/v1/bookings", body, **{"Idempotency-Key": "lost-race"})
    again = api_a.post("/api/v1/bookings", body, **{"Idempotency-Key": "lost-race"})

    assert response.status_code == again.status_code == 409
    assert response.json()["code"] == again.json()["code"] == "slot_not_free"
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "patients_patient" not in sql and "INSERT" not in sql and "FOR UPDATE" not in sql
    assert not IdempotencyRecord.objects.filter(key="lost-race").exists()  # a retry is simply re-checked


def test_a_taken_slot_of_another_facility_is_still_simply_not_found(api_b, world_a):
    body = {"slot_id": world_a.booking.slot.pk, "pesel": PatientFactory().pesel, "channel": "desk"}

    response = api_b.post("/api/v1/bookings", body)

    assert response.status_code == 404


def test_a_retry_of_a_booking_is_replayed_even_though_its_slot_is_now_taken(api_a, world_a):
    body = {"slot_id": world_a.free_slots[0].pk, "pesel": PatientFactory().pesel, "channel": "desk"}

    first = api_a.post("/api/v1/bookings", body, **{"Idempotency-Key": "k1"})
    retry = api_a.post("/api/v1/bookings", body, **{"Idempotency-Key": "k1"})
    other_body = api_a.post("/api/v1/bookings", {**body, "channel": "phone"}, **{"Idempotency-Key": "k1"})

    assert first.status_code == retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true" and retry.json() == first.json()
    assert other_body.status_code == 422
    assert Appointment.objects.filter(slot_id=body["slot_id"]).count() == 1


def test_web_channel_is_not_accepted_from_a_facility(api_a, world_a):
    response = api_a.post(
        "/api/v1/bookings",
        {"slot_id": world_a.free_slots[0].pk, "pesel": PatientFactory().pesel, "channel": "web"},
    )

    assert response.status_code == 400


def test_a_second_booking_for_the_same_service_is_refused(api_a, world_a):
    response = api_a.post(
        "/api/v1/bookings",
        {"slot_id": world_a.free_slots[0].pk, "pesel": world_a.patient.pesel, "channel": "desk"},
    )

    assert response.status_code == 409
    assert response.json()["code"] == "active_registration_exists"


def test_cancel_with_a_reason_code(api_a, world_a):
    response = api_a.post(f"/api/v1/bookings/{world_a.booking.pk}/cancel", {"reason_code": "DOCTOR_ILLNESS"})

    assert response.status_code == 200, response.content
    world_a.booking.refresh_from_db()
    assert world_a.booking.status == "cancelled_by_facility"
    assert world_a.booking.reason.code == "DOCTOR_ILLNESS"


def test_cancel_needs_a_known_reason(api_a, world_a):
    response = api_a.post(f"/api/v1/bookings/{world_a.booking.pk}/cancel", {"reason_code": "NO_SUCH_CODE"})

    assert response.status_code == 400
    world_a.booking.refresh_from_db()
    assert world_a.booking.status == "booked"


def test_reschedule_to_another_slot_of_the_facility(api_a, world_a):
    target = world_a.free_slots[1]

    response = api_a.post(f"/api/v1/bookings/{world_a.booking.pk}/reschedule", {"slot_id": target.pk})

    assert response.status_code == 200, response.content
    assert response.json()["slot_id"] == target.pk
    world_a.booking.refresh_from_db()
    assert world_a.booking.status == "rescheduled"


def test_reschedule_to_a_foreign_slot_is_404(api_a, world_a, facility_b):
    foreign = SlotFactory(schedule=ScheduleFactory(facility=facility_b, service=world_a.service))

    response = api_a.post(f"/api/v1/bookings/{world_a.booking.pk}/reschedule", {"slot_id": foreign.pk})

    assert response.status_code == 404
    world_a.booking.refresh_from_db()
    assert world_a.booking.status == "booked"


def test_confirm_on_the_patients_behalf(api_a, world_a):
    response = api_a.post(f"/api/v1/bookings/{world_a.booking.pk}/confirm")

    assert response.json()["status"] == "confirmed"
    assert OutboxEvent.objects.filter(type="appointment.confirmed").count() == 1


def test_outcome_after_the_visit(api_a, world_a):
    response = api_a.post(f"/api/v1/bookings/{world_a.past_booking.pk}/outcome", {"outcome": "no_show"})

    assert response.json()["status"] == "no_show"


def test_outcome_before_the_visit_is_refused(api_a, world_a):
    response = api_a.post(f"/api/v1/bookings/{world_a.booking.pk}/outcome", {"outcome": "attended"})

    assert response.status_code == 409
    assert response.json()["code"] == "outcome_too_early"


def test_cancel_a_whole_session_keeps_every_patient_in_line(api_a, world_a):
    day = timezone.localdate(world_a.booking.start).isoformat()

    response = api_a.post(
        f"/api/v1/schedules/{world_a.schedule.pk}/cancel-session",
        {"day": day, "reason_code": "DOCTOR_ILLNESS"},
    )

    assert response.status_code == 200, response.content
    assert response.json()["cancelled"] == 1
    world_a.booking.refresh_from_db()
    assert world_a.booking.status == "cancelled_by_facility"


def test_a_bookings_access_log_row_is_written_with_its_stored_answer_and_alone_without_a_key(
    api_a, world_a, issued_a
):
    """The access log of a write's answer commits with it either way; with an Idempotency-Key it goes
    in the statement that stores the answer (one round trip less), without one on its own."""
    ran: list[str] = []

    def record(execute, sql, params, many, context):
        ran.append(str(sql))
        return execute(sql, params, many, context)

    keyed, plain = PatientFactory(), PatientFactory()
    with connection.execute_wrapper(record):
        first = api_a.post(
            "/api/v1/bookings",
            {"slot_id": world_a.free_slots[0].pk, "pesel": keyed.pesel, "channel": "desk"},
            **{"Idempotency-Key": "audited"},
        )
        with_key = list(ran)
        ran.clear()
        second = api_a.post(
            "/api/v1/bookings",
            {"slot_id": world_a.free_slots[1].pk, "pesel": plain.pesel, "channel": "desk"},
        )

    assert (first.status_code, second.status_code) == (201, 201)
    log, stored = AccessLog._meta.db_table, IdempotencyRecord._meta.db_table
    assert [sql for sql in with_key if log in sql] == [
        sql for sql in with_key if f"UPDATE {stored}" in sql
    ]  # one statement does both
    assert len([sql for sql in ran if log in sql]) == 1 and not any(stored in sql for sql in ran)
    for patient in (keyed, plain):
        row = AccessLog.objects.get(patient=patient)
        assert (row.actor_type, row.actor_id, row.facility_id, row.action, row.purpose) == (
            "api_client",
            f"api_client:{issued_a.client.pk}",
            world_a.facility.pk,
            "POST /api/v1/bookings",
            "facility integration API",
        )
    assert IdempotencyRecord.objects.get(key="audited").status_code == 201


def test_every_read_of_bookings_is_recorded_in_the_audit_log(api_a, world_a):
    api_a.get("/api/v1/bookings")
    api_a.get(f"/api/v1/bookings/{world_a.booking.pk}")

    logged = AccessLog.objects.filter(facility=world_a.facility, actor_type="api_client")
    assert sorted(logged.values_list("action", flat=True)) == [
        "GET /api/v1/bookings",
        "GET /api/v1/bookings",
        f"GET /api/v1/bookings/{world_a.booking.pk}",
    ]
    assert set(logged.values_list("patient_id", flat=True)) == {
        world_a.booking.patient_id,
        world_a.past_booking.patient_id,
    }


def test_booking_list_filters_by_status_and_date(api_a, world_a):
    day = timezone.localdate(world_a.past_booking.start).isoformat()

    rows = api_a.get(f"/api/v1/bookings?date_from={day}&date_to={day}&status=booked").json()["results"]

    assert [r["id"] for r in rows] == [world_a.past_booking.pk]


@pytest.mark.parametrize(("language", "words"), [("en", "The patient already has"), ("pl", "Pacjent ma już")])
def test_the_one_registration_refusal_is_worded_for_the_facility_in_one_language(
    api_a, world_a, language, words
):
    """A facility system is not the patient: no "you can reschedule it", and no Polish and English
    glued in one sentence (the existing booking used to read "Poczekalnia / waiting list")."""
    response = api_a.post(
        "/api/v1/bookings",
        {"slot_id": world_a.free_slots[0].pk, "pesel": world_a.patient.pesel, "channel": "desk"},
        **{"Accept-Language": language},
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "active_registration_exists"
    assert body["detail"].startswith(words)
    assert "You can reschedule" not in body["detail"] and "Możesz zmienić" not in body["detail"]
    other = "wizyta nr" if language == "en" else "appointment"
    assert other not in body["detail"] and other not in body["params"]["existing"]


def test_a_booking_answer_shows_its_referrals_state(api_a, facility_a):
    from apps.booking import services as booking
    from tests.factories import ContractFactory, ReasonCodeFactory, ReferralFactory, ServiceFactory

    ReasonCodeFactory(code="PATIENT_REQUEST", kind="patient_cancel")
    cardiology = ServiceFactory()
    ContractFactory(facility=facility_a, service=cardiology)
    slot = SlotFactory(schedule=ScheduleFactory(facility=facility_a, service=cardiology))
    referral = ReferralFactory(service=cardiology)
    response = api_a.post(
        "/api/v1/bookings",
        {
            "slot_id": slot.pk,
            "pesel": referral.patient.pesel,
            "channel": "desk",
            "referral_number": referral.number.lower(),
            "referral_code": referral.access_code,
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["referral"] == {"number": referral.number, "status": "registered"}
    booking.appointment_cancel_by_patient(appointment=Appointment.objects.get(pk=response.json()["id"]))
    again = api_a.get(f"/api/v1/bookings/{response.json()['id']}").json()
    assert again["referral"]["status"] == "issued"
