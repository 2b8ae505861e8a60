"""The staff view of the central waiting list: national positions in the booking core's order, a
voivodeship view that keeps them, and the stored explanation of every allocation (read-only)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AccessLog
from apps.booking.models import Registration
from apps.booking.selectors import waitlist_position
from apps.core import pesel
from tests.factories import PatientFactory, VoivodeshipFactory
from tests.factories.reconciliation import AppointmentFactory, RegistrationFactory

pytestmark = pytest.mark.django_db
URL = reverse("staff:waitlist")


@pytest.fixture
def queue(cardiology):
    now = timezone.now()
    malopolskie = VoivodeshipFactory(teryt="12", name="małopolskie", name_en="Lesser Poland")

    def waiting(**kwargs):
        return RegistrationFactory(service=cardiology, status=Registration.Status.WAITING, **kwargs)

    entries = {
        "early": waiting(joined_at=now - dt.timedelta(days=30)),
        "late": waiting(joined_at=now - dt.timedelta(days=1), voivodeship=malopolskie),
        "urgent": waiting(joined_at=now - dt.timedelta(days=2), urgent=True),
        "entitled": waiting(joined_at=now - dt.timedelta(hours=1), priority=10, voivodeship=malopolskie),
    }
    return {"entries": entries, "malopolskie": malopolskie, "cardiology": cardiology}


def test_the_queue_shows_each_entrys_national_position_in_allocation_order(staff_client, staff_user, queue):
    page = staff_client.get(URL, {"service": "KARDIO_1"})

    assert page.status_code == 200
    shown = [(item["entry"].pk, item["entry"].position) for item in page.context["entries"]]
    e = queue["entries"]
    assert shown == [(e["entitled"].pk, 1), (e["urgent"].pk, 2), (e["early"].pk, 3), (e["late"].pk, 4)]
    # The same positions as the booking core's own count.
    assert all(waitlist_position(registration=Registration.objects.get(pk=pk)) == n for pk, n in shown)
    text = page.content.decode()
    assert pesel.mask(e["early"].patient.pesel) in text and e["early"].patient.pesel not in text
    assert AccessLog.objects.filter(actor_id=str(staff_user.pk), action="staff:waitlist").exists()


def test_a_voivodeship_view_keeps_the_national_positions(staff_client, queue):
    page = staff_client.get(URL, {"service": "KARDIO_1", "voivodeship": queue["malopolskie"].pk})

    shown = [(item["entry"].pk, item["entry"].position) for item in page.context["entries"]]
    assert shown == [(queue["entries"]["entitled"].pk, 1), (queue["entries"]["late"].pk, 4)]


def test_every_allocation_shows_why_the_slot_went_to_whom(staff_client, queue, facility_a):
    AppointmentFactory(
        patient=PatientFactory(),
        service=queue["cardiology"],
        facility=facility_a,
        channel="waitlist",
        allocation={"rule": "waitlist", "queue_position": 1, "order": "entitlement priority, then urgent"},
    )

    page = staff_client.get(URL, {"service": "KARDIO_1"})

    text = page.content.decode()
    assert "queue_position" in text and "entitlement priority, then urgent" in text


def test_without_a_known_service_it_is_a_form_error_not_a_500(staff_client, queue):
    page = staff_client.get(URL, {"service": "NOPE"})
    assert page.status_code == 200 and "errorlist" in page.content.decode()


def test_an_empty_queue_still_shows_its_sections(staff_client, cardiology):
    page = staff_client.get(URL, {"service": "KARDIO_1"})

    text = page.content.decode()
    assert "Nikt nie czeka." in text and "Brak przydziałów." in text
