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


def _slots_at(facility, service, day: int, hour: int, count: int):
    import datetime as dt

    from django.utils import timezone

    from tests.factories import ContractFactory, ScheduleFactory, SlotFactory

    ContractFactory(facility=facility, service=service)
    schedule = ScheduleFactory(facility=facility, service=service)
    base = (timezone.localtime() + dt.timedelta(days=day)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )
    return [SlotFactory(schedule=schedule, start=base + dt.timedelta(minutes=20 * i)) for i in range(count)]


def test_results_are_grouped_by_place_earliest_first_with_more_dates_per_place(
    client, mammography, facility_a, facility_b
):
    a = _slots_at(facility_a, mammography, day=10, hour=8, count=12)
    b = _slots_at(facility_b, mammography, day=11, hour=15, count=2)
    page = client.get(reverse("portal:home"), {"service": mammography.pk})
    places = page.context["places"]
    assert [p.facility.pk for p in places] == [facility_a.pk, facility_b.pk]  # by first date
    assert [s.pk for s in places[0].slots] == [s.pk for s in a[:3]] and len(places[1].slots) == 2
    body = page.content.decode()
    assert body.index(facility_a.name) < body.index(facility_b.name)
    # More dates at one place, page by page.
    more = client.get(reverse("portal:home") + places[0].more_url)
    assert more.context["one_place"] == facility_a and [s.pk for s in more.context["slots"]] == [
        s.pk for s in a[:10]
    ]
    later = client.get(reverse("portal:home") + more.context["next_page"])
    assert [s.pk for s in later.context["slots"]] == [s.pk for s in a[10:]] and not later.context["next_page"]
    # Time of day: only the afternoon place.
    afternoon = client.get(reverse("portal:home"), {"service": mammography.pk, "time_of_day": "afternoon"})
    assert [p.facility.pk for p in afternoon.context["places"]] == [facility_b.pk]
    assert [s.pk for s in afternoon.context["places"][0].slots] == [s.pk for s in b]


def test_more_places_by_paging_in_two_queries_whatever_the_page(
    client, mammography, django_assert_num_queries
):
    from apps.portal import selectors
    from apps.portal.views import PLACES_PER_PAGE
    from tests.factories import FacilityFactory

    facilities = [FacilityFactory() for _ in range(PLACES_PER_PAGE + 1)]
    for n, facility in enumerate(facilities):
        _slots_at(facility, mammography, day=5 + n, hour=9, count=4)
    first = client.get(reverse("portal:home"), {"service": mammography.pk})
    assert len(first.context["places"]) == PLACES_PER_PAGE and first.context["next_page"]
    second = client.get(reverse("portal:home") + first.context["next_page"])
    assert [p.facility.pk for p in second.context["places"]] == [facilities[-1].pk]
    assert second.context["previous_page"] and not second.context["next_page"]
    with django_assert_num_queries(2):
        places, more = selectors.place_search(service=mammography, places=PLACES_PER_PAGE, per_place=3)
    assert more and [len(p.slots) for p in places] == [3] * PLACES_PER_PAGE
