"""Outcome pages (issue 18): a booking ends on a panel that takes the focus and says what next; a
cancelled, moved or past appointment says so and offers nothing that cannot be done."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.booking import services as booking_services
from apps.booking.models import Appointment
from apps.scheduling.models import Slot
from tests.factories import AppointmentFactory, ContractFactory, ReferralFactory, ScheduleFactory, SlotFactory
from tests.factories.portal import SignedInPatientFactory

pytestmark = pytest.mark.django_db


def test_after_booking_a_focused_panel_says_what_happens_next(client, cardiology, facility_a):
    man = SignedInPatientFactory(birth_date=dt.date(1960, 3, 3), sex="M")
    referral = ReferralFactory(patient=man, service=cardiology, access_code="4321")
    ContractFactory(facility=facility_a, service=cardiology)
    start = (timezone.localtime() + dt.timedelta(days=40)).replace(hour=9, minute=0, second=0, microsecond=0)
    slot = SlotFactory(schedule=ScheduleFactory(facility=facility_a, service=cardiology), start=start)
    client.force_login(man.user)
    client.post(reverse("portal:slot_hold", args=[slot.pk]))
    booked = client.post(
        reverse("portal:booking_summary", args=[slot.pk]),
        {"book": "1", "referral_number": referral.number, "referral_code": "4321"},
        follow=True,
    )
    appointment = Appointment.objects.get(patient=man)
    body = booked.content.decode()
    assert 'class="confirmation-panel" tabindex="-1" autofocus data-focus-panel' in body
    assert '<h1 id="booked-title">Twoja wizyta jest zarezerwowana</h1>' in body
    assert "Co dalej" in body
    assert reverse("portal:appointment_ics", args=[appointment.pk]) in body  # add to calendar
    assert f"Miej przy sobie numer e-skierowania: {referral.number}." in body  # what to bring
    assert "zmień go albo odwołaj wizytę" in body  # how to cancel or reschedule
    assert reverse("portal:appointment_cancel", args=[appointment.pk]) in body
    # The panel is the outcome of the booking, not of every visit to the page.
    again = client.get(reverse("portal:appointment", args=[appointment.pk])).content.decode()
    assert "confirmation-panel" not in again and f"<h1>{cardiology.name_pl}</h1>" in again


@pytest.fixture
def appointment(woman, mammography, facility_a):
    return AppointmentFactory(
        registration__patient=woman,
        slot__schedule__facility=facility_a,
        slot__schedule__service=mammography,
        slot__start=timezone.now() + dt.timedelta(days=3),
    )


def _offers_actions(body: str, appointment: Appointment) -> bool:
    return any(
        reverse(name, args=[appointment.pk]) in body
        for name in (
            "portal:appointment_cancel",
            "portal:appointment_reschedule",
            "portal:appointment_confirm",
        )
    )


def test_a_cancelled_appointment_says_so_and_offers_no_cancel(client_woman, appointment):
    page = reverse("portal:appointment", args=[appointment.pk])
    assert _offers_actions(client_woman.get(page).content.decode(), appointment)
    booking_services.appointment_cancel_by_patient(appointment=appointment)
    body = client_woman.get(page).content.decode()
    assert "Ta wizyta jest odwołana. Nie odbędzie się." in body
    assert not _offers_actions(body, appointment)
    assert "Usuń ją z mojego kalendarza" in body
    # The cancel and reschedule pages of a cancelled appointment no longer say "it stays booked".
    for name in ("portal:appointment_cancel", "portal:appointment_reschedule"):
        response = client_woman.get(reverse(name, args=[appointment.pk]))
        assert response.status_code == 302 and response["Location"] == page


def test_a_moved_appointment_points_at_the_new_date(client_woman, appointment, mammography, facility_a):
    later = SlotFactory(schedule=appointment.slot.schedule, start=appointment.start + dt.timedelta(days=1))
    new = booking_services.appointment_reschedule(appointment=appointment, new_slot_id=later.pk)
    body = client_woman.get(reverse("portal:appointment", args=[appointment.pk])).content.decode()
    assert "Ta wizyta została przeniesiona na inny termin." in body
    assert reverse("portal:appointment", args=[new.pk]) in body
    assert not _offers_actions(body, appointment)


def test_a_past_appointment_says_so(client_woman, appointment):
    # The slot moves with it: an appointment's start is its slot's (the database's key is both).
    past = timezone.now() - dt.timedelta(days=2)
    Slot.objects.filter(pk=appointment.slot_id).update(start=past, end=past + dt.timedelta(minutes=20))
    Appointment.objects.filter(pk=appointment.pk).update(start=past, status=Appointment.Status.ATTENDED)
    client_woman.cookies["django_language"] = "en"
    body = client_woman.get(reverse("portal:appointment", args=[appointment.pk])).content.decode()
    assert "This appointment is in the past." in body
    assert not _offers_actions(body, appointment) and "calendar" not in body
