"""Confirmation as catalogue data per service and channel, told to the patient in the booking's own
channel, and reminders that never ask for a reply after the deadline."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.booking import services
from apps.notifications import lifecycle
from apps.notifications.models import Message
from apps.outbox.models import OutboxEvent
from tests.factories import PatientFactory, ReferralFactory


def _book(slot, patient, channel="phone"):
    referral = ReferralFactory(patient=patient, service=slot.service)
    return services.appointment_book(
        slot_id=slot.pk,
        patient=patient,
        channel=channel,
        referral_number=referral.number,
        referral_code=referral.access_code,
    )


def _notify(appointment):
    for event in OutboxEvent.objects.filter(aggregate_type="appointment", aggregate_id=appointment.pk):
        lifecycle.notification_for_event(event=event)


def test_a_booking_just_over_the_deadline_needs_no_confirmation(make_slot, patient):
    """GIVEN a 48 h deadline and a phone booking 48 h 10 min before the visit
    THEN no deadline 10 minutes later: the booking needs no confirmation (and is never released)."""
    start = timezone.now() + dt.timedelta(hours=48, minutes=10)
    appointment = _book(make_slot(start=start, end=start + dt.timedelta(minutes=20)), patient)
    assert appointment.confirm_by is None
    assert services.appointments_release_unconfirmed(now=start - dt.timedelta(hours=47)) == 0


def test_the_deadline_is_never_sooner_than_the_minimum_notice(make_slot, patient, cardiology):
    now = timezone.now()
    cardiology.confirm_min_notice_hours = 24
    cardiology.save()
    for hours_ahead, expected in [(48 + 23, None), (48 + 25, dt.timedelta(hours=48))]:
        start = now + dt.timedelta(hours=hours_ahead)
        other = PatientFactory()
        appointment = _book(make_slot(start=start, end=start + dt.timedelta(minutes=20)), other)
        if expected is None:
            assert appointment.confirm_by is None
        else:
            assert appointment.confirm_by == start - expected
            assert appointment.confirm_by >= now + dt.timedelta(hours=24)


def test_channels_the_catalogue_exempts_need_no_confirmation(make_slot, patient, cardiology):
    cardiology.confirm_exempt_channels = ["desk"]
    cardiology.save()
    start = timezone.now() + dt.timedelta(days=6)
    desk = _book(make_slot(start=start, end=start + dt.timedelta(minutes=20)), patient, channel="desk")
    assert desk.confirm_by is None
    services.appointment_cancel_by_patient(appointment=desk)
    web = _book(make_slot(start=start + dt.timedelta(hours=1)), patient, channel="web")
    assert web.confirm_by == web.start - dt.timedelta(hours=48)


@pytest.mark.parametrize("language", ["pl", "en"])
def test_the_booking_sms_states_the_deadline(make_slot, patient, language):
    """The phone booking's SMS said nothing about confirming (only the e-mail did)."""
    patient.language = language
    patient.save()
    start = (timezone.localtime() + dt.timedelta(days=6)).replace(hour=10, minute=0, second=0, microsecond=0)
    appointment = _book(make_slot(start=start, end=start + dt.timedelta(minutes=20)), patient)
    _notify(appointment)
    sms = Message.objects.get(kind="booked", channel="sms", appointment=appointment)
    deadline = timezone.localtime(appointment.confirm_by).strftime("%d.%m %H:%M").lstrip("0")
    assert deadline in sms.body_text
    assert ("TAK do" in sms.body_text) if language == "pl" else ("Reply TAK by" in sms.body_text)


def test_a_reminder_after_the_deadline_does_not_ask_for_tak(make_slot, patient):
    start = (timezone.localtime() + dt.timedelta(days=10)).replace(hour=10, minute=0, second=0, microsecond=0)
    appointment = _book(make_slot(start=start, end=start + dt.timedelta(minutes=20)), patient)
    assert appointment.confirm_by == start - dt.timedelta(hours=48)
    lifecycle.reminders_send(now=start - dt.timedelta(days=7) + dt.timedelta(minutes=1))
    week = Message.objects.get(key=f"reminder:7:{appointment.pk}:sms")
    assert "TAK" in week.body_text  # the deadline is still ahead: asked, with the date
    # One day before, past the 48 h deadline (say the release job has not run yet): no TAK request.
    lifecycle.reminders_send(now=start - dt.timedelta(hours=20))
    day = Message.objects.get(key=f"reminder:1:{appointment.pk}:sms")
    assert "TAK" not in day.body_text and "ANULUJ" in day.body_text
    email = Message.objects.get(key=f"reminder:1:{appointment.pk}:email")
    assert "TAK" not in email.body_text
