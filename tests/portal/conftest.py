from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.catalog.models import ReasonCode
from apps.notifications.channels import MemorySmsGateway
from tests.factories import ContractFactory, ReasonCodeFactory, ScheduleFactory, SlotFactory
from tests.factories.portal import SignedInPatientFactory
from tests.portal.test_e2e import ARGS, CHROMIUM


@pytest.fixture(autouse=True)
def reason_codes(db):
    for code, kind in [
        ("DOCTOR_ILLNESS", ReasonCode.Kind.FACILITY_CANCEL),
        ("PATIENT_REQUEST", ReasonCode.Kind.PATIENT_CANCEL),
        ("UNCONFIRMED_RELEASED", ReasonCode.Kind.RELEASE),
    ]:
        ReasonCodeFactory(code=code, kind=kind, name_pl=code, name_en=code)


@pytest.fixture(autouse=True)
def _sms_outbox():
    MemorySmsGateway.outbox.clear()
    yield
    MemorySmsGateway.outbox.clear()


@pytest.fixture
def woman(db):
    """A woman born 1970: eligible for screening mammography (45-74 by year of birth)."""
    return SignedInPatientFactory(birth_date=dt.date(1970, 5, 17), sex="F")


@pytest.fixture
def other_patient(db):
    return SignedInPatientFactory(birth_date=dt.date(1968, 1, 2), sex="F")


@pytest.fixture
def client_woman(client, woman):
    client.force_login(woman.user)
    return client


@pytest.fixture
def mammo_schedule(mammography, facility_a):
    ContractFactory(facility=facility_a, service=mammography)
    return ScheduleFactory(facility=facility_a, service=mammography)


@pytest.fixture
def mammo_slots(mammo_schedule):
    base = (timezone.localtime() + dt.timedelta(days=10)).replace(hour=9, minute=0, second=0, microsecond=0)
    return [SlotFactory(schedule=mammo_schedule, start=base + dt.timedelta(minutes=20 * i)) for i in range(3)]


# The browser of the Playwright modules (test_e2e_*.py): one Chromium per module, a fresh 320 px Polish
# context per test. test_e2e.py keeps its own.
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread for the whole module; the ORM calls the
    # tests make between browser steps are synchronous and safe. Scoped to the importing module only.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 320, "height": 800}, locale="pl-PL")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()
