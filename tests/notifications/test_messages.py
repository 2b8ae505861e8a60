"""Messages: one interface over channels, logged with state, idempotent, never sent after their TTL."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.booking import services as booking_services
from apps.notifications import services
from apps.notifications.channels import (
    ConsoleSmsGateway,
    DeliveryError,
    LogSmsGateway,
    MemorySmsGateway,
    SmsGateway,
)
from apps.notifications.models import Message
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _compose(patient, key="test:1", **kwargs):
    kwargs.setdefault("expires_at", timezone.now() + dt.timedelta(days=1))
    return services.message_compose(
        patient=patient,
        kind="login_code",
        key=key,
        template="login-code",
        context={"code": "123456", "minutes": 10},
        **kwargs,
    )


def test_compose_creates_one_message_per_channel_and_delivers_after_commit(
    django_capture_on_commit_callbacks, mailoutbox
):
    patient = PatientFactory(email="a@example.org", phone="+48500100200")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        messages = _compose(patient)
    assert {m.channel for m in messages} == {"in_app", "email", "sms"}
    assert Message.objects.get(channel="in_app").state == Message.State.SENT
    assert len(callbacks) == 1
    for message in messages:
        if message.channel != "in_app":
            assert services.message_deliver(message_id=message.pk) == Message.State.SENT
    assert mailoutbox[0].to == ["a@example.org"] and mailoutbox[0].alternatives
    assert "123456" in MemorySmsGateway.outbox[0]["text"]
    assert Message.objects.filter(state=Message.State.SENT).count() == 3


def test_composing_twice_creates_nothing_new():
    patient = PatientFactory()
    assert len(_compose(patient)) == 3
    assert _compose(patient) == []
    assert Message.objects.count() == 3


def test_a_message_is_sent_once_even_if_delivered_twice():
    patient = PatientFactory()
    sms = next(m for m in _compose(patient) if m.channel == "sms")
    assert services.message_deliver(message_id=sms.pk) == Message.State.SENT
    assert services.message_deliver(message_id=sms.pk) == Message.State.SENT
    assert len(MemorySmsGateway.outbox) == 1


def test_a_message_past_its_ttl_is_never_sent():
    patient = PatientFactory()
    sms = next(m for m in _compose(patient) if m.channel == "sms")
    later = timezone.now() + dt.timedelta(days=2)
    assert services.message_deliver(message_id=sms.pk, now=later) == Message.State.EXPIRED
    assert MemorySmsGateway.outbox == []


def test_a_reminder_for_a_cancelled_booking_is_skipped(woman, mammo_slots):
    appointment = booking_services.appointment_book(slot_id=mammo_slots[0].pk, patient=woman, channel="web")
    messages = services.message_compose(
        patient=woman,
        kind="reminder_7d",
        key=f"reminder:7:{appointment.pk}",
        template="appointment-reminder",
        context={
            "appointment": appointment,
            "service": appointment.service,
            "facility": appointment.facility,
            "start": appointment.start,
            "days": 7,
        },
        expires_at=appointment.start,
        appointment=appointment,
        requires_live_appointment=True,
    )
    booking_services.appointment_cancel_by_patient(appointment=appointment)
    sms = next(m for m in messages if m.channel == "sms")
    assert services.message_deliver(message_id=sms.pk) == Message.State.SKIPPED
    assert MemorySmsGateway.outbox == []


class _Down(SmsGateway):
    def send(self, *, to: str, text: str) -> str:
        raise DeliveryError("operator down")


def test_a_failed_delivery_is_retried_until_it_works(settings):
    patient = PatientFactory()
    sms = next(m for m in _compose(patient) if m.channel == "sms")
    settings.CER_SMS_BACKEND = f"{__name__}._Down"
    assert services.message_deliver(message_id=sms.pk) == Message.State.FAILED
    assert services.messages_retry() == [sms.pk]
    settings.CER_SMS_BACKEND = "apps.notifications.channels.MemorySmsGateway"
    assert services.message_deliver(message_id=sms.pk) == Message.State.SENT
    assert Message.objects.get(pk=sms.pk).attempts == 2


def test_expired_unsent_messages_are_marked_expired():
    patient = PatientFactory()
    _compose(patient, expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert services.messages_expire() == 2  # e-mail and SMS; in-app is delivered by being stored


def test_messages_are_rendered_in_the_patients_language():
    polish, english = PatientFactory(language="pl"), PatientFactory(language="en")
    assert _compose(polish)[0].subject == "Twój kod logowania"
    assert _compose(english, key="test:2")[0].subject == "Your sign-in code"


def test_sms_gateways(capsys, caplog):
    assert ConsoleSmsGateway().send(to="+48500100200", text="kod 123456").startswith("console-")
    assert "kod 123456" in capsys.readouterr().out
    caplog.set_level("INFO")
    LogSmsGateway().send(to="+48500100200", text="kod 123456")
    assert "123456" not in caplog.text and "+48500100200" not in caplog.text and "***200" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_two_workers_delivering_the_same_message_at_once_send_it_once():
    """GIVEN a pending SMS
    WHEN two workers deliver it at the same moment
    THEN one sends it and the other finds it taken."""
    import threading

    from django.db import connection

    patient = PatientFactory()
    sms = next(m for m in _compose(patient) if m.channel == "sms")
    barrier = threading.Barrier(2)
    states: list[str] = []

    def worker() -> None:
        try:
            barrier.wait()
            states.append(services.message_deliver(message_id=sms.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(MemorySmsGateway.outbox) == 1
    assert Message.objects.get(pk=sms.pk).attempts == 1
    assert len(states) == 2
