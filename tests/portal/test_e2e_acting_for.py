"""Issue 18 in a real headless Chromium: a parent signs in, chooses her son under "booking for", books
him a date (the booking is his), sees it under him and not under herself, and cancels it; a forged
choice is refused with the reason and a form error tied to its field. axe-core finds no WCAG 2.1 AA
violation on any of these pages or states, in Polish and in English.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from apps.audit.models import AccessLog
from apps.booking.models import Appointment
from apps.notifications.channels import MemorySmsGateway
from apps.patients import registry
from apps.patients.models import Relationship
from tests.factories import ContractFactory, PatientFactory, ScheduleFactory, ServiceFactory, SlotFactory
from tests.portal.test_e2e import Accessibility, pytestmark
from tests.portal.test_e2e_patient_pages import _english, _polish

pytestmark = pytestmark  # e2e, slow, skipped without Chromium (CI requires it)
# A radio of the choice form given another patient's id, as a forged request would.
FORGE = """(id) => { const r = document.querySelector('input[name=acting_for]');
    r.value = String(id); r.checked = true; }"""
MISSING_TARGETS = """() => [...document.querySelectorAll('[aria-describedby]')].flatMap(el =>
    el.getAttribute('aria-describedby').split(/\\s+/).filter(id => id && !document.getElementById(id)))"""


@pytest.fixture
def family(transactional_db):
    from apps.catalog.models import ReasonCode
    from tests.factories import ReasonCodeFactory

    ReasonCodeFactory(code="PATIENT_REQUEST", kind=ReasonCode.Kind.PATIENT_CANCEL)
    service = ServiceFactory(
        code="PED_SCR",
        name_pl="Badanie przesiewowe dzieci",
        name_en="Children's screening",
        referral_required=False,
        age_max=17,
        confirmation_required=False,
        confirm_deadline_hours=None,
    )
    schedule = ScheduleFactory(service=service)
    ContractFactory(facility=schedule.facility, service=service)
    base = (timezone.localtime() + dt.timedelta(days=12)).replace(hour=9, minute=0, second=0, microsecond=0)
    slot = SlotFactory(schedule=schedule, start=base)
    parent = PatientFactory(
        first_name="Anna", last_name="Nowak", birth_date=dt.date(1982, 5, 1), sex="F", phone="+48600111222"
    )
    today = timezone.localdate()
    son = PatientFactory(
        first_name="Jan", last_name="Nowak", birth_date=today.replace(year=today.year - 9, day=1), sex="M"
    )
    registry.relationship_record(
        representative=parent, patient=son, kind=Relationship.Kind.PARENT, valid_from=son.birth_date
    )
    stranger = PatientFactory(first_name="Obca", last_name="Osoba")
    MemorySmsGateway.outbox.clear()
    return parent, son, stranger, service, slot


def _sign_in(tab, url, patient) -> None:
    page = tab
    page.goto(f"{url}/login/")
    page.get_by_label("Numer PESEL").fill(patient.pesel)
    page.get_by_role("button", name="Wyślij mi kod").click()
    code = re.search(r"\b(\d{6})\b", MemorySmsGateway.outbox[-1]["text"]).group(1)
    page.get_by_label("Kod jednorazowy").fill(code)
    page.get_by_role("button", name="Zaloguj się").click()


def _described_by_targets_exist(tab) -> None:
    missing = tab.evaluate(MISSING_TARGETS)
    assert missing == [], missing


def test_a_parent_books_for_her_son_sees_it_under_him_and_cancels_it(live_server, page, family):
    parent, son, stranger, service, slot = family
    a11y = Accessibility(page)
    url = live_server.url

    _sign_in(page, url, parent)
    page.locator("p.acting-bar", has_text="Rezerwujesz dla: Anna Nowak (Ty)").wait_for()
    a11y.check()

    # The choice: herself or her son (the registry's list).
    page.get_by_role("link", name=re.compile("^Zmień")).click()
    page.get_by_role("heading", name="Dla kogo rezerwujesz?").wait_for()
    a11y.check()
    _english(page)
    page.get_by_role("heading", name="Whom are you booking for?").wait_for()
    a11y.check()
    page.get_by_label("Jan Nowak (son)").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_text("You are now booking for: Jan Nowak (son).").wait_for()
    page.locator("p.acting-bar", has_text="Booking for: Jan Nowak (son)").wait_for()
    a11y.check()
    _polish(page)

    # Search and book: the service is for under-18s; it is the son's booking.
    page.goto(f"{url}/?service={service.pk}")
    page.locator("p.acting-bar", has_text="Rezerwujesz dla: Jan Nowak (syn)").wait_for()
    a11y.check()
    page.get_by_role("button", name=re.compile("^Wybierz ten termin")).first.click()
    page.get_by_role("heading", name="Sprawdź i zarezerwuj").wait_for()
    assert "Jan Nowak (syn)" in page.locator("dl.summary-list").inner_text()
    a11y.check()
    page.get_by_role("button", name="Zarezerwuj wizytę").click()
    page.get_by_role("heading", name="Twoja wizyta jest zarezerwowana").wait_for()
    a11y.check()
    appointment = Appointment.objects.get(slot=slot)
    assert appointment.patient_id == son.pk
    assert AccessLog.objects.filter(patient=son, actor_id=f"patient:{parent.pk}").exists()

    # Under the son, not under herself.
    page.get_by_role("link", name="Moje wizyty").click()
    page.get_by_role("heading", name="Wizyty: Jan Nowak (syn)").wait_for()
    assert page.get_by_role("link", name="Badanie przesiewowe dzieci").count() == 1
    a11y.check()
    _english(page)
    page.get_by_role("heading", name="Appointments: Jan Nowak (son)").wait_for()
    a11y.check()
    page.get_by_role("link", name=re.compile("^Change")).click()
    page.get_by_label("Myself (Anna Nowak)").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="My appointments").wait_for()
    assert page.get_by_role("link", name="Children's screening").count() == 0
    a11y.check()

    # Cancelling it: the appointment's page switches the line to the son.
    page.goto(f"{url}/appointments/{appointment.pk}/")
    page.locator("p.acting-bar", has_text="Booking for: Jan Nowak (son)").wait_for()
    page.get_by_role("link", name="Cancel the appointment").click()
    page.get_by_text("Patient: Jan Nowak (son)").wait_for()
    a11y.check()
    page.get_by_role("button", name="Yes, cancel the appointment").click()
    page.get_by_text("This appointment is cancelled. It will not take place.").wait_for()
    a11y.check()
    _polish(page)
    page.get_by_text("Ta wizyta jest odwołana. Nie odbędzie się.").wait_for()
    a11y.check()
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.CANCELLED_BY_PATIENT

    # Someone the registry does not name: refused with the reason, tied to the field, nothing changed.
    page.goto(f"{url}/acting-for/")
    page.evaluate(FORGE, stranger.pk)
    page.get_by_role("button", name="Dalej").click()
    page.get_by_role("heading", name="Wystąpił problem").wait_for()
    page.get_by_text("Nie możesz działać w imieniu tej osoby").first.wait_for()
    assert page.evaluate("document.activeElement.dataset.errorSummary") is not None
    assert page.locator("#id_acting_for_0").get_attribute("aria-describedby") == "id_acting_for_error"
    _described_by_targets_exist(page)
    a11y.check()
    page.goto(f"{url}/acting-for/")
    _english(page)
    page.evaluate(FORGE, stranger.pk)
    page.get_by_role("button", name="Continue").click()
    page.get_by_text("You cannot act for this person").first.wait_for()
    _described_by_targets_exist(page)
    a11y.check()
    assert not AccessLog.objects.filter(patient=stranger).exists()
    assert len(a11y.checked) == 15
