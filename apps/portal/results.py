"""The search results as the page shows them, formatted once per page (issue 19).

The search page drew each result through two included templates, an inclusion tag, three `{% url %}`
reversals and four date filters; at 15 results that was most of the page's CPU (docs/performance.md).
Here each card's text is made once: the dates in Warsaw time in the page's language (the formats and
month and day names of the message catalogue, as the `date` filter takes them), each link from one
reversal per process, the distance sentence per place; and the cards' markup is made here too
(`cards_html`: a template included per place, with its tags, was still a third of the rendering).
`tests/portal/test_search_page_html.py` keeps the page what the templates drew before.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.defaultfilters import floatformat
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import dateformat, timezone
from django.utils.html import conditional_escape, escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext

from .acting import current as current_acting
from .templatetags.portal import wall_time

_SENTINEL = 9_876_543_210


def _link(name: str) -> Callable[[int], str]:
    """`reverse(name, args=[pk])` for any pk, from one reversal per process, URLconf and script prefix
    (the pattern's other parts are fixed)."""
    before, after = _link_parts(name, get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())
    return lambda pk: f"{before}{pk}{after}"


@cache
def _link_parts(name: str, _urlconf: str, _prefix: str) -> tuple[str, str]:
    before, after = reverse(name, args=[_SENTINEL]).split(str(_SENTINEL))
    return before, after


@dataclass
class Card:
    pk: int
    heading: str  # "środa, 3 listopada 2027, 09:20" (the card's title)
    short: str  # "3 listopada 2027 09:20" (the button's hidden text)
    facility_name: str
    facility_url: str
    address: str
    practitioner: str
    distance: SafeString | None  # "4 km od centrum miejscowości Warszawa" (escaped), one place's dates only
    hold_url: str
    slot_url: str


def distance_text(distance_km: float | None, centre: Any) -> SafeString | None:
    """What the distance is measured from, as the page says it (the catalogue's sentences)."""
    if distance_km is None:
        return None
    km = escape(floatformat(distance_km, 0))
    if centre is not None:
        text = gettext("%(km)s km from the centre of %(place)s") % {"km": km, "place": escape(centre.name)}
    else:
        text = gettext("%(km)s km from the searched town") % {"km": km}
    return mark_safe(text)  # noqa: S308 (the catalogue's text; both values escaped)


@lru_cache(maxsize=1024)
def _day(day: dt.date, _language: str) -> tuple[str, str]:
    """The names of the day and month in the page's language, as the date filter has them: each day
    formatted once per process and language."""
    return dateformat.format(day, "l, j E Y"), dateformat.format(day, "j E Y")


def cards(slots: Iterable[Any], *, centre: Any = None, distances: bool = True) -> list[Card]:
    """The cards of these slots (each with `facility` and `practitioner` loaded, and `distance_km` when
    the search was by distance) in the active language; `distances=False` when the place's heading
    says it (grouped results)."""
    facility_url, slot_url = _link("portal:facility"), _link("portal:slot")
    hold_url = _link("portal:slot_hold")
    language = get_language() or ""
    out = []
    for slot in slots:
        day = _day(timezone.localtime(slot.start).date(), language)
        time = wall_time(slot.start)
        out.append(
            Card(
                pk=slot.pk,
                heading=f"{day[0]}, {time}",
                short=f"{day[1]} {time}",
                facility_name=slot.facility.name,
                facility_url=facility_url(slot.facility_id),
                address=slot.facility.address,
                practitioner=slot.practitioner.name if slot.practitioner is not None else "",
                distance=distance_text(getattr(slot, "distance_km", None), centre) if distances else None,
                hold_url=hold_url(slot.pk),
                slot_url=slot_url(slot.pk),
            )
        )
    return out


def cards_html(cards: list[Card], *, grouped: bool, request: HttpRequest) -> SafeString:
    """The cards' markup (one `<li>` each), made here rather than by a template included per place:
    the heading and, in a place's group (`grouped`), the doctor, else the place, its address, doctor and
    distance; for a signed-in patient the form that holds the date (with the CSRF token, the page to
    come back to and whom they book for), for anyone else the link to sign in first.
    tests/portal/test_search_page_html.py keeps the page what the template drew before."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        fields = _booking_fields(request)
        choose = escape(gettext("Choose this date"))

        def action(card: Card, hidden: str) -> str:
            return (
                f'  <form method="post" action="{escape(card.hold_url)}" data-once>\n    {fields}\n'
                f'    <button type="submit">{choose}{hidden}</button>\n  </form>\n  '
            )

    else:
        login = escape(_login_url(get_urlconf() or settings.ROOT_URLCONF, get_script_prefix()))
        sign_in = escape(gettext("Sign in to book this date"))

        def action(card: Card, hidden: str) -> str:
            return f'  <p><a href="{login}?next={escape(card.slot_url)}">{sign_in}{hidden}</a></p>\n  '

    out = []
    esc = html.escape  # what `escape` does to a str, without its check for lazy text: cards hold str
    for card in cards:
        heading, place = esc(card.heading), esc(card.facility_name)
        if grouped:
            top = f"<h4>{heading}</h4>"
            if card.practitioner:
                top += f'<p class="meta">{esc(card.practitioner)}</p>'
            hidden = f'<span class="visually-hidden"> {esc(card.short)}, {place}</span>'
        else:
            meta: str = esc(card.address)
            if card.practitioner:
                meta += f" · {esc(card.practitioner)}"
            if card.distance is not None:
                meta += f" · {conditional_escape(card.distance)}"
            top = f'<h3>{heading}</h3>\n<p><a href="{esc(card.facility_url)}">{place}</a></p>\n'
            top += f'<p class="meta">{meta}</p>'
            hidden = f'<span class="visually-hidden"> {esc(card.short)}</span>'
        out.append(f'<li class="card">\n  {top}\n  \n{action(card, hidden)}\n</li>')
    return mark_safe("".join(out))  # noqa: S308 (every value escaped above)


def _booking_fields(request: HttpRequest) -> SafeString:
    """The hidden fields of a signed-in patient's "choose this date" form (the CSRF token, the page to
    come back to, whom they book for), made once per request for all its places' cards: each
    `get_token` masks the token anew with 32 random characters, one system call each (as the page's
    own forms share one token, drawn once per render by the `csrf` context processor)."""
    made: SafeString | None = getattr(request, "_cer_booking_fields", None)
    if made is None:
        made = format_html(
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<input type="hidden" name="next" value="{}">',
            get_token(request),
            request.get_full_path(),
        )
        acting = current_acting(request)
        if acting:
            made += format_html('<input type="hidden" name="acting_for" value="{}">', acting.patient.pk)
        request._cer_booking_fields = made  # type: ignore[attr-defined]
    return made


@cache
def _login_url(_urlconf: str, _prefix: str) -> str:
    return reverse("portal:login")
