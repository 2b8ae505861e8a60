"""Issue 17: a clinic records a cancellation the patient asked for at the desk (PATIENT_REQUEST) with
the patient's own cancellation semantics; a facility reason keeps the patient's place."""

from __future__ import annotations

from apps.booking.models import Appointment, Registration
from apps.outbox.models import OutboxEvent
from apps.scheduling.models import Slot
from tests.factories import (
    ContractFactory,
    ReasonCodeFactory,
    ReferralFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)


def _referral_booking(api, facility):
    cardiology = ServiceFactory()
    ContractFactory(facility=facility, service=cardiology)
    schedule = ScheduleFactory(facility=facility, service=cardiology)
    slot, spare = SlotFactory(schedule=schedule), SlotFactory(schedule=schedule)
    referral = ReferralFactory(service=cardiology)
    response = api.post(
        "/api/v1/bookings",
        {
            "slot_id": slot.pk,
            "pesel": referral.patient.pesel,
            "channel": "desk",
            "referral_number": referral.number,
            "referral_code": referral.access_code,
        },
    )
    assert response.status_code == 201, response.content
    return Appointment.objects.get(pk=response.json()["id"]), spare


def test_a_cancellation_the_patient_asked_for_at_the_desk_ends_the_registration(api_a, facility_a):
    """GIVEN a desk booking with an e-referral and another free slot of the same service
    WHEN the facility cancels it with PATIENT_REQUEST (listed by /reason-codes as patient_cancel)
    THEN it is the patient's own cancellation: the registration ends, the e-referral is freed, the slot
    returns to the pool, nobody is re-queued or rebooked, and the event says who recorded it."""
    ReasonCodeFactory(code="PATIENT_REQUEST", kind="patient_cancel", name_pl="Na prośbę", name_en="Asked")
    appointment, spare = _referral_booking(api_a, facility_a)
    listed = {r["code"]: r["kind"] for r in api_a.get("/api/v1/reason-codes?limit=500").json()["results"]}
    assert listed["PATIENT_REQUEST"] == "patient_cancel"

    response = api_a.post(f"/api/v1/bookings/{appointment.pk}/cancel", {"reason_code": "PATIENT_REQUEST"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "cancelled_by_patient"
    assert body["reason"] == "PATIENT_REQUEST"
    assert body["referral"]["status"] == "issued"
    assert Registration.objects.get(pk=appointment.registration_id).status == "closed"
    assert Slot.objects.get(pk=appointment.slot_id).status == "free"
    assert not Appointment.objects.filter(
        registration_id=appointment.registration_id, status="booked"
    ).exists()
    assert Slot.objects.get(pk=spare.pk).status == "free"
    event = OutboxEvent.objects.filter(type="appointment.cancelled", aggregate_id=appointment.pk).get()
    assert event.payload["by"] == "patient" and event.payload["recorded_by"] == "facility"


def test_a_facility_reason_still_keeps_the_patients_place(api_a, facility_a):
    ReasonCodeFactory()  # DOCTOR_ILLNESS, facility_cancel
    appointment, _spare = _referral_booking(api_a, facility_a)

    response = api_a.post(f"/api/v1/bookings/{appointment.pk}/cancel", {"reason_code": "DOCTOR_ILLNESS"})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled_by_facility"
    # The place is kept: rebooked or waiting, never closed; the cancelled slot is withdrawn.
    assert Registration.objects.get(pk=appointment.registration_id).status in ("waiting", "booked")
    assert Slot.objects.get(pk=appointment.slot_id).status == "cancelled"


def test_a_reason_of_another_kind_is_refused_and_changes_nothing(api_a, facility_a):
    ReasonCodeFactory(code="NO_SHOW", kind="no_show", name_pl="Nieobecność", name_en="No-show")
    appointment, _ = _referral_booking(api_a, facility_a)

    response = api_a.post(f"/api/v1/bookings/{appointment.pk}/cancel", {"reason_code": "NO_SHOW"})

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_reason"
    appointment.refresh_from_db()
    assert appointment.status == "booked"
