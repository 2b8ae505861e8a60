"""End-to-end: a patient books, confirms, reschedules and cancels in a real headless Chromium, and
axe-core finds no WCAG 2.1 AA violation on any patient page, in Polish and in English.

Needs the Debian `chromium` package (/usr/bin/chromium); skipped with a clear reason without it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest
from django.utils import timezone

from apps.booking.models import Appointment
from apps.notifications.channels import MemorySmsGateway
from tests.factories import ContractFactory, PatientFactory, ScheduleFactory, SlotFactory

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    # CI installs Chromium and sets CER_REQUIRE_E2E=1, so there a missing browser fails, never skips.
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CER_REQUIRE_E2E"),
        reason="headless browser tests need /usr/bin/chromium (apt-get install chromium)",
    ),
]


# Playwright's sync API runs an event loop in this thread; the ORM calls the test makes between
# browser steps are synchronous and safe here.
@pytest.fixture(autouse=True)
def _allow_sync_orm_beside_playwright(monkeypatch):
    # Scoped to these tests, so the variable never leaks into other tests or subprocesses.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(
            viewport={"width": 320, "height": 800}, locale="pl-PL"
        )  # narrowest phone
        context.set_default_timeout(10_000)
        page = context.new_page()
        yield page
        context.close()
        browser.close()


# Every `aria-describedby` of the page names elements that exist (the error text of a field was tied
# to an id nothing had, issue 18): "<element>: <missing id>" for each one that does not.
DESCRIBED_BY_NOTHING = """() => [...document.querySelectorAll('[aria-describedby]')].flatMap(element =>
    element.getAttribute('aria-describedby').split(/\\s+/)
        .filter(id => id && !document.getElementById(id))
        .map(id => `${element.id || element.getAttribute('name') || element.tagName}: ${id}`))"""


class Accessibility:
    def __init__(self, page):
        from axe_playwright_python.sync_playwright import Axe

        self.page = page
        self.axe = Axe()
        self.checked: list[str] = []
        self.described = 0  # aria-describedby references checked

    def check(self) -> None:
        results = self.axe.run(self.page, options=WCAG_21_AA)
        assert results.violations_count == 0, f"{self.page.url}\n{results.generate_report()}"
        # 320 px width: nothing scrolls sideways (WCAG 1.4.10 reflow).
        assert self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (
            self.page.url
        )
        missing = self.page.evaluate(DESCRIBED_BY_NOTHING)
        assert not missing, f"{self.page.url}: aria-describedby points at nothing: {missing}"
        self.described += self.page.locator("[aria-describedby]").count()
        self.checked.append(self.page.url)


@pytest.fixture
def scenario(transactional_db, mammography, facility_a):
    from apps.catalog.models import ReasonCode
    from tests.factories import ReasonCodeFactory

    ReasonCodeFactory(code="PATIENT_REQUEST", kind=ReasonCode.Kind.PATIENT_CANCEL)
    ContractFactory(facility=facility_a, service=mammography)
    schedule = ScheduleFactory(facility=facility_a, service=mammography)
    base = (timezone.localtime() + dt.timedelta(days=12)).replace(hour=9, minute=0, second=0, microsecond=0)
    slots = [SlotFactory(schedule=schedule, start=base + dt.timedelta(minutes=20 * i)) for i in range(3)]
    patient = PatientFactory(birth_date=dt.date(1972, 3, 14), sex="F", phone="+48500100200")
    MemorySmsGateway.outbox.clear()
    return patient, slots, mammography


def test_a_patient_books_confirms_reschedules_and_cancels(live_server, browser_page, scenario):
    patient, slots, service = scenario
    page = browser_page
    a11y = Accessibility(page)

    page.goto(live_server.url + "/")
    a11y.check()
    page.get_by_role("link", name="Zaloguj się").click()
    a11y.check()
    # Errors are announced: the summary has role=alert and takes the focus.
    page.get_by_label("Numer PESEL").fill("123")
    page.get_by_role("button", name="Wyślij mi kod").click()
    assert page.get_by_role("alert").is_visible()
    assert page.evaluate("document.activeElement.getAttribute('role')") == "alert"
    a11y.check()

    page.get_by_label("Numer PESEL").fill(patient.pesel)
    page.get_by_role("button", name="Wyślij mi kod").click()
    assert patient.pesel not in page.url
    a11y.check()
    code = re.search(r"\b(\d{6})\b", MemorySmsGateway.outbox[-1]["text"]).group(1)
    page.get_by_label("Kod jednorazowy").fill(code)
    page.get_by_role("button", name="Zaloguj się").click()
    page.get_by_role("heading", name="Moje wizyty").wait_for()
    a11y.check()

    # Search and book: hold, then the summary page, then book.
    page.get_by_role("link", name="Znajdź termin", exact=True).first.click()
    page.get_by_label("Świadczenie").select_option(str(service.pk))
    page.get_by_role("button", name="Szukaj").click()
    a11y.check()
    page.get_by_role("button", name="Wybierz ten termin").first.click()
    page.get_by_role("heading", name="Sprawdź i zarezerwuj").wait_for()
    a11y.check()
    page.get_by_role("button", name="Zarezerwuj wizytę").click()
    # The outcome is a panel that takes the focus and says what next (issue 18), not a small flash.
    page.get_by_role("heading", name="Twoja wizyta jest zarezerwowana").wait_for()
    assert page.evaluate("document.activeElement.dataset.focusPanel") is not None
    page.get_by_role("heading", name="Co dalej").wait_for()
    a11y.check()
    first = Appointment.objects.get(patient=patient)
    assert first.slot_id == slots[0].pk

    page.get_by_role("button", name="Potwierdzam, że przyjdę").click()
    page.get_by_text("Twoje przybycie jest potwierdzone").wait_for()
    assert Appointment.objects.get(pk=first.pk).status == Appointment.Status.CONFIRMED

    page.get_by_role("link", name="Zmień termin").click()
    a11y.check()
    page.get_by_role("button", name="Przenieś na ten termin").first.click()
    page.get_by_text("Twoja wizyta została przeniesiona.").wait_for()
    moved = Appointment.objects.get(patient=patient, status__in=["booked", "confirmed"])
    assert moved.slot_id != slots[0].pk

    with page.expect_download() as download:
        page.get_by_role("link", name="Dodaj do mojego kalendarza (plik .ics)").click()
    assert download.value.suggested_filename == f"wizyta-{moved.pk}.ics"

    page.get_by_role("link", name="Odwołaj wizytę").click()
    a11y.check()
    page.get_by_role("button", name="Tak, odwołaj wizytę").click()
    page.get_by_text("Ta wizyta jest odwołana. Nie odbędzie się.").wait_for()
    a11y.check()
    moved.refresh_from_db()
    assert moved.status == Appointment.Status.CANCELLED_BY_PATIENT

    for path in ("/waitlist/", "/messages/"):
        page.goto(live_server.url + path)
        a11y.check()

    # English: the switch keeps the page and every page still passes.
    page.goto(live_server.url + "/appointments/")
    page.get_by_role("button", name="English").click()
    page.get_by_role("heading", name="My appointments").wait_for()
    assert page.get_attribute("html", "lang") == "en"
    a11y.check()
    page.goto(live_server.url + f"/?service={service.pk}")
    page.get_by_role("heading", name="Places with the earliest dates").wait_for()
    a11y.check()
    assert len(a11y.checked) >= 14
