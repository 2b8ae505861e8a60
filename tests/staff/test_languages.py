"""One language at a time: every staff page and every export, rendered in Polish (the default) and in
English (the analyst's choice), carries no text of the other language and no unfilled placeholder. The
words come from one catalogue (apps/staff/locale), which covers every msgid of the staff and
reconciliation sources and is compiled as committed."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from openpyxl import load_workbook

from apps.portal.i18n import mo_bytes, po_parse
from apps.reconciliation.models import Reason, Verdict
from apps.reconciliation.services import verdict_override
from apps.staff.i18n import catalogues, msgids_in_sources
from apps.staff.services import staff_group_ensure
from tests.staff.test_compliance import checked  # noqa: F401  (fixture)
from tests.staff.test_waitlist import queue  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\{|\}\}|\{%|%\}|\{\w+\}|%s\b")
LANGUAGES = ("pl", "en")


def catalogue() -> dict[str, str]:
    ((po, _mo),) = catalogues()
    return {k: v for k, v in po_parse(po.read_text(encoding="utf-8")).items() if k}


def foreign_strings(language: str) -> set[str]:
    """The other language's side of every catalogue entry whose two sides differ, as literal pieces
    (split at placeholders)."""
    pieces: set[str] = set()
    for english, polish in catalogue().items():
        if english.lower() == polish.lower():
            continue
        text = english if language == "pl" else polish
        pieces.update(p.strip(" :;,.()") for p in re.split(r"%\(\w+\)s", text))
    return {p.lower() for p in pieces if p}


class _Visible(HTMLParser):
    """Text nodes and the attributes people read (aria-label, title, placeholder), leaving out
    elements marked as another language (the language switcher: "English" on a Polish page)."""

    VOID = {"meta", "link", "input", "br", "img", "hr", "source", "col", "wbr"}

    def __init__(self, language: str) -> None:
        super().__init__()
        self.language = language
        self.stack: list[bool] = []
        self.segments: list[str] = []
        self.skip_text = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        foreign = bool(values.get("lang")) and values.get("lang") != self.language and tag != "html"
        if tag in ("style", "script"):
            self.skip_text += 1
        if not foreign and not any(self.stack):
            self.segments += [v for k, v in attrs if k in ("aria-label", "title", "placeholder") and v]
        if tag not in self.VOID:
            self.stack.append(foreign)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self.skip_text -= 1
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not self.skip_text and not any(self.stack) and data.strip():
            self.segments.append(" ".join(data.split()))


def assert_one_language(segments: list[str], language: str, where: str) -> None:
    foreign = foreign_strings(language)
    long_foreign = [f for f in foreign if len(f) >= 12]
    for segment in segments:
        segment = segment.lower()
        text = segment.strip(" :;,.()·—←→")
        assert not PLACEHOLDER.search(segment), f"{where}: unfilled placeholder in {segment!r}"
        assert text not in foreign, f"{where} ({language}): {segment!r} is the other language"
        hits = [f for f in long_foreign if f in segment]
        assert not hits, f"{where} ({language}): {segment!r} contains {hits}"


def html_segments(response, language: str) -> list[str]:
    html = response.content.decode()
    assert f'<html lang="{language}">' in html
    parser = _Visible(language)
    parser.feed(html)
    return parser.segments


@pytest.fixture
def scene(reconciled_month, staff_user, checked, queue):  # noqa: F811
    """Something on every page: a finished run with an override, an import with rejected rows,
    compliance checks, a waiting list."""
    unregistered = Verdict.objects.get(
        run=reconciled_month["run"], visit=reconciled_month["visits"]["unregistered"]
    )
    verdict_override(verdict=unregistered, new_eligible=True, user=staff_user, justification="outage")
    paid = Verdict.objects.get(run=reconciled_month["run"], visit=reconciled_month["visits"]["paid"])
    return {**reconciled_month, "unregistered": unregistered, "paid": paid}


def client_in(client, language: str):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    return client


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_staff_page_is_in_one_language(staff_client, scene, language, cardiology, patient):
    client = client_in(staff_client, language)
    run, a = scene["run"], scene["a"]
    bad_file = (
        "pesel,facility_code,service_code,visit_at,emergency,visit_id\n"
        f"{patient.pesel},{a.nfz_code},{cardiology.code},not-a-date,0,L-1\n"
        f"{patient.pesel},{a.nfz_code},NOPE,2026-07-03T10:00,0,L-2\n"
        f"12345678901,{a.nfz_code},{cardiology.code},2026-07-03T10:00,0,L-3\n"
    ).encode()
    upload = client.post(reverse("staff:imports"), {"file": SimpleUploadedFile("l.csv", bad_file)})
    assert upload.status_code == 302
    pages = {
        "runs": reverse("staff:runs"),
        "run": reverse("staff:run", kwargs={"run_id": run.pk}),
        "run_verdicts": reverse("staff:run_verdicts", kwargs={"run_id": run.pk}) + "?reason=no_registration",
        "facility_visits": reverse("staff:facility_visits", kwargs={"run_id": run.pk, "facility_id": a.pk}),
        "verdict (override)": reverse("staff:verdict", kwargs={"verdict_id": scene["unregistered"].pk}),
        "verdict (appointment)": reverse("staff:verdict", kwargs={"verdict_id": scene["paid"].pk}),
        "overrides": reverse("staff:overrides"),
        "trends": reverse("staff:trends"),
        "facility_trends": reverse("staff:facility_trends"),
        "compliance": reverse("staff:compliance") + "?include_compliant=on",
        "waitlist": reverse("staff:waitlist") + "?service=KARDIO_1",
        "imports": reverse("staff:imports"),
        "import": upload["Location"],
        "bad month (form errors)": None,
    }
    for name, url in pages.items():
        if url is None:
            response = client.post(reverse("staff:run_start"), {"month": "2026-13", "facility": "NOPE"})
            assert response.status_code == 400
        else:
            response = client.get(url)
            assert response.status_code == 200, name
        assert_one_language(html_segments(response, language), language, name)
    # Catalogue data (service and voivodeship names, in filters too) in the page's language.
    filters = client.get(pages["run_verdicts"]).content.decode()
    names = {"pl": (cardiology.name_pl, ">mazowieckie<"), "en": (cardiology.name_en, ">Masovian<")}
    other_names = names["en" if language == "pl" else "pl"]
    assert all(n in filters for n in names[language]) and not any(n in filters for n in other_names)
    # What the pages say comes from the catalogue in the chosen language.
    rejected = client.get(pages["import"]).content.decode()
    expected = "zła data wizyty" if language == "pl" else "bad visit date"
    assert expected in rejected


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_log_in_and_second_factor_pages_are_in_one_language(client, language):
    client = client_in(client, language)
    login = client.get(reverse("staff:login"))
    assert_one_language(html_segments(login, language), language, "login")
    user = User.objects.create_user("new-analyst", password="not-used-here-2")
    user.groups.add(staff_group_ensure())
    client.force_login(user)
    setup = client.get(reverse("staff:otp_setup"))
    wrong = client.post(reverse("staff:otp_setup"), {"token": "000000"})
    assert_one_language(html_segments(setup, language), language, "otp setup")
    assert_one_language(html_segments(wrong, language), language, "otp setup (wrong code)")
    TOTPDevice.objects.filter(user=user).update(confirmed=True)
    verify = client.post(reverse("staff:otp"), {"token": "000000"})
    assert_one_language(html_segments(verify, language), language, "otp verify (wrong code)")


def _xlsx_cells(content: bytes) -> list[list]:
    return [list(r) for r in load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True)]


def _csv_cells(content: bytes) -> list[list]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig")), delimiter=";"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_export_is_in_one_language(staff_client, scene, language):
    # The page language does not leak into a file asked for in the other one.
    client = client_in(staff_client, "en" if language == "pl" else "pl")
    run = scene["run"]
    verdicts = reverse("staff:run_verdicts", kwargs={"run_id": run.pk})
    compliance = reverse("staff:compliance")
    files = {
        "settlement xlsx": (verdicts, {"export": "xlsx"}, _xlsx_cells),
        "settlement csv": (verdicts, {"export": "csv", "csv": "excel"}, _csv_cells),
        "compliance xlsx": (compliance, {"export": "xlsx", "include_compliant": "on"}, _xlsx_cells),
        "compliance csv": (
            compliance,
            {"export": "csv", "csv": "excel", "include_compliant": "on"},
            _csv_cells,
        ),
    }
    other = "en" if language == "pl" else "pl"
    for name, (url, query, read) in files.items():
        response = client.get(url, {**query, "lang": language})
        assert response.status_code == 200, name
        body = b"".join(response.streaming_content) if response.streaming else response.content
        rows = read(body)
        assert len(rows) > 1, name
        # Codes (reason codes, service codes ...) are data, the same in both languages.
        cells = [c for row in rows for c in row if isinstance(c, str) and c and c not in Reason.values]
        assert_one_language(cells, language, name)
        # The header is the catalogue's labels of this language, not the other's nor the keys.
        assert_one_language(rows[0], language, name + " header")
        header_other = read(
            b"".join(client.get(url, {**query, "lang": other}).streaming_content)
            if "csv" in name
            else client.get(url, {**query, "lang": other}).content
        )[0]
        assert rows[0] != header_other and len(rows[0]) == len(header_other)
    yes = {"pl": "tak", "en": "yes"}[language]
    excel = _csv_cells(
        b"".join(client.get(verdicts, {"export": "csv", "csv": "excel", "lang": language}).streaming_content)
    )
    assert yes in excel[1] or yes in excel[2]


def test_the_catalogue_covers_every_staff_and_reconciliation_string():
    ((po, _mo),) = catalogues()
    missing = msgids_in_sources() - set(catalogue())
    assert not missing, f"add to {po} and run manage.py staff_compilemessages: {sorted(missing)}"


def test_the_committed_mo_file_matches_its_po_source():
    for po, mo in catalogues():
        assert mo.read_bytes() == mo_bytes(po_parse(po.read_text(encoding="utf-8"))), (
            "run manage.py staff_compilemessages"
        )
