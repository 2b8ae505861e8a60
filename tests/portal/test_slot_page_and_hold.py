"""The chosen slot survives signing in, and a hold can be extended before it ends (issue 18)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.notifications.channels import MemorySmsGateway
from apps.portal.views import HOLD_EXTENSIONS_MAX
from apps.scheduling.models import Slot
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def test_the_slot_chosen_before_signing_in_is_there_after_it(client, mammography, mammo_slots):
    slot = mammo_slots[1]
    page = reverse("portal:slot", args=[slot.pk])
    results = client.get(reverse("portal:home"), {"service": mammography.pk}).content.decode()
    assert f'href="/login/?next={page}"' in results
    anonymous = client.get(page).content.decode()
    assert "Wybrany termin" in anonymous and f"/login/?next={page}" in anonymous

    patient = PatientFactory(birth_date=dt.date(1972, 3, 14), sex="F", phone="+48500100200")
    sent = client.post(reverse("portal:login"), {"pesel": patient.pesel, "next": page})
    code = re.search(r"\b(\d{6})\b", MemorySmsGateway.outbox[-1]["text"]).group(1)
    signed_in = client.post(sent.url, {"code": code, "next": page})
    assert signed_in.status_code == 302 and signed_in.url == page
    body = client.get(page).content.decode()
    assert f'action="/slots/{slot.pk}/hold/"' in body
    client.post(reverse("portal:slot_hold", args=[slot.pk]))
    assert Slot.objects.get(pk=slot.pk).status == Slot.Status.HELD


def test_a_taken_slot_page_says_so(client, mammo_slots):
    Slot.objects.filter(pk=mammo_slots[0].pk).update(status=Slot.Status.BOOKED)
    body = client.get(reverse("portal:slot", args=[mammo_slots[0].pk])).content.decode()
    assert "Ten termin nie jest już wolny." in body and "/hold/" not in body
    assert client.get(reverse("portal:slot", args=[999999])).status_code == 404


def test_the_hold_warns_before_it_ends_and_can_be_extended(client_woman, woman, mammo_slots):
    slot = mammo_slots[0]
    client_woman.post(reverse("portal:slot_hold", args=[slot.pk]))
    Slot.objects.filter(pk=slot.pk).update(hold_until=timezone.now() + dt.timedelta(seconds=90))
    summary = client_woman.get(reverse("portal:booking_summary", args=[slot.pk])).content.decode()
    assert 'role="alert" data-hold-warning' in summary and 'data-warn-before="120"' in summary
    left = int(re.search(r'data-seconds-left="(\d+)"', summary).group(1))
    assert 0 < left <= 90
    assert 'name="extend"' in summary

    extended = client_woman.post(reverse("portal:slot_hold", args=[slot.pk]), {"extend": "1"}, follow=True)
    assert "Trzymamy dla Ciebie ten termin przez kolejne 10 min." in extended.content.decode()
    assert Slot.objects.get(pk=slot.pk).hold_until > timezone.now() + dt.timedelta(seconds=500)
    for _ in range(HOLD_EXTENSIONS_MAX - 1):
        client_woman.post(reverse("portal:slot_hold", args=[slot.pk]), {"extend": "1"})
    Slot.objects.filter(pk=slot.pk).update(hold_until=timezone.now() + dt.timedelta(seconds=90))
    refused = client_woman.post(reverse("portal:slot_hold", args=[slot.pk]), {"extend": "1"}, follow=True)
    assert "Nie można dłużej trzymać tego terminu" in refused.content.decode()
    assert Slot.objects.get(pk=slot.pk).hold_until < timezone.now() + dt.timedelta(seconds=100)
