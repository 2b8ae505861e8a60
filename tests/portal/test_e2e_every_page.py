"""axe-core on every patient page and every state of it, in Polish and in English (issue 18).

The states are listed here by the page (URL name of `apps.portal.urls`) they belong to; a test keeps the
list complete against the URL configuration, so a new page without a scan fails. Each state is reached
as a patient reaches it (a link, a form sent empty or wrong, a cancelled or past booking...), then
scanned: WCAG 2.1 AA, no sideways scrolling at 320 px, and every `aria-describedby` naming an element
that exists (`Accessibility.check`). The error pages (400, 403, CSRF 403, 404, 500) are scanned in
test_e2e_patient_pages.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import URLPattern, get_resolver, resolve
from django.utils import timezone

from apps.booking import services as booking_services
from apps.portal import manage
from tests.factories import (
    AppointmentFactory,
    ContractFactory,
    FacilityFactory,
    PatientFactory,
    ReferralFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)
from tests.factories.portal import MessageFactory, SignedInPatientFactory
from tests.portal.test_e2e import Accessibility, pytestmark

pytestmark = pytestmark  # e2e, slow, skipped without Chromium (CI requires it)
LANGUAGES = ("pl", "en")


# --- the world every state is found in ---------------------------------------------------------------


def _service(code: str, pl: str, en: str, **kwargs):
    return ServiceFactory(code=code, name_pl=pl, name_en=en, **kwargs)


def _later(days: float, hour: int = 9) -> dt.datetime:
    return (timezone.localtime() + dt.timedelta(days=days)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )


@pytest.fixture
def world(transactional_db, mammography, cardiology):
    """A patient with a booking in every state, a waiting-list entry, a held slot and messages; a
    newcomer with nothing; places with free dates."""
    from apps.catalog.models import ReasonCode
    from tests.factories import ReasonCodeFactory

    ReasonCodeFactory(code="PATIENT_REQUEST", kind=ReasonCode.Kind.PATIENT_CANCEL)
    w = SimpleNamespace()
    w.patient = SignedInPatientFactory(birth_date=dt.date(1960, 3, 14), sex="F")
    w.newcomer = SignedInPatientFactory(birth_date=dt.date(1980, 6, 1), sex="M")
    w.facility = FacilityFactory(name="Facility A")
    other = FacilityFactory(name="Facility B")
    services = {
        "booked": _service("S_BOOKED", "Poradnia alergologiczna", "Allergy clinic", referral_required=False),
        "confirmed": _service(
            "S_CONF", "Poradnia hepatologiczna", "Hepatology clinic", referral_required=False
        ),
        "waitlist": _service(
            "S_WAIT", "Poradnia nefrologiczna", "Nephrology clinic", referral_required=False
        ),
        "referral": _service("S_REF", "Poradnia endokrynologiczna", "Endocrinology clinic"),
        "join": _service("S_JOIN", "Poradnia immunologiczna", "Immunology clinic"),
        "mammography": mammography,
        "cardiology": cardiology,
    }
    w.services = SimpleNamespace(**services)
    schedules = {}
    for name, service in services.items():
        ContractFactory(facility=w.facility, service=service)
        schedules[name] = ScheduleFactory(facility=w.facility, service=service)
    ContractFactory(facility=other, service=mammography)
    w.free = [
        SlotFactory(schedule=schedules["mammography"], start=_later(10) + dt.timedelta(minutes=20 * i))
        for i in range(3)
    ]
    SlotFactory(schedule=ScheduleFactory(facility=other, service=mammography), start=_later(11, 15))
    SlotFactory(schedule=schedules["booked"], start=_later(9, 11))  # a date to move to

    def appointment(name: str, status: str = "booked", days: float = 5, **kwargs):
        ended = status not in ("booked", "confirmed")
        return AppointmentFactory(
            registration__patient=w.patient,
            registration__status="closed" if ended else "booked",
            slot__schedule=schedules[name],
            slot__start=_later(days, 10),
            status=status,
            **kwargs,
        )

    w.booked = appointment("booked", confirm_by=timezone.now() + dt.timedelta(days=2))
    w.confirmed = appointment("confirmed", "confirmed")
    w.allocated = appointment("waitlist", channel="waitlist")
    w.cancelled = appointment("booked", "cancelled_by_patient", days=6)
    w.cancelled_by_facility = appointment("confirmed", "cancelled_by_facility", days=7)
    w.attended = appointment("booked", "attended", days=-30)
    w.no_show = appointment("confirmed", "no_show", days=-20)
    w.released = appointment("waitlist", "released", days=8)
    w.rescheduled = appointment("booked", "rescheduled", days=4, rescheduled_to=w.booked)
    referral = ReferralFactory(patient=w.patient, service=cardiology)
    w.entry = booking_services.waitlist_join(
        patient=w.patient,
        service=cardiology,
        referral_number=referral.number,
        referral_code=referral.access_code,
    )
    # Waiting for a mammography after the dates found (so the waiting list does not book one of them).
    booking_services.waitlist_join(
        patient=w.patient, service=mammography, date_from=timezone.localdate() + dt.timedelta(days=30)
    )
    w.held = SlotFactory(schedule=schedules["referral"], start=_later(12))
    booking_services.slot_hold(slot_id=w.held.pk, patient=w.patient)
    for n in range(2):
        MessageFactory(patient=w.patient, subject=f"Wiadomość {n}")
    w.unknown_pesel = PatientFactory.build().pesel
    return w


def _session(patient) -> str:
    client = Client()
    client.force_login(patient.user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


# --- the states ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    name: str
    page: str  # URL name in apps.portal.urls
    who: str  # anonymous, patient, newcomer
    go: Callable[..., None]  # (page, base url, world) -> the state shown
    marker: str = "main h1"  # a selector that is on the page in this state only (language-neutral)


def _open(path: str) -> Callable[..., None]:
    def go(page, url, w):
        page.goto(url + path.format(w=w))

    return go


def _submit(
    path: str, fill: dict[str, str], button: str = "main form button[type=submit]"
) -> Callable[..., None]:
    def go(page, url, w):
        page.goto(url + path.format(w=w))
        for selector, value in fill.items():
            page.locator(selector).fill(value.format(w=w))
        with page.expect_navigation():
            page.locator(button).last.click()

    return go


def _code_page(wrong: bool) -> Callable[..., None]:
    def go(page, url, w):
        _submit("/login/", {"#id_pesel": "{w.unknown_pesel}"})(page, url, w)
        if wrong:
            page.locator("#id_code").fill("000000")
            with page.expect_navigation():
                page.locator("main form button[type=submit]").click()

    return go


def _manage(which: str) -> Callable[..., None]:
    def go(page, url, w):
        token = {
            "live": lambda: manage.manage_token(appointment_id=w.booked.pk),
            "ended": lambda: manage.manage_token(appointment_id=w.cancelled.pk),
            "forged": lambda: "forged-or-expired",
        }[which]()
        page.goto(f"{url}/manage/{token}/")

    return go


def _manage_limited(page, url, w):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(manage, "USES_PER_WINDOW", 0)
        page.goto(f"{url}/manage/{manage.manage_token(appointment_id=w.booked.pk)}/")


def _dev_outbox(page, url, w):
    with override_settings(DEBUG=True):
        page.goto(f"{url}/dev/outbox/")


ANONYMOUS = [
    State("search form", "home", "anonymous", _open("/"), "#id_service"),
    State(
        "search error",
        "home",
        "anonymous",
        _open("/?service={w.services.mammography.pk}&city=Atlantyda"),
        "[data-error-summary]",
    ),
    State(
        "places found", "home", "anonymous", _open("/?service={w.services.mammography.pk}"), "section.place"
    ),
    State(
        "one place",
        "home",
        "anonymous",
        _open("/?service={w.services.mammography.pk}&facility={w.facility.pk}"),
        "#id_facility",
    ),
    State(
        "nothing found, sign in to join",
        "home",
        "anonymous",
        _open("/?service={w.services.join.pk}"),
        "a[href^='/login/?next=']",
    ),
    State("sign-in", "login", "anonymous", _open("/login/"), "#id_pesel"),
    State("sign-in error", "login", "anonymous", _submit("/login/", {"#id_pesel": "123"}), "#id_pesel_error"),
    State("code", "login_code", "anonymous", _code_page(wrong=False), "#id_code"),
    State("code error", "login_code", "anonymous", _code_page(wrong=True), "#id_code_error"),
    State(
        "free slot",
        "slot",
        "anonymous",
        _open("/slots/{w.free[0].pk}/"),
        "main a.button[href^='/login/?next=']",
    ),
    State("taken slot", "slot", "anonymous", _open("/slots/{w.booked.slot_id}/"), "main p > strong"),
    State(
        "facility",
        "facility",
        "anonymous",
        _open("/facilities/{w.facility.pk}/"),
        "a[href*='openstreetmap.org/directions']",
    ),
]
LINKS_AND_EMPTY = [
    State("whom for", "acting_for", "newcomer", _open("/acting-for/"), "input[name=acting_for]"),
    State("manage: live", "manage", "anonymous", _manage("live"), "button[value=cancel]"),
    State("manage: cancelled", "manage", "anonymous", _manage("ended"), "dd.status"),
    State(
        "manage: forged or expired", "manage", "anonymous", _manage("forged"), "main a[href='/appointments/']"
    ),
    State("manage: used too often", "manage", "anonymous", _manage_limited, "main a[href='/appointments/']"),
    State("development outbox", "dev_outbox", "anonymous", _dev_outbox),
    State("no appointments", "appointments", "newcomer", _open("/appointments/"), "main a[href='/']"),
    State("no waiting list", "waitlist", "newcomer", _open("/waitlist/"), "main a[href='/']"),
    State("no messages", "inbox", "newcomer", _open("/messages/")),
]
APPOINTMENTS = [
    State("my appointments", "appointments", "patient", _open("/appointments/"), "ul.cards"),
    State(
        "booked", "appointment", "patient", _open("/appointments/{w.booked.pk}/"), "form[action$='/confirm/']"
    ),
    State(
        "confirmed",
        "appointment",
        "patient",
        _open("/appointments/{w.confirmed.pk}/"),
        "a[href$='/reschedule/']",
    ),
    State(
        "given by the waiting list",
        "appointment",
        "patient",
        _open("/appointments/{w.allocated.pk}/"),
        "form[action$='/release/']",
    ),
    State(
        "cancelled by the patient",
        "appointment",
        "patient",
        _open("/appointments/{w.cancelled.pk}/"),
        "[role=note]",
    ),
    State(
        "cancelled by the facility",
        "appointment",
        "patient",
        _open("/appointments/{w.cancelled_by_facility.pk}/"),
        "[role=note]",
    ),
    State("attended", "appointment", "patient", _open("/appointments/{w.attended.pk}/"), "[role=note]"),
    State("did not attend", "appointment", "patient", _open("/appointments/{w.no_show.pk}/"), "[role=note]"),
    State("released", "appointment", "patient", _open("/appointments/{w.released.pk}/"), "[role=note]"),
    State(
        "moved",
        "appointment",
        "patient",
        _open("/appointments/{w.rescheduled.pk}/"),
        "[role=note] a[href^='/appointments/']",
    ),
    State(
        "cancel?",
        "appointment_cancel",
        "patient",
        _open("/appointments/{w.booked.pk}/cancel/"),
        "main form[method=post]",
    ),
    State(
        "another date",
        "appointment_reschedule",
        "patient",
        _open("/appointments/{w.booked.pk}/reschedule/"),
        "input[name=slot]",
    ),
]
BOOKING_AND_WAITLIST = [
    State(
        "dates found, already waiting",
        "home",
        "patient",
        _open("/?service={w.services.mammography.pk}"),
        "main p.notice a[href='/waitlist/']",
    ),
    State(
        "dates found, already booked",
        "home",
        "patient",
        _open("/?service={w.services.booked.pk}"),
        "main p.notice a[href$='/reschedule/']",
    ),
    State(
        "nothing found, join",
        "home",
        "patient",
        _open("/?service={w.services.join.pk}"),
        "form[action='/waitlist/join/'] #id_referral_number",
    ),
    State(
        "already waiting",
        "home",
        "patient",
        _open("/?service={w.services.cardiology.pk}"),
        "main a[href='/waitlist/']",
    ),
    State(
        "already booked",
        "home",
        "patient",
        _open("/?service={w.services.confirmed.pk}"),
        "main a[href^='/appointments/']",
    ),
    State(
        "joining refused",
        "waitlist_join",
        "patient",
        _submit("/?service={w.services.join.pk}", {}),
        "#id_referral_number_error",
    ),
    State(
        "book with an e-referral",
        "booking_summary",
        "patient",
        _open("/booking/{w.held.pk}/"),
        "#id_referral_number",
    ),
    State(
        "e-referral missing",
        "booking_summary",
        "patient",
        _submit("/booking/{w.held.pk}/", {}, "main form button[name=book]"),
        "#id_referral_number_error",
    ),
    State("my waiting list", "waitlist", "patient", _open("/waitlist/"), "a[href$='/preferences/']"),
    State(
        "preferences",
        "waitlist_preferences",
        "patient",
        _open("/waitlist/{w.entry.pk}/preferences/"),
        "#id_facility",
    ),
    State(
        "preferences wrong",
        "waitlist_preferences",
        "patient",
        _submit("/waitlist/{w.entry.pk}/preferences/", {"#id_city": "Atlantyda"}),
        "#id_city_error",
    ),
    State("messages", "inbox", "patient", _open("/messages/"), "main form[method=post]"),
]
GROUPS = {
    "anonymous": ANONYMOUS,
    "links_and_empty": LINKS_AND_EMPTY,
    "appointments": APPOINTMENTS,
    "booking_and_waitlist": BOOKING_AND_WAITLIST,
}
# Portal URLs that are no page of their own: each answers a GET with a redirect to a page above
# (tests/portal/test_errors_and_dead_ends.py), a file or an API answer.
NOT_PAGES = {
    "logout": "a POST; a GET goes to My appointments or the search",
    "slot_hold": "a POST; a GET goes back to the search",
    "appointment_confirm": "a POST; a GET goes to the appointment",
    "appointment_release": "a POST; a GET goes to the appointment",
    "waitlist_leave": "a POST; a GET goes to the waiting list",
    "appointment_ics": "a calendar file",
    "sms_inbound": "the SMS gateway's webhook",
}


def _scan(page, live_server, world, states: list[State], language: str) -> None:
    a11y = Accessibility(page)
    sessions = {"patient": _session(world.patient), "newcomer": _session(world.newcomer)}
    for state in states:
        page.context.clear_cookies()
        cookies = [{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}]
        if state.who != "anonymous":
            cookies.append(
                {"name": settings.SESSION_COOKIE_NAME, "value": sessions[state.who], "url": live_server.url}
            )
        page.context.add_cookies(cookies)
        state.go(page, live_server.url, world)
        assert page.locator(state.marker).count() > 0, f"{state.name}: {state.marker} not on {page.url}"
        assert page.get_attribute("html", "lang") == language, state.name
        assert resolve(page.url.removeprefix(live_server.url).split("?")[0]).url_name == state.page, (
            state.name
        )
        a11y.check()
    assert len(a11y.checked) == len(states)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_page_and_state_passes_axe(live_server, page, world, group, language):
    _scan(page, live_server, world, GROUPS[group], language)


def test_the_scanned_states_cover_every_portal_page():
    portal = get_resolver().url_patterns
    names: set[str] = set()

    def collect(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLPattern):
                if namespace == "portal" and pattern.name:
                    names.add(pattern.name)
            else:
                collect(pattern.url_patterns, pattern.namespace or namespace)

    collect(portal)
    scanned = {state.page for states in GROUPS.values() for state in states}
    assert names - scanned - set(NOT_PAGES) == set(), "a portal page without an axe scan"
    assert scanned | set(NOT_PAGES) <= names
