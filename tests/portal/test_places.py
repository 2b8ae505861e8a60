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


def test_more_places_by_paging_in_three_queries_whatever_the_page(
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
    # The area's places, their first slots, the page's places with their earliest slots.
    with django_assert_num_queries(3):
        places, more = selectors.place_search(service=mammography, places=PLACES_PER_PAGE, per_place=3)
    assert more and [len(p.slots) for p in places] == [3] * PLACES_PER_PAGE
    with django_assert_num_queries(3):
        selectors.place_search(service=mammography, places=PLACES_PER_PAGE, per_place=3, offset=5)


def test_walking_the_slots_in_date_order_ranks_and_pages_the_places_as_probing_each_one(
    mammography, monkeypatch
):
    """GIVEN 13 places north of Warsaw (4 beyond 50 km), whose first dates tie by five (the nearest
    first, then the lowest id; not always the lowest id the nearest), each with three dates in a row and
    later ones in the afternoon and evening WHEN the places are ranked by walking the service's slots
    in date order, with walks of any length THEN every page and its "more" are what probing each place
    gives: the walk answers when it saw enough places before its last slot, or reached the end, and the
    probes answer otherwise."""
    import datetime as dt
    from collections import Counter

    from django.utils import timezone

    from apps.portal import selectors, sql
    from apps.scheduling.selectors import Near
    from tests.factories import (
        ContractFactory,
        FacilityFactory,
        LocalityFactory,
        ScheduleFactory,
        SlotFactory,
    )

    warsaw = LocalityFactory()
    base = timezone.localtime().replace(hour=7, minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
    # Degrees of latitude north (x 5.56 km) of the places in the order they are made; their first dates
    # tie by five, where a place made later is often nearer.
    for n, away in enumerate([6, 4, 8, 2, 0, 3, 9, 1, 7, 5, 10, 12, 11]):
        facility = FacilityFactory(locality=warsaw, lat=warsaw.lat + 0.05 * away, lon=warsaw.lon)
        ContractFactory(facility=facility, service=mammography)
        schedule = ScheduleFactory(facility=facility, service=mammography)
        first = base + dt.timedelta(hours=n // 5)
        for later in (0, 20, 40, 5 * 60, 36 * 60):  # minutes: three in a row, the afternoon, the next evening
            begin = first + dt.timedelta(minutes=later)
            SlotFactory(schedule=schedule, start=begin, end=begin + dt.timedelta(minutes=20))
    near = Near(lat=warsaw.lat, lon=warsaw.lon, radius_km=50)
    log: list[str] = []  # the statements that ranked the places of one page
    for name, key in (("walk_first_slots", "walk"), ("first_slots", "probe")):
        original = getattr(sql, name)

        def counted(*args, _original=original, _key=key, **kwargs):
            log.append(_key)
            return _original(*args, **kwargs)

        monkeypatch.setattr(sql, name, counted)
    answered, ways = Counter(), Counter()

    def pages(**area) -> list:
        out, offset = [], 0
        while True:
            log.clear()
            places, more = selectors.place_search(
                service=mammography, places=2, per_place=2, offset=offset, **area
            )
            answered[" then ".join(log)] += 1
            out.append(
                ([(p.facility.pk, p.first, p.distance_km, [s.pk for s in p.slots]) for p in places], more)
            )
            if not more:
                return out
            offset += 2

    for area in ({}, {"near": near}, {"near": near, "time_of_day": "evening"}):
        monkeypatch.setattr(selectors, "WALK_FROM_PLACES", 1_000)
        answered.clear()
        probed = pages(**area)
        assert set(answered) == {"probe"}
        shown = [place for page, _more in probed for place in page]
        firsts = [(first, distance or 0.0, pk) for pk, first, distance, _slots in shown]
        assert firsts == sorted(firsts) and len(shown) == (13 if not area else 9)
        monkeypatch.setattr(selectors, "WALK_FROM_PLACES", 1)
        for rows_per_place in (1, 2, 4, 8, 48):
            monkeypatch.setattr(selectors, "WALK_ROWS_PER_PLACE", rows_per_place)
            assert pages(**area) == probed, (area, rows_per_place)
        if "time_of_day" in area:
            assert set(answered) == {"probe"}  # a walk in date order would pass every other hour
        ways.update(answered)
    assert ways["walk"] > 10 and ways["walk then probe"] > 10  # walks answered pages, or fell short


def test_a_place_filter_lists_the_places_of_the_area_and_survives_paging(client, mammography, facility_a):
    """GIVEN two places in Warsaw with dates and one place without a contract WHEN the patient picks one
    place in the filter (with a time of day) THEN only its dates are shown, page by page, with both
    filters kept; "show all places" drops only the place."""
    import datetime as dt

    from tests.factories import FacilityFactory, SlotFactory

    other = FacilityFactory(name="Druga przychodnia")
    FacilityFactory(name="Bez umowy")  # no contract: not a choice
    _slots_at(facility_a, mammography, day=5, hour=8, count=2)
    later = _slots_at(other, mammography, day=6, hour=12, count=14)
    SlotFactory(schedule=later[0].schedule, start=later[0].start + dt.timedelta(days=1, hours=-7))  # morning
    searched = client.get(reverse("portal:home"), {"service": mammography.pk, "city": "Warszawa"})
    form = searched.context["form"]
    assert [label for value, label in form.fields["facility"].widget.choices] == [
        "Wszystkie miejsca w wybranym obszarze",
        "Druga przychodnia (Warszawa)",
        "Facility A (Warszawa)",
    ]
    body = searched.content.decode()
    assert '<label for="id_facility">Miejsce</label>' in body and 'name="facility"' in body

    query = {"service": mammography.pk, "city": "Warszawa", "facility": other.pk, "time_of_day": "afternoon"}
    one = client.get(reverse("portal:home"), query)
    assert one.context["one_place"] == other
    assert [s.pk for s in one.context["slots"]] == [s.pk for s in later[:10]]  # afternoons only
    assert f'<option value="{other.pk}" selected>' in one.content.decode()
    next_page = one.context["next_page"]
    assert f"facility={other.pk}" in next_page and "time_of_day=afternoon" in next_page
    second = client.get(reverse("portal:home") + next_page)
    assert [s.pk for s in second.context["slots"]] == [s.pk for s in later[10:14]]
    assert not second.context["next_page"] and "facility=" in second.context["previous_page"]
    everywhere = client.get(reverse("portal:home") + second.context["all_places"])
    assert everywhere.context["one_place"] is None and "time_of_day=afternoon" in second.context["all_places"]
    assert [p.facility.pk for p in everywhere.context["places"]] == [other.pk]


def test_too_many_places_to_list_ask_for_a_narrower_area(client, mammography, facility_a, monkeypatch):
    from apps.portal import selectors
    from tests.factories import FacilityFactory

    monkeypatch.setattr(selectors, "FACILITY_CHOICES_MAX", 1)
    _slots_at(facility_a, mammography, day=5, hour=8, count=1)
    _slots_at(FacilityFactory(), mammography, day=5, hour=9, count=1)
    page = client.get(reverse("portal:home"), {"service": mammography.pk, "facility": facility_a.pk})
    body = page.content.decode()
    assert not page.context["form"].places_offered
    assert "wybierz województwo lub miejscowość: wtedy wybierzesz tu miejsce" in body
    assert f'<input type="hidden" name="facility" value="{facility_a.pk}"' in body  # the choice is kept
    assert page.context["one_place"] == facility_a


def test_the_facility_page_links_to_its_dates_for_each_service(client, mammography, cardiology, facility_a):
    from tests.factories import ContractFactory

    _slots_at(facility_a, mammography, day=5, hour=8, count=1)
    ContractFactory(facility=facility_a, service=cardiology)
    body = client.get(reverse("portal:facility", args=[facility_a.pk])).content.decode()
    assert "<h2>Terminy w tym miejscu</h2>" in body
    for service in (mammography, cardiology):
        link = f'href="/?service={service.pk}&amp;facility={facility_a.pk}"'
        assert link in body and f"Wolne terminy tutaj: {service.name_pl}" in body
    one = client.get(reverse("portal:home"), {"service": mammography.pk, "facility": facility_a.pk})
    assert one.context["one_place"] == facility_a and len(one.context["slots"]) == 1


def test_the_area_read_once_serves_the_place_select_and_is_read_again_only_for_a_longer_list(
    mammography, monkeypatch, django_assert_num_queries
):
    from apps.portal import selectors
    from tests.factories import FacilityFactory

    for name in ("Cecha", "Alfa", "Beta"):
        _slots_at(FacilityFactory(name=name), mammography, day=5, hour=9, count=1)
    area = selectors.area_places(service=mammography)
    with django_assert_num_queries(0):
        listed = selectors.facilities_in_area(service=mammography, area=area)
    assert [(p.name, p.locality_name) for p in listed] == [
        ("Alfa", "Warszawa"),
        ("Beta", "Warszawa"),
        ("Cecha", "Warszawa"),
    ]
    monkeypatch.setattr(selectors, "FACILITY_CHOICES_MAX", 2)
    area = selectors.area_places(service=mammography)  # too many to name for a list of 2
    assert len(area.distances) == 3 and area.choices == []
    with django_assert_num_queries(0):
        assert selectors.facilities_in_area(service=mammography, area=area) is None
    with django_assert_num_queries(1):
        longer = selectors.facilities_in_area(service=mammography, area=area, limit=3)
    assert longer == listed


def test_the_paging_links_write_the_query_as_django_s_querydict_does(rf):
    from apps.portal.views import _page_query

    query = "service=3&city=Zielona+G%C3%B3ra&x=1&x=2&page=4&empty=&facility=9&note=a%26b%3Dc+%2B"
    for path in (f"/?{query}", "/?service=3", "/"):
        request = rf.get(path)
        for page, changes in [(1, {}), (5, {"facility": None}), (2, {"facility": 12, "new": "ż ł"})]:
            expected = request.GET.copy()
            expected["page"] = str(page)
            for key, value in changes.items():
                if value is None:
                    expected.pop(key, None)
                else:
                    expected[key] = str(value)
            assert _page_query(request, page, **changes) == f"?{expected.urlencode()}", (path, page)
