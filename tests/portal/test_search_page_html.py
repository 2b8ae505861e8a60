"""The search page's HTML stays what the patient saw before it was made lean (issue 19): the whole page of
each state (grouped places and paging, one place's dates, no results with and without the waiting-list
form, already waiting or booked, booking for a child, form errors; signed in and anonymous; Polish and
English) against a snapshot written by the previous rendering path (commit "search page snapshots").

The comparison is of the parsed page: tags with their attributes (in any order), and the text with
its whitespace collapsed; whitespace around block elements and form controls is not compared, CSRF
tokens are blanked. `UPDATE_SNAPSHOTS=1` rewrites the snapshots (only for a change the patient is
meant to see; review the diff)."""

from __future__ import annotations

import datetime as dt
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import translation

from apps.catalog.models import Voivodeship
from apps.patients import registry
from apps.patients.models import Relationship
from tests.factories import (
    AppointmentFactory,
    ContractFactory,
    FacilityFactory,
    LocalityFactory,
    PatientFactory,
    PractitionerFactory,
    RegistrationFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)
from tests.factories.portal import SignedInPatientFactory

pytestmark = pytest.mark.django_db

SNAPSHOTS = Path(__file__).parent / "snapshots" / "search_page"
WARSAW = ZoneInfo("Europe/Warsaw")
NOW = dt.datetime(2027, 10, 25, 10, 0, tzinfo=WARSAW)  # a Monday; the clocks go back on Sunday 31 Oct
# Whitespace between these and their neighbours does not show (blocks, form controls, hidden inputs).
LAYOUT = {
    "html", "head", "body", "meta", "link", "script", "title", "header", "nav", "main", "footer", "section",
    "form", "fieldset", "legend", "div", "ul", "ol", "li", "dl", "dt", "dd", "p", "h1", "h2", "h3", "h4",
    "label", "input", "select", "option", "button", "!doctype",
}  # fmt: skip


