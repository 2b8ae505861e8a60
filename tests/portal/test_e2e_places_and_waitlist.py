"""Issue 18 in a real headless Chromium: a patient chooses between two places (results grouped by place,
more places and more dates by paging, the place filter beside the time of day, kept across pages, the
facility page and its link to its dates) and books at the second one; a waiting patient sees and
changes their preferences, keeping their place. axe-core on every state, in Polish and in English,
and every `aria-describedby` names an existing element (`Accessibility.check`).
"""

from __future__ import annotations

import datetime as dt
import re

from django.conf import settings
from django.test import Client
from django.utils import timezone

from apps.booking import services as booking_services
from apps.booking.models import Appointment, Registration
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    PatientFactory,
    ReferralFactory,
    ScheduleFactory,
    SlotFactory,
)
from tests.factories.portal import SignedInPatientFactory
from tests.portal.test_e2e import Accessibility, pytestmark

pytestmark = pytestmark  # e2e, slow, skipped without Chromium (CI requires it)


def sign_in(page, live_server, patient) -> None:
    """The session of a signed-in patient (the sign-in itself is tested in test_e2e.py)."""
    client = Client()
    client.force_login(patient.user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )


def switch(page, to: str) -> None:
    page.get_by_role("button", name="English" if to == "en" else "Polski").click()
    page.locator(f"html[lang={to}]").wait_for(state="attached")


def slots_at(facility, service, *, day: int, hour: int, count: int, contract: bool = True):
    if contract:
        ContractFactory(facility=facility, service=service)
    schedule = ScheduleFactory(facility=facility, service=service)
    base = (timezone.localtime() + dt.timedelta(days=day)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )
    return [SlotFactory(schedule=schedule, start=base + dt.timedelta(minutes=20 * i)) for i in range(count)]


def test_choosing_between_two_places_and_booking_at_the_second(live_server, page, mammography):
    """GIVEN six places in Warsaw with dates, the second with many afternoon dates WHEN the patient
    compares places, pages, filters to the second place in the afternoon, pages its dates, opens its
    page and books there THEN each step shows what was asked for and the booking is at that place."""
    woman = SignedInPatientFactory(birth_date=dt.date(1960, 3, 14), sex="F")
    first = FacilityFactory(name="Facility A")
    second = FacilityFactory(name="Facility B")
    slots_at(first, mammography, day=10, hour=9, count=3)
    afternoons = slots_at(second, mammography, day=11, hour=12, count=12)
    slots_at(second, mammography, day=12, hour=8, count=2, contract=False)  # mornings
    for n in range(4):
        slots_at(FacilityFactory(name=f"Przychodnia {n}"), mammography, day=13 + n, hour=9, count=1)
    a11y = Accessibility(page)
    sign_in(page, live_server, woman)

    # Places grouped, earliest first; more places on the next page.
    page.goto(f"{live_server.url}/?service={mammography.pk}&city=Warszawa")
    page.get_by_role("heading", name="Miejsca z najbliższymi terminami").wait_for()
    places = page.get_by_role("heading", level=3).all_inner_texts()
    assert places[:2] == ["Facility A", "Facility B"] and len(places) == 5
    a11y.check()
    page.get_by_role("link", name="Więcej miejsc").click()
    page.get_by_role("link", name="Poprzednie miejsca").wait_for()
    assert page.get_by_role("heading", level=3).all_inner_texts() == ["Przychodnia 3"]
    a11y.check()

    # The place filter, beside the time of day: the second place in the afternoon, page by page.
    page.get_by_label("Miejsce", exact=True).select_option(label="Facility B (Warszawa)")
    page.get_by_label("Pora dnia").select_option("afternoon")
    page.get_by_role("button", name="Szukaj").click()
    page.get_by_role("heading", name="Terminy: Facility B").wait_for()
    assert page.get_by_role("button", name=re.compile("^Wybierz ten termin")).count() == 10
    a11y.check()
    page.get_by_role("link", name="Późniejsze terminy").click()
    page.get_by_role("link", name="Wcześniejsze terminy").wait_for()
    assert page.get_by_role("button", name=re.compile("^Wybierz ten termin")).count() == 2
    assert "facility=" in page.url and "time_of_day=afternoon" in page.url and "page=2" in page.url
    assert page.get_by_label("Miejsce", exact=True).input_value() == str(second.pk)
    assert page.get_by_label("Pora dnia").input_value() == "afternoon"
    a11y.check()
    switch(page, "en")
    page.get_by_role("heading", name="Dates at Facility B").wait_for()
    assert page.get_by_label("Place", exact=True).input_value() == str(second.pk)
    a11y.check()

    # The place's page, and from it the place's dates for the service.
    page.get_by_role("link", name="About this place: address, hours, access, map").click()
    page.get_by_role("heading", name="Facility B", level=1).wait_for()
    a11y.check()
    page.get_by_role("link", name="Free dates here: Screening mammography").click()
    page.get_by_role("heading", name="Dates at Facility B").wait_for()
    assert page.get_by_role("button", name=re.compile("^Choose this date")).count() == 10
    a11y.check()

    # Book at the second place.
    page.get_by_role("button", name=re.compile("^Choose this date")).first.click()
    page.get_by_role("heading", name="Check and book").wait_for()
    page.get_by_role("button", name="Book this appointment").click()
    page.get_by_role("heading", name="Your appointment is booked").wait_for()
    a11y.check()
    booked = Appointment.objects.get(patient=woman)
    assert booked.facility_id == second.pk and booked.slot_id == afternoons[0].pk

    # The grouped results and the place filter in English too.
    page.goto(f"{live_server.url}/?service={mammography.pk}&city=Warszawa")
    page.get_by_role("heading", name="Places with the earliest dates").wait_for()
    a11y.check()
    assert len(a11y.checked) == 9 and a11y.described >= 9


