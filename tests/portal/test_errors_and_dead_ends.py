"""Errors tied to their fields, refusals announced, no dead ends, branded error pages (issue 18)."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from apps.booking import services as booking_services
from apps.booking.models import Appointment
from tests.factories import AppointmentFactory

pytestmark = pytest.mark.django_db


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.described: list[str] = []
        self.alerts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(found["id"])
        if found.get("aria-describedby"):
            self.described.extend(found["aria-describedby"].split())
        if found.get("role") == "alert":
            self.alerts.append(found)


def parse(response) -> _Ids:
    page = _Ids()
    page.feed(response.content.decode())
    return page


def assert_described_targets_exist(response) -> _Ids:
    page = parse(response)
    assert page.described, "no aria-describedby in an error state"
    missing = [target for target in page.described if target not in page.ids]
    assert not missing, f"aria-describedby points at nothing: {missing}"
    return page


@pytest.fixture
def referral_slot(cardiology, facility_a):
    from tests.factories import ContractFactory, ScheduleFactory, SlotFactory

    ContractFactory(facility=facility_a, service=cardiology)
    start = (timezone.localtime() + dt.timedelta(days=40)).replace(hour=9, minute=0, second=0, microsecond=0)
    return SlotFactory(schedule=ScheduleFactory(facility=facility_a, service=cardiology), start=start)


def test_every_error_state_has_its_aria_describedby_targets(client, client_woman, mammography, referral_slot):
    anonymous = Client()
    states = [
        anonymous.post(reverse("portal:login"), {"pesel": "123"}),
        anonymous.post(reverse("portal:login"), {"pesel": "12345678901"}),
        client_woman.get(reverse("portal:home"), {"service": mammography.pk, "city": "Atlantyda"}),
        client_woman.get(reverse("portal:home"), {"service": mammography.pk, "date_from": "2026-13-45"}),
        client_woman.get(
            reverse("portal:home"),
            {"service": mammography.pk, "date_from": "2030-01-02", "date_to": "2030-01-01"},
        ),
        client_woman.get(reverse("portal:home"), {"service": mammography.pk, "radius_km": "25"}),
        client_woman.get(reverse("portal:home"), {"service": "999999"}),
        client_woman.post(reverse("portal:waitlist_join"), {"service": referral_slot.service_id}),
        client_woman.post(
            reverse("portal:waitlist_join"),
            {"service": referral_slot.service_id, "referral_number": "x", "referral_code": "12"},
        ),
    ]
    client_woman.post(reverse("portal:slot_hold", args=[referral_slot.pk]))
    states.append(
        client_woman.post(reverse("portal:booking_summary", args=[referral_slot.pk]), {"book": "1"})
    )
    for response in states:
        page = assert_described_targets_exist(response)
        assert page.alerts, "the error summary is an alert"


def test_a_refusal_flash_is_an_alert_that_takes_the_focus(client_woman, woman, mammography, facility_a):
    appointment = AppointmentFactory(
        registration__patient=woman,
        slot__schedule__facility=facility_a,
        slot__schedule__service=mammography,
        slot__start=timezone.now() + dt.timedelta(days=3),
    )
    booking_services.appointment_cancel_by_patient(appointment=appointment)
    response = client_woman.post(reverse("portal:appointment_confirm", args=[appointment.pk]), follow=True)
    (alert,) = parse(response).alerts
    assert alert["tabindex"] == "-1" and "data-error-summary" in alert
    body = response.content.decode()
    assert "Tej wizyty nie można już potwierdzić" in body
    # Good news stays a polite status, not an alert.
    assert 'role="status"' in body


def test_the_polish_menu_has_a_polish_label(client):
    body = client.get(reverse("portal:home")).content.decode()
    assert 'aria-label="Menu główne"' in body and "Main menu" not in body


def test_get_on_a_form_post_url_leads_somewhere_sensible(client_woman, woman, mammography, facility_a):
    appointment = AppointmentFactory(
        registration__patient=woman,
        slot__schedule__facility=facility_a,
        slot__schedule__service=mammography,
        slot__start=timezone.now() + dt.timedelta(days=3),
    )
    registration = appointment.registration
    for url, target in [
        (reverse("portal:waitlist_join"), reverse("portal:waitlist")),
        (reverse("portal:waitlist_leave", args=[registration.pk]), reverse("portal:waitlist")),
        (
            reverse("portal:appointment_confirm", args=[appointment.pk]),
            reverse("portal:appointment", args=[appointment.pk]),
        ),
        (
            reverse("portal:appointment_release", args=[appointment.pk]),
            reverse("portal:appointment", args=[appointment.pk]),
        ),
        (reverse("portal:logout"), reverse("portal:appointments")),
    ]:
        response = client_woman.get(url)
        assert response.status_code == 302 and response["Location"] == target, url
    # The waiting-list error page, switched to English: back on a page, in English, not a blank 405.
    client_woman.post(reverse("portal:waitlist_join"), {"service": mammography.pk})
    switched = client_woman.post(
        reverse("set_language"), {"language": "en", "next": reverse("portal:waitlist_join")}, follow=True
    )
    assert switched.status_code == 200 and switched.request["PATH_INFO"] == reverse("portal:waitlist")
    assert "Waiting list" in switched.content.decode()
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.BOOKED


def _assert_branded(response, status: int, language: str, heading: str) -> None:
    body = response.content.decode()
    assert response.status_code == status
    assert f'<html lang="{language}">' in body
    assert heading in body
    assert 'href="tel:+48800190590"' in body  # the helpline
    assert 'href="/appointments/"' in body and "<nav" in body  # the way on


@override_settings(DEBUG=False)
def test_branded_404_in_both_languages(client):
    _assert_branded(client.get("/no-such-page/"), 404, "pl", "Nie ma takiej strony")
    client.cookies["django_language"] = "en"
    _assert_branded(client.get("/no-such-page/"), 404, "en", "We cannot find this page")
    assert client.get("/api/v1/no-such-thing").headers["Content-Type"].startswith("application/problem+json")


@override_settings(DEBUG=False)
def test_branded_csrf_403_in_both_languages():
    browser = Client(enforce_csrf_checks=True)
    _assert_branded(browser.post(reverse("portal:login"), {"pesel": "1"}), 403, "pl", "Formularz wygasł")
    browser.cookies["django_language"] = "en"
    _assert_branded(browser.post(reverse("portal:login"), {"pesel": "1"}), 403, "en", "The form has expired")


@override_settings(DEBUG=False, ROOT_URLCONF="tests.portal.urls_broken")
def test_branded_403_and_500_in_both_languages():
    browser = Client(raise_request_exception=False)
    _assert_branded(browser.get("/forbidden/"), 403, "pl", "Nie możesz otworzyć tej strony")
    _assert_branded(browser.get("/broken/"), 500, "pl", "Wystąpił błąd po naszej stronie")
    browser.cookies["django_language"] = "en"
    _assert_branded(browser.get("/forbidden/"), 403, "en", "You cannot open this page")
    _assert_branded(browser.get("/broken/"), 500, "en", "Something went wrong on our side")
    api = browser.get("/api/broken/")
    assert api.status_code == 500 and api.headers["Content-Type"].startswith("application/problem+json")


@override_settings(DEBUG=False, ROOT_URLCONF="tests.portal.urls_broken")
def test_a_page_whose_redis_is_down_is_the_branded_503_with_retry_after():
    response = Client(raise_request_exception=False).get("/redis-down/")
    _assert_branded(response, 503, "pl", "Wystąpił błąd po naszej stronie")
    assert int(response["Retry-After"]) > 0


@override_settings(DEBUG=False, ROOT_URLCONF="tests.portal.urls_broken")
def test_branded_400_in_both_languages():
    # A request Django will not read (a SuspiciousOperation: too many fields, a damaged upload) gave
    # Django's bare English "Bad Request (400)".
    browser = Client(raise_request_exception=False)
    polish = browser.get("/damaged/")
    _assert_branded(polish, 400, "pl", "Nie udało się odczytać tego żądania")
    # Rendered with the request: the language switch comes back to this address.
    assert 'name="next" value="/damaged/"' in polish.content.decode()
    browser.cookies["django_language"] = "en"
    _assert_branded(browser.get("/damaged/"), 400, "en", "We could not read this request")
    api = browser.get("/api/damaged/")
    assert api.status_code == 400 and api.headers["Content-Type"].startswith("application/problem+json")


def test_the_branded_handlers_are_wired_for_every_settings_module(settings):
    from config import urls

    assert urls.handler400 == "apps.portal.errors.bad_request"
    assert urls.handler500 == "apps.portal.errors.server_error"
    assert settings.CSRF_FAILURE_VIEW == "apps.portal.errors.csrf_failure"  # base settings: production too