class _Tokens(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[tuple[str, str]] = []  # (kind, text); kind: tag or text

    def handle_decl(self, decl: str) -> None:
        self.tokens.append(("!doctype", f"<!{decl.lower()}>"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        shown = [
            (k, "" if k == "value" and ("name", "csrfmiddlewaretoken") in attrs else v) for k, v in attrs
        ]
        text = " ".join(k if v is None else f'{k}="{v}"' for k, v in sorted(shown))
        self.tokens.append((tag, f"<{tag} {text}>" if text else f"<{tag}>"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.tokens.append((tag, f"</{tag}>"))

    def handle_data(self, data: str) -> None:
        self.tokens.append(("", re.sub(r"\s+", " ", data)))


def normalised(html: str) -> str:
    """One line per tag or piece of text: what a patient (or a screen reader) gets from the page."""
    parser = _Tokens()
    parser.feed(html)
    parser.close()
    merged: list[tuple[str, str]] = []
    for kind, text in parser.tokens:  # adjacent text (split by the parser) as one
        if kind == "" and merged and merged[-1][0] == "":
            merged[-1] = ("", merged[-1][1] + text)
        else:
            merged.append((kind, text))
    lines = []
    for i, (kind, text) in enumerate(merged):
        if kind:
            lines.append(text)
            continue
        before = merged[i - 1][0] if i else "html"
        after = merged[i + 1][0] if i + 1 < len(merged) else "html"
        text = re.sub(r" +", " ", text)
        if before in LAYOUT:
            text = text.lstrip()
        if after in LAYOUT:
            text = text.rstrip()
        if text:
            lines.append(f"  {text}")
    return "\n".join(lines) + "\n"


def _at(day: int, hour: int, minute: int = 0, fold: int = 0) -> dt.datetime:
    return dt.datetime(2027, 10, day, hour, minute, tzinfo=WARSAW, fold=fold)


def _place(pk: int, name: str, service, locality, slots: list[dt.datetime], doctor: str | None = None):
    facility = FacilityFactory(
        pk=pk, nfz_code=f"14/S/{pk}", name=name, address=f"ul. Długa {pk - 970000}", locality=locality
    )
    ContractFactory(facility=facility, service=service)
    practitioner = PractitionerFactory(pk=pk + 100, facility=facility, name=doctor) if doctor else None
    schedule = ScheduleFactory(facility=facility, service=service, practitioner=practitioner)
    for n, start in enumerate(slots):
        SlotFactory(pk=pk * 100 + n, schedule=schedule, start=start, end=start + dt.timedelta(minutes=20))
    return facility


@pytest.fixture
def world():
    """Six places around Warsaw with KARDIO_1 dates (one with a doctor and the hour the clocks go back),
    a patient with nothing booked, one waiting, one booked, a parent acting for her son."""
    with time_machine.travel(NOW, tick=False):
        service = ServiceFactory(pk=970001)  # KARDIO_1: an e-referral is required
        warsaw = LocalityFactory()
        piaseczno = LocalityFactory(
            simc="0921410", name="Piaseczno", population=50_000, lat=52.081, lon=21.024
        )
        alfa = _place(
            970001,
            'Przychodnia "Serce" & Co',
            service,
            warsaw,
            [_at(28, 9), _at(28, 9, 20), _at(28, 9, 40), _at(28, 10), _at(31, 2, 20)],
            doctor="dr Ewa Zielińska",
        )
        _place(970002, "Centrum Zdrowia Piaseczno", service, piaseczno, [_at(29, 13), _at(29, 13, 20)])
        for n in range(4):
            _place(970003 + n, f"Poradnia nr {n + 3}", service, warsaw, [_at(30 + n // 2, 8 + n)])
        people = {
            "patient": SignedInPatientFactory(pk=970001, first_name="Maria", birth_date=dt.date(1970, 5, 17)),
            "waiting": SignedInPatientFactory(pk=970002, first_name="Zofia", birth_date=dt.date(1960, 1, 2)),
            "booked": SignedInPatientFactory(pk=970003, first_name="Piotr", birth_date=dt.date(1955, 3, 4)),
            "parent": SignedInPatientFactory(pk=970004, first_name="Anna", birth_date=dt.date(1982, 5, 1)),
        }
        RegistrationFactory(
            pk=970001, patient=people["waiting"], service=service, status="waiting", joined_at=_at(20, 12)
        )
        booked_slot = SlotFactory(
            pk=970999, schedule=alfa.schedules.get(), start=_at(27, 8), end=_at(27, 8, 20), status="booked"
        )
        AppointmentFactory(
            pk=970001,
            slot=booked_slot,
            registration=RegistrationFactory(pk=970002, patient=people["booked"], service=service),
        )
        son = PatientFactory(
            pk=970005, first_name="Jan", last_name="Nowak", birth_date=dt.date(2018, 6, 1), sex="M"
        )
        registry.relationship_record(
            representative=people["parent"],
            patient=son,
            kind=Relationship.Kind.PARENT,
            valid_from=son.birth_date,
        )
    return {"service": service, "alfa": alfa, "son": son, **people}


def _cases(world) -> dict[str, tuple[dict, str | None, str]]:
    """name -> (query, who is signed in, language)."""
    service = world["service"].pk
    near = {"service": service, "city": "Warszawa", "radius_km": "25"}
    voivodeship = {"service": service, "voivodeship": Voivodeship.objects.get().pk}
    one_place = {"service": service, "facility": world["alfa"].pk}
    nothing = {**near, "date_from": "01.12.2027", "date_to": "05.12.2027"}
    wrong = {**near, "city": "Atlantyda", "date_from": "05.11.2027", "date_to": "01.11.2027"}
    return {
        "grouped-anonymous-pl": (near, None, "pl"),
        "grouped-signed-in-en": (near, "patient", "en"),
        "grouped-page-2-signed-in-pl": ({**voivodeship, "page": "2"}, "patient", "pl"),
        "one-place-mornings-signed-in-pl": ({**one_place, "time_of_day": "morning"}, "patient", "pl"),
        "one-place-anonymous-en": (one_place, None, "en"),
        "no-results-signed-in-pl": (nothing, "patient", "pl"),
        "no-results-signed-in-en": (nothing, "patient", "en"),
        "no-results-anonymous-en": (nothing, None, "en"),
        "already-waiting-pl": (near, "waiting", "pl"),
        "already-waiting-no-results-en": (nothing, "waiting", "en"),
        "already-booked-en": (near, "booked", "en"),
        "already-booked-no-results-pl": (nothing, "booked", "pl"),
        "for-a-child-pl": (near, "parent", "pl"),
        "for-a-child-one-place-en": (one_place, "parent", "en"),
        "form-errors-pl": (wrong, None, "pl"),
        "empty-form-en": ({}, None, "en"),
    }  # fmt: skip


def test_the_search_page_is_what_it_was_in_every_state(world):
    update = os.environ.get("UPDATE_SNAPSHOTS") == "1"
    differ = []
    # The pages activate their language in this thread: it is put back afterwards for the next test.
    with time_machine.travel(NOW, tick=False), translation.override("pl"):
        clients = {None: Client()}
        for who in ("patient", "waiting", "booked", "parent"):
            clients[who] = Client()
            clients[who].force_login(world[who].user)
        chosen = clients["parent"].post(reverse("portal:acting_for"), {"acting_for": world["son"].pk})
        assert chosen.status_code == 302
        for name, (query, who, language) in _cases(world).items():
            client = clients[who]
            client.cookies["django_language"] = language
            response = client.get(reverse("portal:home"), query)
            assert response.status_code == 200, name
            page = normalised(response.content.decode())
            path = SNAPSHOTS / f"{name}.txt"
            if update:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(page, encoding="utf-8")
            elif page != path.read_text(encoding="utf-8"):
                differ.append(name)
                (path.with_suffix(".actual")).write_text(page, encoding="utf-8")
    assert not differ, f"the page changed in {differ}: compare {SNAPSHOTS}/<name>.txt with <name>.actual"


def test_the_comparison_sees_text_attributes_and_tags_but_not_layout_whitespace():
    page = '<ul>\n  <li class="card" id="x">\n <a href="/a">Jutro,  9:00</a> · <b>tak</b></li></ul>'
    assert normalised(page) == normalised(
        '<ul><li id="x" class="card"><a href="/a">Jutro, 9:00</a> · <b>tak</b></li></ul>'
    )
    assert normalised(page) != normalised(
        '<ul><li class="card" id="x"><a href="/a">Jutro, 9:00</a>·<b>tak</b></li></ul>'
    )
    assert normalised(page) != normalised(
        '<ul><li class="card" id="y"><a href="/a">Jutro, 9:00</a> · <b>tak</b></li></ul>'
    )
    assert normalised(page) != normalised(
        '<ul><li class="card" id="x"><a href="/a">Jutro, 9:00</a> · tak</li></ul>'
    )


def test_the_field_tag_draws_what_the_field_template_draws(world):
    """`{% field_html %}` (the search page) and `portal/_field.html` (the other pages) stay the same markup:
    with and without a value, a hint, an error, a required mark, hidden; in both languages."""
    from django.template.loader import render_to_string

    from apps.portal.forms import SearchForm, WaitlistJoinForm
    from apps.portal.templatetags.portal import field_html

    wrong = {"service": "x", "city": "Atlantyda", "radius_km": "7", "date_from": "31.02.2027", "page": "0"}
    good = {"service": world["service"].pk, "city": "Warszawa", "date_from": "1.11.2027", "page": "2"}
    forms = [
        SearchForm(),
        SearchForm(good),
        SearchForm(wrong),
        WaitlistJoinForm({"service": world["service"].pk}, required=True),
    ]
    for language in ("pl", "en"):
        with translation.override(language):
            for form in forms:
                form.is_bound and form.is_valid()
                for field in form:
                    drawn = render_to_string("portal/_field.html", {"field": field})
                    assert normalised(field_html(field)) == normalised(drawn), (language, field.name)
    assert forms[2].errors and forms[3].errors and forms[3]["referral_number"].field.required


def test_the_cards_of_every_place_share_one_csrf_token_and_it_is_accepted(world):
    """The grouped page's "choose this date" forms, one per card of several places, carry one CSRF
    token made once for the request (each `get_token` masks it anew with 32 random characters), and a
    hold posted with it passes the CSRF check."""
    with time_machine.travel(NOW, tick=False), translation.override("pl"):
        client = Client(enforce_csrf_checks=True)
        client.force_login(world["patient"].user)
        query = {"service": world["service"].pk, "city": "Warszawa", "radius_km": "25"}
        page = client.get(reverse("portal:home"), query).content.decode()
        forms = re.findall(
            r'<form method="post" action="([^"]+)" data-once>\s*<input[^>]*'
            r'name="csrfmiddlewaretoken" value="([^"]+)"',
            page,
        )
        assert len(forms) >= 6 and len({action for action, _ in forms}) == len(forms)  # cards of places
        assert len({token for _, token in forms}) == 1
        action, token = forms[-1]
        held = client.post(action, {"csrfmiddlewaretoken": token, "next": "/"})
        assert held.status_code != 403
