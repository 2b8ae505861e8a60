"""A clear waiting list (issue 18): preferences shown before joining, the horizon stated, required
fields marked, and a patient already waiting is shown that entry instead of being offered to join."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from apps.booking import services as booking_services
from tests.factories import LocalityFactory, ReferralFactory
from tests.factories.portal import SignedInPatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def man(client):
    man = SignedInPatientFactory(birth_date=dt.date(1960, 3, 3), sex="M")
    client.force_login(man.user)
    return man


def test_joining_shows_the_preferences_the_horizon_and_the_required_fields(client, man, cardiology):
    LocalityFactory()  # Warszawa
    page = client.get(
        reverse("portal:home"), {"service": cardiology.pk, "city": "Warszawa", "radius_km": "25"}
    )
    body = page.content.decode()
    assert "Twoje preferencje" in body and "Warszawa i do 25 km od tej miejscowości" in body
    assert "Dowolny wolny termin" in body
    assert f"Poczekalnia szuka terminów do {cardiology.waitlist_lookahead_days} dni naprzód" in body
    join = body[body.index('action="/waitlist/join/"') :]
    for name in ("referral_number", "referral_code"):
        field = join[join.index(f'name="{name}"') - 200 : join.index(f'name="{name}"') + 200]
        assert "required" in field, name


def test_a_patient_already_waiting_is_not_offered_to_join_again(client, man, cardiology):
    referral = ReferralFactory(patient=man, service=cardiology)
    booking_services.waitlist_join(
        patient=man, service=cardiology, referral_number=referral.number, referral_code=referral.access_code
    )
    body = client.get(reverse("portal:home"), {"service": cardiology.pk}).content.decode()
    assert "Jesteś już w Poczekalni na to świadczenie" in body
    assert 'action="/waitlist/join/"' not in body
    assert reverse("portal:waitlist") in body
    waitlist = client.get(reverse("portal:waitlist")).content.decode()
    assert f"Szukamy terminów do {cardiology.waitlist_lookahead_days} dni naprzód" in waitlist
    assert "To Twój jedyny wpis na to świadczenie." in waitlist
