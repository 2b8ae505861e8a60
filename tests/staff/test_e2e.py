"""End-to-end: a settlement analyst signs in to the staff pages in a real headless Chromium, works
through the run summary, the run-wide filtered list, a verdict (override), the overrides list, month
over month and the exports, and axe-core finds no WCAG 2.1 AA violation on any of these pages.

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
    page.get_by_label("Użytkownik / username").fill("analyst-e2e")
    page.get_by_label("Hasło / password").fill(password)
    page.get_by_role("button", name="Zaloguj / log in").click()
    # The second factor (django-otp): the analyst's authenticator app shows the current code.
    page.get_by_role("heading", name="Drugi składnik logowania").wait_for()
    page.locator("#token").fill(
        f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    )
    page.get_by_role("button", name="Potwierdź").click()
    page.get_by_role("heading", name="Przebiegi rozliczeń / reconciliation runs").wait_for()
    assert page.get_by_text("aktualny / current").is_visible()
    check()

    page.get_by_role("link", name=str(run.pk), exact=True).click()
    page.get_by_text("Do zapłaty po zmianach / payable").first.wait_for()
    assert page.get_by_text("aktualny przebieg tego okresu").is_visible()
    check()

    page.get_by_role("link", name="Wszystkie werdykty z filtrami / all verdicts with filters").click()
    page.get_by_label("Powód / reason").select_option("no_registration")
    page.get_by_role("button", name="Filtruj / filter").click()
    page.get_by_text("1 wizyt / visits").wait_for()
    check()
    with page.expect_download() as download:
        page.get_by_role("link", name="XLSX (EN)").click()
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "facility code" and [r[1] for r in rows[1:]] == ["U-1"]

    unregistered = Verdict.objects.get(run=run, visit=reconciled_month["visits"]["unregistered"])
    page.get_by_role("link", name=f"werdykt {unregistered.pk}").click()
    page.get_by_role("heading", name="Wersje wizyty / visit versions").wait_for()
    check()
    page.get_by_label("do zapłaty / eligible").check()
    page.get_by_label("Uzasadnienie / justification (wymagane / required)").fill("\u200b\u200b")
    page.get_by_role("button", name="Zapisz / save").click()
    page.locator(".errorlist").first.wait_for()
    check()
    page.get_by_label("do zapłaty / eligible").check()
    page.get_by_label("Uzasadnienie / justification (wymagane / required)").fill(
        "Rejestracja zgubiona w awarii."
    )
    page.get_by_role("button", name="Zapisz / save").click()
    page.get_by_text("Werdykt zmieniony / verdict overridden.").wait_for()

    page.get_by_role("link", name="Zmiany werdyktów / overrides").click()
    page.get_by_text("Rejestracja zgubiona w awarii.").wait_for()
    check()

    page.get_by_role("link", name="Placówki m/m / facilities month over month").click()
    page.get_by_role("heading", name="Placówki miesiąc do miesiąca / facilities month over month").wait_for()
    check()

    page.get_by_role("link", name="Poczekalnia / waiting list").click()
    page.get_by_role("button", name="Pokaż / show").click()
    page.get_by_role("heading", name="Przydziały z Poczekalni / waiting-list allocations").wait_for()
    check()

    page.goto(live_server.url + f"/staff/runs/{run.pk}/")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV Excel (PL)").click()
    content = Path(download.value.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf") and "kod placówki;".encode() in content
    assert len(checked) == 9
