"""Outbox-driven notices, reminders at the catalogue offsets, SMS replies and the compliance check."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.booking import services as booking_services
from apps.booking.models import Appointment
from apps.notifications import lifecycle
from apps.notifications.models import ComplianceCheck, InboundSms, Message
from apps.notifications.selectors import compliance_shortfalls
from apps.outbox.models import OutboxEvent
from tests.factories import ContractFactory, FacilityFactory, ScheduleFactory, SlotFactory

pytestmark = pytest.mark.django_db


def _book(woman, slot, **kwargs):
    return booking_services.appointment_book(slot_id=slot.pk, patient=woman, channel="web", **kwargs)


def _events(appointment):
    return OutboxEvent.objects.filter(aggregate_type="appointment", aggregate_id=appointment.pk)


def test_a_booking_event_sends_the_patient_a_confirmation(woman, mammo_slots):
    appointment = _book(woman, mammo_slots[0])
    event = _events(appointment).get(type="appointment.booked")
    assert lifecycle.notification_for_event(event=event) == 3
    assert lifecycle.notification_for_event(event=event) == 0  # reprocessing sends nothing
    message = Message.objects.get(kind="booked", channel="email")
    assert message.appointment == appointment and message.expires_at == appointment.start
    assert appointment.facility.name in message.body_text


def test_cancelled_rescheduled_and_allocated_notices(woman, mammography, mammo_slots, mammo_schedule):
    appointment = _book(woman, mammo_slots[0])
    new = booking_services.appointment_reschedule(appointment=appointment, new_slot_id=mammo_slots[1].pk)
    booking_services.appointment_cancel_by_patient(appointment=new)
    booking_services.waitlist_join(patient=woman, service=mammography)
    allocated = booking_services.waitlist_allocate_slot(slot_id=SlotFactory(schedule=mammo_schedule).pk)
    assert allocated is not None
    for event in OutboxEvent.objects.order_by("id"):
        lifecycle.notification_for_event(event=event)
    kinds = set(Message.objects.filter(channel="sms").values_list("kind", flat=True))
    assert kinds == {"booked", "rescheduled", "cancelled", "allocated"}
    assert Message.objects.filter(kind="booked", channel="sms").count() == 1  # not again for the move


@pytest.fixture
def horizon_now(monkeypatch):
    """The outbox horizon is this database's oldest running writer: inside a test transaction that is
    the test itself, so its own events are never "older". In a single-threaded test every written
    event is final, so the horizon is simply the next transaction id."""
    from django.db import connection

    from apps.outbox import selectors

    def next_txid() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint + 1")
            return int(cursor.fetchone()[0])

    monkeypatch.setattr(selectors, "visible_horizon", next_txid)


def test_the_consumer_follows_the_outbox_with_its_own_cursor(horizon_now, woman, mammo_slots):
    appointment = _book(woman, mammo_slots[0])
    assert lifecycle.notifications_consume() >= 1
    assert lifecycle.notifications_consume() == 0
    assert Message.objects.filter(kind="booked", appointment=appointment).count() == 3
    booking_services.appointment_cancel_by_patient(appointment=appointment)
    assert lifecycle.notifications_consume() == 1
    assert Message.objects.filter(kind="cancelled").count() == 3


def test_reminders_at_7_and_1_days_once_each(woman, mammo_schedule):
    start = timezone.now() + dt.timedelta(days=10)
    slot = SlotFactory(schedule=mammo_schedule, start=start)
    appointment = _book(woman, slot)
    assert lifecycle.reminders_send(now=start - dt.timedelta(days=8)) == 0
    at_7 = start - dt.timedelta(days=7) + dt.timedelta(minutes=1)
    assert lifecycle.reminders_send(now=at_7) == 3
    assert lifecycle.reminders_send(now=at_7) == 0
    assert lifecycle.reminders_send(now=start - dt.timedelta(hours=20)) == 3
    assert set(Message.objects.filter(channel="sms").values_list("key", flat=True)) == {
        f"reminder:7:{appointment.pk}:sms",
        f"reminder:1:{appointment.pk}:sms",
    }
    sms = Message.objects.get(key=f"reminder:1:{appointment.pk}:sms")
    assert "ANULUJ" in sms.body_text and sms.requires_live_appointment and sms.expires_at == start


def test_after_an_outage_only_the_latest_reminder_goes_and_none_after_the_visit(woman, mammo_schedule):
    start = timezone.now() + dt.timedelta(days=10)
    appointment = _book(woman, SlotFactory(schedule=mammo_schedule, start=start))
    assert lifecycle.reminders_send(now=start - dt.timedelta(hours=2)) == 3
    assert not Message.objects.filter(key__startswith=f"reminder:7:{appointment.pk}").exists()
    assert lifecycle.reminders_send(now=start + dt.timedelta(minutes=1)) == 0


def test_no_reminder_for_a_cancelled_booking_or_one_booked_after_it_fell_due(
    woman, other_patient, mammo_schedule
):
    start = timezone.now() + dt.timedelta(days=3)  # booked 3 days ahead: the 7-day reminder never applies
    appointment = _book(woman, SlotFactory(schedule=mammo_schedule, start=start))
    assert lifecycle.reminders_send(now=start - dt.timedelta(days=2)) == 0
    booking_services.appointment_cancel_by_patient(appointment=appointment)
    assert lifecycle.reminders_send(now=start - dt.timedelta(hours=12)) == 0


WEBHOOK_SECRET = "s3cret-for-tests"


def _signed(client, settings, payload, timestamp=None):
    settings.CER_SMS_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = json.dumps(payload).encode()
    ts = str(int(timestamp or time.time()))
    sig = "sha256=" + hmac.new(b"s3cret-for-tests", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return client.post(
        reverse("portal:sms_inbound"),
        body,
        content_type="application/json",
        headers={"X-CeR-Timestamp": ts, "X-CeR-Signature": sig},
    )


def _sent_sms_about(appointment):
    Message.objects.create(
        key=f"booked:{appointment.pk}:sms",
        kind="booked",
        channel="sms",
        patient=appointment.patient,
        appointment=appointment,
        to=appointment.patient.phone,
        subject="x",
        body_text="x",
        state=Message.State.SENT,
        expires_at=appointment.start,
    )


def test_replying_anuluj_cancels_the_booking_once(client, settings, woman, mammo_slots):
    appointment = _book(woman, mammo_slots[0])
    _sent_sms_about(appointment)
    payload = {"id": "op-1", "from": "48" + woman.phone[-9:], "text": " anuluj "}
    response = _signed(client, settings, payload)
    assert response.status_code == 200 and response.json() == {"outcome": "cancelled"}
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_PATIENT
    again = _signed(client, settings, payload)
    assert again.json() == {"outcome": "cancelled"} and InboundSms.objects.count() == 1


def test_replying_tak_confirms(client, settings, woman, mammo_slots):
    appointment = _book(woman, mammo_slots[0])
    _sent_sms_about(appointment)
    response = _signed(client, settings, {"id": "op-2", "from": woman.phone, "text": "TAK"})
    assert response.json() == {"outcome": "confirmed"}
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CONFIRMED


def test_the_sms_webhook_refuses_bad_signatures_stale_timestamps_and_bad_bodies(
    client, settings, woman, mammo_slots
):
    appointment = _book(woman, mammo_slots[0])
    _sent_sms_about(appointment)
    payload = {"id": "op-3", "from": woman.phone, "text": "ANULUJ"}
    settings.CER_SMS_WEBHOOK_SECRET = "other"
    forged = client.post(
        reverse("portal:sms_inbound"),
        json.dumps(payload),
        content_type="application/json",
        headers={"X-CeR-Timestamp": str(int(time.time())), "X-CeR-Signature": "sha256=00"},
    )
    assert forged.status_code == 401
    assert _signed(client, settings, payload, timestamp=time.time() - 3600).status_code == 401
    assert _signed(client, settings, {"nothing": 1}).status_code == 400
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED
    settings.CER_SMS_WEBHOOK_SECRET = ""
    assert (
        client.post(reverse("portal:sms_inbound"), "{}", content_type="application/json").status_code == 404
    )


def test_other_words_and_unknown_numbers_change_nothing(woman, mammo_slots):
    appointment = _book(woman, mammo_slots[0])
    _sent_sms_about(appointment)
    assert lifecycle.sms_inbound_handle(provider_id="a", sender=woman.phone, text="Dziękuję") == "ignored"
    assert lifecycle.sms_inbound_handle(provider_id="b", sender="+48999999999", text="ANULUJ") == "no_booking"
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


def test_compliance_check_flags_short_published_horizons(mammography):
    good, short = FacilityFactory(), FacilityFactory()
    for facility in (good, short):
        ContractFactory(facility=facility, service=mammography)
    SlotFactory(
        schedule=ScheduleFactory(facility=good, service=mammography),
        start=timezone.now() + dt.timedelta(days=mammography.min_horizon_days + 5),
    )
    SlotFactory(
        schedule=ScheduleFactory(facility=short, service=mammography),
        start=timezone.now() + dt.timedelta(days=5),
    )
    assert lifecycle.compliance_check() == 2
    assert lifecycle.compliance_check() == 2  # re-running the same day keeps one row per pair
    assert ComplianceCheck.objects.count() == 2
    shortfalls = compliance_shortfalls()
    assert [c.facility for c in shortfalls] == [short]
    assert shortfalls[0].required_days == mammography.min_horizon_days


def test_one_slot_published_in_year_9999_does_not_stop_the_check_for_the_others(mammography):
    far, other = FacilityFactory(), FacilityFactory()
    for facility in (far, other):
        ContractFactory(facility=facility, service=mammography)
    last_instant = dt.datetime(9999, 12, 31, 23, 30, tzinfo=dt.UTC)  # year 10000 in Warsaw
    SlotFactory(
        schedule=ScheduleFactory(facility=far, service=mammography),
        start=last_instant,
        end=last_instant + dt.timedelta(minutes=20),
    )
    SlotFactory(
        schedule=ScheduleFactory(facility=other, service=mammography),
        start=timezone.now() + dt.timedelta(days=5),
    )

    assert lifecycle.compliance_check() == 2

    checks = {c.facility_id: c for c in ComplianceCheck.objects.all()}
    assert (checks[far.pk].published_until, checks[far.pk].compliant) == (dt.date.max, True)
    assert checks[other.pk].compliant is False
    assert [c.facility for c in compliance_shortfalls()] == [other]


def test_periodic_tasks_are_declared():
    from apps.notifications.tasks import PERIODIC_TASKS

    names = {spec["task"].rsplit(".", 1)[1] for spec in PERIODIC_TASKS}
    assert {"notifications_consume_task", "reminders_send_task", "compliance_check_task"} <= names


def test_the_task_wrappers_call_their_services(woman, mammo_slots):
    from apps.notifications import tasks

    _book(woman, mammo_slots[0])
    assert tasks.reminders_send_task() == 0  # 10 days ahead: nothing due yet
    assert tasks.compliance_check_task() == 1
    assert tasks.messages_retry_task() == 0


def test_an_automatic_no_show_tells_the_patient_once(woman, mammo_schedule):
    start = timezone.now().replace(microsecond=0) - dt.timedelta(days=5)
    slot = SlotFactory(schedule=mammo_schedule, start=start, end=start + dt.timedelta(minutes=15))
    appointment = _book(woman, slot, now=start - dt.timedelta(days=3))
    assert booking_services.appointments_mark_no_show() == 1
    event = _events(appointment).get(type="appointment.no_show")
    assert lifecycle.notification_for_event(event=event) == 3
    assert lifecycle.notification_for_event(event=event) == 0
    sms = Message.objects.get(kind="no_show", channel="sms")
    assert "CeR" in sms.body_text and sms.expires_at > timezone.now()
    # A no-show the facility recorded itself is not announced.
    manual = OutboxEvent(
        type="appointment.no_show", aggregate_type="appointment", aggregate_id=appointment.pk, payload={}
    )
    manual.patient_id = woman.pk
    assert lifecycle.notification_for_event(event=manual) == 0
