"""Issue 18 in a real headless Chromium: the chosen slot survives signing in, the hold warns before it
ends and is extended, the booking ends on a focused "what next" panel, a cancelled appointment says
so, the waiting list shows preferences and one entry per service, and every error page is branded.
axe-core finds no WCAG 2.1 AA violation on any of these pages or states, in Polish and in English.

One browser for the module; each page is checked once per language it is shown in.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from apps.booking.models import Appointment
from apps.notifications.channels import MemorySmsGateway
from tests.factories import ContractFactory, PatientFactory, ReferralFactory, ScheduleFactory, SlotFactory
from tests.portal.test_e2e import Accessibility, pytestmark

pytestmark = pytestmark  # e2e, slow, skipped without Chromium (CI requires it)


def _english(page) -> None:
    page.get_by_role("button", name="English").click()
    page.locator("html[lang=en]").wait_for(state="attached")


def _polish(page) -> None:
    page.get_by_role("button", name="Polski").click()
    page.locator("html[lang=pl]").wait_for(state="attached")


@pytest.fixture
def world(transactional_db, mammography, cardiology, facility_a, facility_b):
    from apps.catalog.models import ReasonCode
    from tests.factories import ReasonCodeFactory

    ReasonCodeFactory(code="PATIENT_REQUEST", kind=ReasonCode.Kind.PATIENT_CANCEL)
    ContractFactory(facility=facility_a, service=mammography)
    schedule = ScheduleFactory(facility=facility_a, service=mammography)
    base = (timezone.localtime() + dt.timedelta(days=12)).replace(hour=9, minute=0, second=0, microsecond=0)
    slots = [SlotFactory(schedule=schedule, start=base + dt.timedelta(minutes=20 * i)) for i in range(2)]
    ContractFactory(facility=facility_b, service=mammography)
    other = ScheduleFactory(facility=facility_b, service=mammography)
    SlotFactory(schedule=other, start=base + dt.timedelta(days=1, hours=6))
    patient = PatientFactory(birth_date=dt.date(1960, 3, 14), sex="F", phone="+48500100200")
    MemorySmsGateway.outbox.clear()
    return patient, slots, cardiology


def test_slot_sign_in_hold_warning_outcome_cancelled_and_waiting_list(live_server, page, world, settings):
    patient, slots, cardiology = world
    settings.CER_HOLD_SECONDS = 121  # the warning (2 minutes before the end) shows after ~1 s
    a11y = Accessibility(page)
    url = live_server.url

    # The slot chosen before signing in: its own page, and back to it after the code.
    page.goto(f"{url}/slots/{slots[0].pk}/")
    page.get_by_role("heading", name="Wybrany termin").wait_for()
    a11y.check()
    page.get_by_role("link", name="Zaloguj się, aby zarezerwować ten termin").click()
    page.get_by_label("Numer PESEL").fill(patient.pesel)
    page.get_by_role("button", name="Wyślij mi kod").click()
    code = re.search(r"\b(\d{6})\b", MemorySmsGateway.outbox[-1]["text"]).group(1)
    page.get_by_label("Kod jednorazowy").fill(code)
    page.get_by_role("button", name="Zaloguj się").click()
    page.get_by_role("heading", name="Wybrany termin").wait_for()
    assert page.url.endswith(f"/slots/{slots[0].pk}/")
    a11y.check()
    page.get_by_role("button", name="Wybierz ten termin").click()

    # The hold warns before it ends (an alert), and the patient keeps the date longer.
    page.get_by_role("heading", name="Sprawdź i zarezerwuj").wait_for()
    warning = page.locator("[data-hold-warning]")
    page.locator("[data-hold-warning].hold-warning-shown").wait_for()
    assert warning.get_attribute("role") == "alert" and "zatrzymany do" in warning.inner_text()
    a11y.check()
    page.get_by_role("button", name="Potrzebuję więcej czasu: zatrzymaj termin dłużej").click()
    page.get_by_text("Trzymamy dla Ciebie ten termin przez kolejne 2 min.").wait_for()
    _english(page)
    page.get_by_role("heading", name="Check and book").wait_for()
    # The warning in English too (the extended hold again ends within the warning time).
    page.locator("[data-hold-warning].hold-warning-shown").wait_for()
    assert "Your hold on this date ends at" in warning.inner_text()
    a11y.check()
    page.get_by_role("button", name="Book this appointment").click()

    # The outcome panel takes the focus and says what next.
    page.get_by_role("heading", name="Your appointment is booked").wait_for()
    assert page.evaluate("document.activeElement.dataset.focusPanel") is not None
    page.get_by_role("heading", name="What happens next").wait_for()
    a11y.check()
    _polish(page)
    a11y.check()
    appointment = Appointment.objects.get(patient=patient)

    # Cancelled: the page says so and offers no cancel.
    page.get_by_role("link", name="Odwołaj wizytę").click()
    page.get_by_role("button", name="Tak, odwołaj wizytę").click()
    page.get_by_text("Ta wizyta jest odwołana. Nie odbędzie się.").wait_for()
    assert page.get_by_role("link", name="Odwołaj wizytę").count() == 0
    a11y.check()
    _english(page)
    page.get_by_text("This appointment is cancelled. It will not take place.").wait_for()
    a11y.check()
    # A refusal is an alert that takes the focus (the cancelled appointment cannot be confirmed).
    page.evaluate(
        """(url) => { const f = document.createElement('form'); f.method = 'post'; f.action = url;
        const t = document.querySelector('input[name=csrfmiddlewaretoken]').cloneNode();
        f.appendChild(t); document.body.appendChild(f); f.submit(); }""",
        f"/appointments/{appointment.pk}/confirm/",
    )
    page.get_by_role("alert").wait_for()
    assert page.evaluate("document.activeElement.getAttribute('role')") == "alert"
    a11y.check()

    # Choosing between two places: grouped results, one place's dates, its facility page.
    page.goto(f"{url}/?service={slots[0].service_id}")
    page.get_by_role("heading", name="Places with the earliest dates").wait_for()
    assert page.get_by_role("heading", level=3).all_inner_texts() == ["Facility A", "Facility B"]
    a11y.check()
    page.get_by_role("link", name=re.compile(r"More dates at this place\W+Facility B")).click()
    page.get_by_role("heading", name="Dates at Facility B").wait_for()
    a11y.check()
    page.get_by_role("link", name="About this place: address, hours, access, map").click()
    page.get_by_text("free of charge under an NFZ contract").wait_for()
    a11y.check()
    _polish(page)
    page.get_by_role("heading", name="Dostępność").wait_for()
    a11y.check()
    _english(page)

    # The waiting list: preferences and horizon before joining; then one entry, shown as such.
    cardio_referral = ReferralFactory(patient=patient, service=cardiology)
    page.goto(f"{url}/?service={cardiology.pk}")
    page.get_by_role("heading", name="Your preferences").wait_for()
    a11y.check()
    page.get_by_label("E-referral number").fill(cardio_referral.number)
    page.get_by_label("Access code (4 digits)").fill(cardio_referral.access_code)
    page.get_by_role("button", name="Join the waiting list").click()
    page.get_by_text("This is your one entry for this service.").wait_for()
    a11y.check()
    page.goto(f"{url}/?service={cardiology.pk}")
    page.get_by_role("heading", name="You are on the waiting list for this service").wait_for()
    assert page.get_by_role("button", name="Join the waiting list").count() == 0
    a11y.check()
    _polish(page)
    page.get_by_role("heading", name="Jesteś już w Poczekalni na to świadczenie").wait_for()
    a11y.check()
    assert len(a11y.checked) == 17


def test_every_error_page_is_branded_in_both_languages(live_server, page, world, settings):
    settings.DEBUG = False
    settings.ROOT_URLCONF = "tests.portal.urls_broken"
    a11y = Accessibility(page)
    url = live_server.url
    pages = [
        ("/no-such-page/", "Nie ma takiej strony", "We cannot find this page"),
        ("/forbidden/", "Nie możesz otworzyć tej strony", "You cannot open this page"),
        ("/broken/", "Wystąpił błąd po naszej stronie", "Something went wrong on our side"),
        ("/damaged/", "Nie udało się odczytać tego żądania", "We could not read this request"),
    ]
    for language in ("pl", "en"):
        for path, polish, english in pages:
            page.goto(url + path)
            page.get_by_role("heading", name=polish if language == "pl" else english).wait_for()
            assert page.get_by_role("link", name="800 190 590").count() == 1
            a11y.check()
        # CSRF: the form's cookie is gone (cleared, expired): a branded page, not Django's default.
        page.goto(url + "/login/")
        page.context.clear_cookies()
        if language == "en":
            page.context.add_cookies([{"name": "django_language", "value": "en", "url": url}])
        page.locator("main form button[type=submit]").first.click()
        page.get_by_role(
            "heading", name="Formularz wygasł" if language == "pl" else "The form has expired"
        ).wait_for()
        a11y.check()
        if language == "pl":
            page.goto(url + "/")
            _english(page)


def test_the_manage_link_confirms_and_moves_without_signing_in(live_server, page, world):
    from apps.booking import services as booking_services
    from apps.portal import manage

    patient, slots, _cardiology = world
    appointment = booking_services.appointment_book(slot_id=slots[0].pk, patient=patient, channel="web")
    a11y = Accessibility(page)
    page.goto(live_server.url + f"/manage/{manage.manage_token(appointment_id=appointment.pk)}/")
    page.get_by_role("heading", name="Twoja wizyta").wait_for()
    a11y.check()
    page.get_by_role("button", name="Potwierdzam, że przyjdę").click()
    page.get_by_text("Twoje przybycie jest potwierdzone").wait_for()
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.CONFIRMED
    _english(page)
    a11y.check()
    page.get_by_role("button", name=re.compile("Move to this date")).first.click()
    page.get_by_text("Your appointment has been moved.").wait_for()
    moved = Appointment.objects.get(patient=patient, status=Appointment.Status.CONFIRMED)
    assert moved.slot_id == slots[1].pk
    a11y.check()