def test_a_waiting_patient_sees_and_changes_the_preferences(live_server, page, cardiology):
    """GIVEN a patient second in the cardiology queue WHEN they change their preferences (first
    wrongly, then rightly) THEN the page says why a field is wrong, then saves the new ones and
    shows them, and the patient is still second; in English too."""
    man = SignedInPatientFactory(birth_date=dt.date(1960, 3, 3), sex="M")
    kardio = FacilityFactory(name="Kardio Centrum")
    for facility in (kardio, FacilityFactory(name="Serce Mokotów")):
        ContractFactory(facility=facility, service=cardiology)
    for patient in (PatientFactory(), man):
        referral = ReferralFactory(patient=patient, service=cardiology)
        booking_services.waitlist_join(
            patient=patient,
            service=cardiology,
            referral_number=referral.number,
            referral_code=referral.access_code,
        )
    entry = Registration.objects.get(patient=man)
    a11y = Accessibility(page)
    sign_in(page, live_server, man)

    page.goto(f"{live_server.url}/waitlist/")
    page.get_by_text("Twoje miejsce w kolejce: 2").wait_for()
    page.get_by_text("Zmiana preferencji go nie zmienia.").wait_for()
    a11y.check()
    page.get_by_role("link", name=re.compile("^Zmień preferencje")).click()
    page.get_by_role("heading", name=re.compile("^Zmień preferencje:")).wait_for()
    page.get_by_text("Zachowujesz swoje miejsce w kolejce (2)").wait_for()
    a11y.check()

    # A town nobody knows: the error summary takes the focus and the field says why.
    page.get_by_label("Miejscowość").fill("Atlantyda")
    page.get_by_role("button", name="Zapisz preferencje").click()
    page.get_by_role("alert").wait_for()
    assert page.evaluate("document.activeElement.getAttribute('role')") == "alert"
    assert "Nie znamy tej miejscowości" in page.locator("#id_city_error").inner_text()
    a11y.check()

    # The right ones: Warsaw and 25 km, one place, until a date.
    until = timezone.localdate() + dt.timedelta(days=60)
    page.get_by_label("Miejscowość").fill("Warszawa")
    page.get_by_label("Odległość od miejscowości").select_option("25")
    page.get_by_label("Miejsce", exact=True).select_option(label="Kardio Centrum (Warszawa)")
    page.get_by_label("Do dnia").fill(until.strftime("%d.%m.%Y"))
    page.get_by_role("button", name="Zapisz preferencje").click()
    page.get_by_text("Zapisaliśmy Twoje preferencje. Twoje miejsce w kolejce się nie zmieniło.").wait_for()
    page.get_by_text("Warszawa i do 25 km od tej miejscowości").wait_for()
    page.get_by_role("link", name="Kardio Centrum").wait_for()
    page.get_by_text("Twoje miejsce w kolejce: 2").wait_for()
    a11y.check()
    entry.refresh_from_db()
    assert (entry.max_distance_km, entry.facility_id, entry.date_to) == (25, kardio.pk, until)

    # In English: a distance without a town is explained; then any place in the area.
    switch(page, "en")
    page.get_by_text("Your place in the queue: 2").wait_for()
    a11y.check()
    page.get_by_role("link", name=re.compile("^Change the preferences")).click()
    page.get_by_role("heading", name=re.compile("^Change the preferences:")).wait_for()
    a11y.check()
    page.get_by_label("City or town").fill("")
    page.get_by_role("button", name="Save the preferences").click()
    page.get_by_role("alert").wait_for()
    assert "Enter the city to measure the distance from." in page.locator("#id_city_error").inner_text()
    a11y.check()
    page.get_by_label("City or town").fill("Warszawa")
    page.get_by_label("Place", exact=True).select_option(label="Any place in the area")
    page.get_by_role("button", name="Save the preferences").click()
    page.get_by_text("Your preferences are saved. Your place in the queue has not changed.").wait_for()
    a11y.check()
    entry.refresh_from_db()
    assert entry.facility_id is None and entry.max_distance_km == 25 and entry.status == "waiting"
    assert len(a11y.checked) == 8 and a11y.described >= 8
