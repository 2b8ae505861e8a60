"""Calendar files (issue 18): one event per booking across reschedules, in the patient's language,
with an alarm, and a cancellation calendars act on (METHOD:CANCEL with an ORGANIZER)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse

from apps.booking import services as booking_services
from apps.booking.models import Appointment

pytestmark = pytest.mark.django_db


def _unfold(body: str) -> str:
    return body.replace("\r\n ", "")


def _field(body: str, name: str) -> str:
    match = re.search(rf"^{name}[:;](.*)$", _unfold(body), re.M)
    assert match, f"{name} missing"
    return match.group(1).strip()


def _ics(client, appointment: Appointment) -> str:
    response = client.get(reverse("portal:appointment_ics", args=[appointment.pk]))
    assert response["Content-Type"].startswith("text/calendar")
    return response.content.decode()


def test_one_event_across_a_reschedule_and_a_cancellation_calendars_act_on(
    client_woman, woman, mammo_slots, mammography
):
    first = booking_services.appointment_book(slot_id=mammo_slots[0].pk, patient=woman, channel="web")
    booked = _ics(client_woman, first)
    uid, seq_booked = _field(booked, "UID"), int(_field(booked, "SEQUENCE"))
    assert _field(booked, "METHOD") == "PUBLISH" and "BEGIN:VALARM" in booked
    assert _field(booked, "TRIGGER") == "-P1D"
    assert _field(booked, "SUMMARY") == mammography.name_pl  # the page language: Polish

    booking_services.appointment_confirm(appointment=first)
    seq_confirmed = int(_field(_ics(client_woman, first), "SEQUENCE"))
    moved = booking_services.appointment_reschedule(appointment=first, new_slot_id=mammo_slots[2].pk)
    rescheduled = _ics(client_woman, moved)
    assert _field(rescheduled, "UID") == uid  # replaces the old event, not a second one
    seq_moved = int(_field(rescheduled, "SEQUENCE"))
    assert seq_booked < seq_confirmed < seq_moved
    assert _field(rescheduled, "DTSTART") == mammo_slots[2].start.astimezone(dt.UTC).strftime(
        "%Y%m%dT%H%M%SZ"
    )
    # The old appointment's file describes where the booking went, never a cancellation of it.
    assert _ics(client_woman, first).count("METHOD:PUBLISH") == 1

    booking_services.appointment_cancel_by_patient(appointment=moved)
    cancelled = _ics(client_woman, moved)
    assert _field(cancelled, "METHOD") == "CANCEL" and _field(cancelled, "STATUS") == "CANCELLED"
    assert _field(cancelled, "UID") == uid and int(_field(cancelled, "SEQUENCE")) > seq_moved
    assert "mailto:" in _field(cancelled, "ORGANIZER")
    assert "BEGIN:VALARM" not in cancelled


def test_the_calendar_file_is_in_the_patients_language(client_woman, woman, mammo_slots, mammography):
    appointment = booking_services.appointment_book(slot_id=mammo_slots[0].pk, patient=woman, channel="web")
    client_woman.cookies["django_language"] = "en"
    body = _ics(client_woman, appointment)
    assert _field(body, "SUMMARY") == mammography.name_en
    assert "appointment number" in _field(body, "DESCRIPTION") and "wizyta" not in body
    assert woman.pesel not in body and woman.last_name not in body
