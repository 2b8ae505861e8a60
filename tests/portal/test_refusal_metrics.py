"""Refusals on the patient pages are counted by problem code (issue 20), as the API's are."""

from django.urls import reverse
from prometheus_client import REGISTRY

from apps.scheduling.models import Slot


def _refused(code: str) -> float:
    return REGISTRY.get_sample_value("cer_portal_refusals_total", {"code": code}) or 0.0


def test_a_refusal_shown_to_a_patient_is_counted_by_its_code(client_woman, mammo_slots):
    slot = mammo_slots[0]
    Slot.objects.filter(pk=slot.pk).update(status=Slot.Status.BOOKED)  # someone else was faster
    before = _refused("slot_not_free")

    response = client_woman.post(reverse("portal:slot_hold", args=[slot.pk]))

    assert response.status_code == 302
    assert _refused("slot_not_free") == before + 1


def test_an_expired_hold_on_the_summary_page_is_counted(client_woman, mammo_slots):
    before = _refused("hold_expired")

    response = client_woman.get(reverse("portal:booking_summary", args=[mammo_slots[0].pk]))

    assert response.status_code == 302
    assert _refused("hold_expired") == before + 1
