"""A clear waiting list (issue 18): a waiting patient sees every preference their entry holds, the
horizon and that it is their one entry for the service, and changes the preferences on a form (checked,
recorded) without losing their place in the queue, which the page says."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.booking import services as booking_services
from apps.booking.models import Registration
from apps.booking.selectors import waitlist_position
from apps.outbox.models import OutboxEvent
from tests.factories import (
    ContractFactory,
    EntitlementFactory,
    FacilityFactory,
    LocalityFactory,
    PatientEntitlementFactory,
    PatientFactory,
    PractitionerFactory,
    ReferralFactory,
    VoivodeshipFactory,
)
from tests.factories.portal import SignedInPatientFactory
from tests.portal.test_errors_and_dead_ends import assert_described_targets_exist

pytestmark = pytest.mark.django_db


@pytest.fixture
def man(client):
    man = SignedInPatientFactory(birth_date=dt.date(1960, 3, 3), sex="M")
    client.force_login(man.user)
    return man


def join(patient, service, **prefs):
    referral = ReferralFactory(patient=patient, service=service)
    return booking_services.waitlist_join(
        patient=patient,
        service=service,
        referral_number=referral.number,
        referral_code=referral.access_code,
        **prefs,
    )


def day(days: int) -> dt.date:
    return timezone.localdate() + dt.timedelta(days=days)


def lesser_poland():
    return VoivodeshipFactory(teryt="12", name="małopolskie", name_en="Lesser Poland")


def krakow():
    return LocalityFactory(
        simc="0950463", name="Kraków", voivodeship=lesser_poland(), lat=50.0647, lon=19.945
    )


@pytest.fixture
def places(cardiology):
    """Two Warsaw places with a cardiology contract, one without, one in Kraków."""
    warsaw = LocalityFactory()
    first = FacilityFactory(name="Kardio Centrum", locality=warsaw)
    second = FacilityFactory(name="Serce Mokotów", locality=warsaw)
    for facility in (first, second):
        ContractFactory(facility=facility, service=cardiology)
    FacilityFactory(name="Bez umowy", locality=warsaw)
    far = FacilityFactory(name="Kraków Serce", locality=krakow())
    ContractFactory(facility=far, service=cardiology)
    return warsaw, first, second, far


def test_the_waiting_list_shows_every_preference_and_links_to_change_them(client, man, cardiology, places):
    warsaw, first, _second, _far = places
    PatientEntitlementFactory(patient=man, entitlement=EntitlementFactory())
    practitioner = PractitionerFactory(facility=first, name="dr Anna Serce")
    entry = join(
        man,
        cardiology,
        locality=warsaw,
        max_distance_km=25,
        facility=first,
        practitioner=practitioner,
        date_from=dt.date(2030, 3, 5),
        date_to=dt.date(2030, 4, 30),
    )
    join(PatientFactory(), cardiology)  # behind him: the donor of merit goes first

    body = client.get(reverse("portal:waitlist")).content.decode()
    for text in (
        "Twoje miejsce w kolejce: 1",
        f"<dt>W Poczekalni od</dt><dd>{timezone.localtime(entry.joined_at):%-d}",
        "<dt>Kategoria medyczna</dt><dd>stabilny</dd>",
        "<dt>Uprawnienie do świadczeń poza kolejnością</dt><dd>Zasłużony Honorowy Dawca Krwi</dd>",
        "<dd>Warszawa i do 25 km od tej miejscowości</dd>",
        f'<dd><a href="{reverse("portal:facility", args=[first.pk])}">Kardio Centrum</a></dd>',
        "<dt>Lekarz</dt><dd>dr Anna Serce</dd>",
        "<dd>5 marca 2030 \N{EN DASH} 30 kwietnia 2030</dd>",
        f"Szukamy terminów do {cardiology.waitlist_lookahead_days} dni naprzód",
        "To Twój jedyny wpis na to świadczenie.",
        "Zmiana preferencji go nie zmienia.",
        f'href="{reverse("portal:waitlist_preferences", args=[entry.pk])}"',
    ):
        assert text in body, text
    client.cookies["django_language"] = "en"
    english = client.get(reverse("portal:waitlist")).content.decode()
    assert "<dt>Medical category</dt><dd>stable</dd>" in english
    assert (
        "<dd>5 March 2030 \N{EN DASH} 30 April 2030</dd>" in english and "Change the preferences" in english
    )


def test_the_form_shows_the_current_preferences_the_queue_rule_and_the_places_of_the_area(
    client, man, cardiology, places
):
    warsaw, _first, second, _far = places
    entry = join(man, cardiology, locality=warsaw, facility=second, date_to=dt.date(2030, 4, 30))
    response = client.get(reverse("portal:waitlist_preferences", args=[entry.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Zachowujesz swoje miejsce w kolejce (1)" in body and "a nie preferencje" in body
    assert f"Szukamy terminów do {cardiology.waitlist_lookahead_days} dni naprzód" in body
    form = response.context["form"]
    assert form["city"].value() == "Warszawa" and form["date_to"].value() == dt.date(2030, 4, 30)
    assert str(form["facility"].value()) == str(second.pk)
    # The places with a contract in Warsaw, by name; not the one without a contract, not Kraków.
    offered = [label for value, label in form.fields["facility"].widget.choices if value]
    assert offered == ["Kardio Centrum (Warszawa)", "Serce Mokotów (Warszawa)"]
    assert f'<option value="{second.pk}" selected>' in body


def test_saving_changes_the_preferences_and_keeps_the_place(client, man, cardiology, places):
    warsaw, first, _second, _far = places
    ahead = join(PatientFactory(), cardiology)
    entry = join(man, cardiology, voivodeship=warsaw.voivodeship)
    join(PatientFactory(), cardiology)
    joined_at = entry.joined_at

    response = client.post(
        reverse("portal:waitlist_preferences", args=[entry.pk]),
        {
            "voivodeship": "",
            "city": "Warszawa",
            "radius_km": "25",
            "facility": str(first.pk),
            "date_from": day(3).strftime("%d.%m.%Y"),
            "date_to": day(60).strftime("%d.%m.%Y"),
        },
        follow=True,
    )

    assert response.redirect_chain[-1][0] == reverse("portal:waitlist")
    assert (
        "Zapisaliśmy Twoje preferencje. Twoje miejsce w kolejce się nie zmieniło."
        in response.content.decode()
    )
    entry.refresh_from_db()
    assert (entry.voivodeship_id, entry.locality_id, entry.max_distance_km, entry.facility_id) == (
        None,
        warsaw.pk,
        25,
        first.pk,
    )
    assert (entry.date_from, entry.date_to, entry.joined_at) == (day(3), day(60), joined_at)
    assert waitlist_position(registration=entry) == 2 and waitlist_position(registration=ahead) == 1
    event = OutboxEvent.objects.get(type="registration.preferences_changed", aggregate_id=entry.pk)
    assert event.payload["changes"] == [
        "date_from",
        "date_to",
        "voivodeship",
        "locality",
        "max_distance_km",
        "facility",
    ]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"city": "Atlantyda"}, "city", "Nie znamy tej miejscowości"),
        ({"radius_km": "25"}, "city", "Podaj miejscowość"),
        ({"date_from": "20.05.2030", "date_to": "10.05.2030"}, "date_to", "nie może być wcześniejsza"),
        ({"date_from": "2030-13-45"}, "date_from", ""),
        ({"city": "Warszawa", "facility": "far"}, "facility", "To miejsce nie leży w wybranym obszarze."),
        ({"voivodeship": "12", "facility": "first"}, "facility", "To miejsce nie leży w wybranym obszarze."),
        ({"facility": "999999"}, "facility", ""),
    ],
)
def test_wrong_preferences_are_explained_at_their_field_and_change_nothing(
    client, man, cardiology, places, data, field, message
):
    _warsaw, first, _second, far = places
    lesser_poland()
    entry = join(man, cardiology)
    data = dict(data)
    if data.get("facility") in ("far", "first"):
        data["facility"] = str(far.pk if data["facility"] == "far" else first.pk)
    response = client.post(reverse("portal:waitlist_preferences", args=[entry.pk]), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    body = response.content.decode()
    assert message in body
    page = assert_described_targets_exist(response)
    assert page.alerts and f"id_{field}_error" in page.ids
    entry.refresh_from_db()
    assert (entry.locality_id, entry.facility_id, entry.date_from, entry.voivodeship_id) == (
        None,
        None,
        None,
        None,
    )
    assert not OutboxEvent.objects.filter(type="registration.preferences_changed").exists()


def test_after_a_wrong_area_the_select_lists_the_places_of_the_new_area(client, man, cardiology, places):
    _warsaw, first, _second, far = places
    entry = join(man, cardiology)
    response = client.post(
        reverse("portal:waitlist_preferences", args=[entry.pk]), {"city": "Kraków", "facility": str(first.pk)}
    )
    assert response.status_code == 400
    offered = {value for value, _label in response.context["form"].fields["facility"].widget.choices if value}
    assert offered == {far.pk, first.pk}  # Kraków's place, and the one chosen (so the error names it)


def test_the_same_town_name_keeps_the_same_town(client, man, cardiology):
    small = LocalityFactory(simc="0000001", name="Nowa Wieś", voivodeship=lesser_poland(), population=300)
    LocalityFactory(simc="0000002", name="Nowa Wieś", population=3000)  # a bigger one in Masovia
    entry = join(man, cardiology, locality=small)
    client.post(
        reverse("portal:waitlist_preferences", args=[entry.pk]),
        {"city": "Nowa Wieś", "date_to": day(40).strftime("%d.%m.%Y")},
    )
    entry.refresh_from_db()
    assert entry.locality_id == small.pk and entry.date_to == day(40)


def test_a_doctor_stays_with_their_place_and_goes_with_it(client, man, cardiology, places):
    warsaw, first, second, _far = places
    doctor = PractitionerFactory(facility=first)
    entry = join(man, cardiology, locality=warsaw, facility=first, practitioner=doctor)
    url = reverse("portal:waitlist_preferences", args=[entry.pk])
    assert doctor.name in client.get(url).content.decode()

    client.post(url, {"city": "Warszawa", "facility": str(first.pk), "date_to": day(30).strftime("%d.%m.%Y")})
    entry.refresh_from_db()
    assert entry.practitioner_id == doctor.pk and entry.date_to == day(30)

    client.post(url, {"city": "Warszawa", "facility": str(second.pk)})
    entry.refresh_from_db()
    assert entry.facility_id == second.pk and entry.practitioner_id is None


def test_someone_elses_or_a_finished_entry_is_not_changed(client, man, cardiology, places):
    theirs = join(PatientFactory(), cardiology)
    for method in (client.get, client.post):
        # Another patient's entry is as if it did not exist (the portal's rule for objects in URLs).
        response = method(reverse("portal:waitlist_preferences", args=[theirs.pk]), {"city": "Warszawa"})
        assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.locality_id is None
    mine = join(man, cardiology)
    booking_services.waitlist_leave(registration=mine)
    for method in (client.get, client.post):
        response = method(
            reverse("portal:waitlist_preferences", args=[mine.pk]), {"city": "Warszawa"}, follow=True
        )
        assert response.redirect_chain[-1][0] == reverse("portal:waitlist")
        assert "Tego wpisu nie ma już w Poczekalni." in response.content.decode()
    mine.refresh_from_db()
    assert mine.status == Registration.Status.CLOSED and mine.locality_id is None


def test_joining_from_one_places_search_keeps_that_place(client, man, cardiology, places):
    _warsaw, first, _second, _far = places
    page = client.get(reverse("portal:home"), {"service": cardiology.pk, "facility": first.pk})
    body = page.content.decode()
    assert "<dt>Miejsce</dt><dd>Kardio Centrum</dd>" in body
    referral = ReferralFactory(patient=man, service=cardiology)
    join_form = page.context["join_form"]
    data = {name: join_form[name].value() or "" for name in join_form.fields}
    data |= {"referral_number": referral.number, "referral_code": referral.access_code}
    client.post(reverse("portal:waitlist_join"), data)
    entry = Registration.objects.get(patient=man)
    assert entry.status == Registration.Status.WAITING and entry.facility_id == first.pk


def test_dates_found_say_the_patient_is_already_waiting_or_booked(client, man, cardiology, facility_a):
    from tests.factories import ScheduleFactory, SlotFactory

    ContractFactory(facility=facility_a, service=cardiology)
    schedule = ScheduleFactory(facility=facility_a, service=cardiology)
    slots = [SlotFactory(schedule=schedule) for _ in range(2)]
    join(PatientFactory(), cardiology)
    entry = join(man, cardiology)
    body = client.get(reverse("portal:home"), {"service": cardiology.pk}).content.decode()
    assert "Jesteś w Poczekalni na to świadczenie (Twoje miejsce w kolejce: 2)." in body
    assert "rezerwacja zastąpi Twój wpis w Poczekalni" in body and 'href="/waitlist/"' in body

    booked = booking_services.appointment_book(slot_id=slots[0].pk, patient=man, channel="web")
    assert booked.registration_id == entry.pk  # the entry became the booking, as the page said
    body = client.get(reverse("portal:home"), {"service": cardiology.pk}).content.decode()
    assert "Masz już wizytę na to świadczenie" in body
    assert f'href="{reverse("portal:appointment_reschedule", args=[booked.pk])}"' in body


def test_no_page_lists_every_facility_of_the_country(client, man, cardiology, places):
    """The place select lists the places a view offers; a form rendered without them (the join error
    page, a form before a search) keeps a chosen place as a hidden field, never a national list."""
    from apps.portal.forms import SearchForm

    _warsaw, first, _second, _far = places
    page = client.post(reverse("portal:waitlist_join"), {"service": cardiology.pk, "facility": first.pk})
    body = page.content.decode()
    assert page.status_code == 400 and '<select name="facility"' not in body
    assert f'<input type="hidden" name="facility" value="{first.pk}"' in body
    unbound = str(SearchForm()["facility"])
    assert unbound.count("<option") == 1 and "Kardio Centrum" not in unbound
