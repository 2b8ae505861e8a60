"""The signed manage link (issue 18): in every SMS and e-mail about an appointment, to a page that
confirms, cancels or moves that one appointment in one step without signing in; it expires, is
single-purpose, rate-limited and audited."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.urls import resolve, reverse

from apps.audit.models import AccessLog
from apps.booking import services as booking_services
from apps.booking.models import Appointment
from apps.notifications.lifecycle import notification_for_event
from apps.notifications.models import Message
from apps.outbox.models import OutboxEvent
from apps.portal import manage

pytestmark = pytest.mark.django_db
LINK = re.compile(r"https?://\S+/manage/([^/\s]+)/")


@pytest.fixture
def booked(woman, mammo_slots):
    appointment = booking_services.appointment_book(slot_id=mammo_slots[0].pk, patient=woman, channel="web")
    return appointment


def test_every_sms_and_email_about_the_appointment_carries_the_link(booked):
    event = OutboxEvent.objects.filter(aggregate_type="appointment", aggregate_id=booked.pk).latest("pk")
    notification_for_event(event=event)
    sent = Message.objects.filter(
        appointment=booked, channel__in=[Message.Channel.SMS, Message.Channel.EMAIL]
    )
    assert sent.count() == 2
    for message in sent:
        token = LINK.search(message.body_text).group(1)
        assert manage.appointment_for_token(token) == booked
    assert LINK.search(sent.get(channel=Message.Channel.EMAIL).body_html)


def test_the_link_confirms_and_cancels_in_one_step_without_signing_in(booked):
    browser = Client()  # not signed in
    path = reverse("portal:manage", args=[manage.manage_token(appointment_id=booked.pk)])
    page = browser.get(path)
    assert page.status_code == 200 and "Twoja wizyta" in page.content.decode()
    browser.post(path, {"action": "confirm"})
    assert Appointment.objects.get(pk=booked.pk).status == Appointment.Status.CONFIRMED
    done = browser.post(path, {"action": "cancel"}, follow=True)
    assert Appointment.objects.get(pk=booked.pk).status == Appointment.Status.CANCELLED_BY_PATIENT
    assert "Ta wizyta jest odwołana. Nie odbędzie się." in done.content.decode()
    actions = set(AccessLog.objects.filter(patient=booked.patient).values_list("action", flat=True))
    assert {"portal.manage.view", "portal.manage.confirm", "portal.manage.cancel"} <= actions


def test_the_link_moves_the_appointment_to_another_date_in_one_step(booked, mammo_slots):
    browser = Client()
    path = reverse("portal:manage", args=[manage.manage_token(appointment_id=booked.pk)])
    assert f'name="slot" value="{mammo_slots[1].pk}"' in browser.get(path).content.decode()
    moved = browser.post(path, {"action": "reschedule", "slot": mammo_slots[1].pk}, follow=True)
    new = Appointment.objects.get(patient=booked.patient, status=Appointment.Status.BOOKED)
    assert new.slot_id == mammo_slots[1].pk
    # The page it lands on is the new appointment's own link (its token is signed with the time of
    # the redirect, so compare what it names, not its text).
    landed = resolve(moved.request["PATH_INFO"])
    assert landed.view_name == "portal:manage"
    assert manage.appointment_for_token(landed.kwargs["token"]) == new
    old = browser.get(path).content.decode()
    assert "Ta wizyta została przeniesiona na inny termin." in old and 'value="cancel"' not in old


def test_a_forged_altered_or_expired_link_does_nothing(booked):
    browser = Client()
    token = manage.manage_token(appointment_id=booked.pk)
    other_purpose = signing.TimestampSigner(salt="something-else").sign_object({"a": booked.pk})
    for bad in (token[:-2] + "xx", other_purpose, "abc"):
        response = browser.post(reverse("portal:manage", args=[bad]), {"action": "cancel"})
        assert response.status_code == 404 and "Tego linku nie można użyć" in response.content.decode()
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=manage.MAX_AGE + 60)):
        expired = browser.post(reverse("portal:manage", args=[token]), {"action": "cancel"})
    assert expired.status_code == 404
    assert Appointment.objects.get(pk=booked.pk).status == Appointment.Status.BOOKED


def test_a_link_sent_to_a_parent_stops_when_the_child_comes_of_age(booked):
    """A child's messages go to a parent; from the 18th birthday the parent no longer acts for them."""
    from apps.patients.models import Patient

    today = dt.date.today()
    turns_18 = today + dt.timedelta(days=10)
    born = turns_18.replace(year=turns_18.year - 18, day=min(turns_18.day, 28))  # 29 February: a day early
    Patient.objects.filter(pk=booked.patient_id).update(birth_date=born)
    token = manage.manage_token(appointment_id=booked.pk)
    assert manage.appointment_for_token(token) is not None  # still a minor: the parent's link works
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=11)):
        assert manage.appointment_for_token(token) is None
        fresh = manage.manage_token(appointment_id=booked.pk)  # a link made for the adult herself
        assert manage.appointment_for_token(fresh) is not None


def test_the_link_is_rate_limited(booked):
    browser = Client()
    path = reverse("portal:manage", args=[manage.manage_token(appointment_id=booked.pk)])
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=False):  # one rate window, whatever the clock
        for _ in range(manage.USES_PER_WINDOW):
            browser.get(path)
        limited = browser.post(path, {"action": "cancel"})
    assert limited.status_code == 429
    assert Appointment.objects.get(pk=booked.pk).status == Appointment.Status.BOOKED
