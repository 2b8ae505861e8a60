"""Choosing a place (issue 18): each result links to a facility page with what a patient needs to get
there, and the distance says what it is measured from."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.catalog.models import Facility

pytestmark = pytest.mark.django_db


def test_the_facility_page_has_address_phone_hours_access_map_and_nfz(client, mammo_slots, facility_a):
    Facility.objects.filter(pk=facility_a.pk).update(
        postcode="00-950",
        phone="+48 22 123 45 67",
        opening_hours="pon.-pt. 8:00-18:00",
        has_ramp=True,
        has_lift=False,
        has_parking=None,
        has_accessible_toilet=True,
    )
    results = client.get(reverse("portal:home"), {"service": mammo_slots[0].service_id}).content.decode()
    page_url = reverse("portal:facility", args=[facility_a.pk])
    assert f'href="{page_url}"' in results
    body = client.get(page_url).content.decode()
    assert "ul. Testowa 1, 00-950 Warszawa" in body
    assert 'href="tel:+48221234567"' in body and "pon.-pt. 8:00-18:00" in body
    assert "Wizyty rezerwowane tutaj są bezpłatne w ramach umowy z NFZ." in body
    assert "<dt>Wejście bez schodów lub podjazd</dt><dd>tak</dd>" in body
    assert "<dt>Winda</dt><dd>nie</dd>" in body and "<dt>Parking</dt><dd>brak informacji</dd>" in body
    lat, lon = f"{facility_a.lat:.5f}", f"{facility_a.lon:.5f}"
    assert f"https://www.openstreetmap.org/?mlat={lat}&amp;mlon={lon}" in body
    assert f"https://www.openstreetmap.org/directions?to={lat}%2C{lon}" in body
    client.cookies["django_language"] = "en"
    english = client.get(page_url).content.decode()
    assert "free of charge under an NFZ contract" in english and "<dt>Lift</dt><dd>no</dd>" in english
    assert client.get(reverse("portal:facility", args=[999999])).status_code == 404


def test_the_distance_says_what_it_is_measured_from(client, mammo_slots):
    body = client.get(
        reverse("portal:home"), {"service": mammo_slots[0].service_id, "city": "Warszawa", "radius_km": "25"}
    ).content.decode()
    assert "0 km od centrum miejscowości Warszawa" in body and "km stąd" not in body


def test_demo_facilities_have_the_page_details(db):
    import io

    from apps.catalog.demo import demo_seed

    demo_seed(out=io.StringIO())
    facilities = Facility.objects.filter(nfz_code__contains="/DEMO/")
    assert facilities.exists()
    assert not facilities.filter(phone="").exists() and not facilities.filter(postcode="").exists()
    assert not facilities.filter(opening_hours="").exists() and not facilities.filter(has_ramp=None).exists()
