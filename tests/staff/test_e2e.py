"""End-to-end: a settlement analyst signs in to the staff pages in a real headless Chromium, works
through the run summary, the run-wide filtered list, a verdict (override), the overrides list, month
over month, the trends, compliance, imports and waiting-list pages and the exports, in Polish and then
in English, and axe-core finds no WCAG 2.1 AA violation on any of these pages.

Needs the Debian `chromium` package (/usr/bin/chromium); skipped with a clear reason without it.
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from openpyxl import load_workbook

from apps.reconciliation.models import Verdict
from apps.staff.services import staff_group_ensure
from tests.portal.test_e2e import ARGS, CHROMIUM, WCAG_21_AA

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CER_REQUIRE_E2E"),
        reason="headless browser tests need /usr/bin/chromium (apt-get install chromium)",
    ),
]


@pytest.fixture(autouse=True)
def _allow_sync_orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def desk_page():
    """A desktop browser: analysts work on office screens, with wide settlement tables."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, locale="pl-PL", accept_downloads=True
        )
        context.set_default_timeout(10_000)
        page = context.new_page()
        yield page
        context.close()
        browser.close()


def _axe_clean(page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options=WCAG_21_AA)
    assert results.violations_count == 0, f"{page.url}\n{results.generate_report()}"


def test_an_analyst_reviews_overrides_and_exports_a_run(
    live_server, desk_page, transactional_db, reconciled_month
):
    password = secrets.token_urlsafe(16)
    analyst = User.objects.create_user("analyst-e2e", password=password)
    analyst.groups.add(staff_group_ensure())
    device = TOTPDevice.objects.create(user=analyst, name="authenticator", confirmed=True)
    run = reconciled_month["run"]
    page = desk_page
    checked = []

    def check() -> None:
        _axe_clean(page)
        checked.append(page.url)

    page.goto(live_server.url + "/staff/login/")
    check()
    # Polish by default, one language on every page (English is one click away, below).
    page.get_by_label("Użytkownik").fill("analyst-e2e")
    page.get_by_label("Hasło").fill(password)
    page.get_by_role("button", name="Zaloguj").click()
    # The second factor (django-otp): the analyst's authenticator app shows the current code.
    page.get_by_role("heading", name="Drugi składnik logowania").wait_for()
    page.locator("#token").fill(
        f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    )
    page.get_by_role("button", name="Potwierdź").click()
    page.get_by_role("heading", name="Przebiegi rozliczeń").wait_for()
    assert page.get_by_text("aktualny", exact=True).is_visible()
    check()

    page.get_by_role("link", name=str(run.pk), exact=True).click()
    page.get_by_text("Do zapłaty po zmianach").first.wait_for()
    assert page.get_by_text("aktualny przebieg tego okresu").is_visible()
    check()

    page.get_by_role("link", name="Wszystkie werdykty z filtrami").click()
    page.get_by_label("Powód").select_option("no_registration")
    page.get_by_role("button", name="Filtruj").click()
    page.get_by_text("Wizyt: 1").wait_for()
    check()
    with page.expect_download() as download:
        page.get_by_role("link", name="XLSX", exact=True).click()
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "kod placówki" and [r[1] for r in rows[1:]] == ["U-1"]

    unregistered = Verdict.objects.get(run=run, visit=reconciled_month["visits"]["unregistered"])
    page.get_by_role("link", name=f"werdykt {unregistered.pk}").click()
    page.get_by_role("heading", name="Wersje wizyty").wait_for()
    check()
    page.get_by_label("do zapłaty", exact=True).check()
    page.get_by_label("Uzasadnienie (wymagane)").fill("\u200b\u200b")
    page.get_by_role("button", name="Zapisz").click()
    page.locator(".errorlist").first.wait_for()
    check()
    page.get_by_label("do zapłaty", exact=True).check()
    page.get_by_label("Uzasadnienie (wymagane)").fill("Rejestracja zgubiona w awarii.")
    page.get_by_role("button", name="Zapisz").click()
    page.get_by_text("Werdykt zmieniony.").wait_for()

    page.get_by_role("link", name="Zmiany werdyktów").click()
    page.get_by_text("Rejestracja zgubiona w awarii.").wait_for()
    check()

    page.get_by_role("link", name="Placówki miesiąc do miesiąca").click()
    page.get_by_role("heading", name="Placówki miesiąc do miesiąca").wait_for()
    check()

    for link, heading in (
        ("Trendy", "Odsetek wizyt bez zapłaty w miesiącach"),
        ("Zgodność harmonogramów", "Zgodność harmonogramów"),
        ("Wczytywanie wizyt", "Wczytywanie wizyt do rozliczenia"),
    ):
        page.get_by_role("link", name=link, exact=True).click()
        page.get_by_role("heading", name=heading).wait_for()
        check()

    page.get_by_role("link", name="Poczekalnia", exact=True).click()
    page.get_by_role("button", name="Pokaż").click()
    page.get_by_role("heading", name="Przydziały z Poczekalni").wait_for()
    check()

    # The analyst switches to English: the same page, all of it in English, and the exports follow.
    page.get_by_role("button", name="English").click()
    page.get_by_role("heading", name="Waiting-list allocations").wait_for()
    assert page.locator("html").get_attribute("lang") == "en"
    check()
    page.goto(live_server.url + f"/staff/runs/{run.pk}/")
    page.get_by_text("Payable after overrides").first.wait_for()
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV for Excel").click()
    content = Path(download.value.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf") and b"facility code;" in content
    assert len(checked) == 13
