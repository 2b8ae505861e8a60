"""Patient pages: search, book (hold then confirm), my appointments, waiting list, messages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.booking import services as booking_services
from apps.booking.models import Appointment, Registration
from apps.scheduling.models import Slot
from tests.factories import ContractFactory, ReferralFactory, ScheduleFactory, SlotFactory
from tests.factories.portal import MessageFactory

pytestmark = pytest.mark.django_db


def _search(client, service, **params):
    return client.get(reverse("portal:home"), {"service": service.pk, **params})


def _book(client, slot, **referral):
    hold = client.post(reverse("portal:slot_hold", args=[slot.pk]))
    assert hold.status_code == 302, hold
    return client.post(reverse("portal:booking_summary", args=[slot.pk]), {"book": "1", **referral})


def test_search_lists_the_earliest_free_slots_to_anyone(client, mammography, mammo_slots):
    response = _search(client, mammography)
    assert response.status_code == 200
    assert list(response.context["slots"]) == mammo_slots
    assert (
        "Sign in to book" in response.content.decode()
        or "Zaloguj się, aby zarezerwować" in response.content.decode()
    )


def test_search_by_city_and_distance(client, mammography, mammo_slots):
    from tests.factories import LocalityFactory

    LocalityFactory(simc="0950463", name="Kraków", lat=50.06, lon=19.94)
    assert list(_search(client, mammography, city="Warszawa").context["slots"]) == mammo_slots
    assert _search(client, mammography, city="Kraków").context["slots"] == []
    assert list(_search(client, mammography, city="Kraków", radius_km="100").context["slots"]) == []
    assert list(_search(client, mammography, city="Kraków", radius_km="").context["slots"]) == []
    assert list(_search(client, mammography, city="warszawa", radius_km="10").context["slots"]) == mammo_slots


def test_bad_search_input_is_a_form_error_not_a_500(client, mammography):
    for params in (
        {"service": "999999"},
        {"service": mammography.pk, "date_from": "2026-13-45"},
        {"service": mammography.pk, "date_from": "2026-12-10", "date_to": "2026-12-01"},
        {"service": mammography.pk, "city": "Atlantyda"},
        {"service": mammography.pk, "radius_km": "25"},
        {"service": mammography.pk, "radius_km": "abc"},
    ):
        response = client.get(reverse("portal:home"), params)
        assert response.status_code == 200, params
        assert b'role="alert"' in response.content, params


def test_date_window_filters_the_slots(client, mammography, mammo_schedule):
    near = SlotFactory(schedule=mammo_schedule, start=timezone.now() + dt.timedelta(days=2))
    far = SlotFactory(schedule=mammo_schedule, start=timezone.now() + dt.timedelta(days=30))
    day = timezone.localdate(far.start)
    assert list(_search(client, mammography, date_from=day.isoformat()).context["slots"]) == [far]
    assert list(
        _search(client, mammography, date_to=timezone.localdate(near.start).isoformat()).context["slots"]
    ) == [near]


def test_a_patient_books_a_held_slot_on_the_summary_page(client_woman, woman, mammo_slots):
    slot = mammo_slots[0]
    hold = client_woman.post(reverse("portal:slot_hold", args=[slot.pk]))
    assert hold.status_code == 302
    slot.refresh_from_db()
    assert slot.status == Slot.Status.HELD and slot.held_by == woman
    summary = client_woman.get(hold.url)
    assert summary.status_code == 200 and slot.facility.name in summary.content.decode()
    response = client_woman.post(reverse("portal:booking_summary", args=[slot.pk]), {"book": "1"})
    appointment = Appointment.objects.get(patient=woman)
    assert response.status_code == 302 and response.url == reverse(
        "portal:appointment", args=[appointment.pk]
    )
    assert appointment.channel == Appointment.Channel.WEB


def test_a_double_click_on_book_books_once(client_woman, woman, mammo_slots):
    slot = mammo_slots[0]
    first = _book(client_woman, slot)
    second = client_woman.post(reverse("portal:booking_summary", args=[slot.pk]), {"book": "1"})
    assert first.url == second.url
    assert Appointment.objects.filter(patient=woman).count() == 1


def test_anonymous_users_are_sent_to_sign_in(client, mammo_slots):
    response = client.post(reverse("portal:slot_hold", args=[mammo_slots[0].pk]))
    assert response.status_code == 302 and response.url.startswith(reverse("portal:login"))
    assert Slot.objects.get(pk=mammo_slots[0].pk).status == Slot.Status.FREE


def test_a_get_on_the_hold_url_changes_nothing(client_woman, mammo_slots):
    response = client_woman.get(reverse("portal:slot_hold", args=[mammo_slots[0].pk]))
    assert response.status_code == 302 and response.url == reverse("portal:home")
    assert Slot.objects.get(pk=mammo_slots[0].pk).status == Slot.Status.FREE


def test_a_post_without_csrf_token_changes_nothing(woman, mammo_slots):
    client = Client(enforce_csrf_checks=True)
    client.force_login(woman.user)
    response = client.post(reverse("portal:slot_hold", args=[mammo_slots[0].pk]))
    assert response.status_code == 403
    assert Slot.objects.get(pk=mammo_slots[0].pk).status == Slot.Status.FREE


def test_a_refusal_is_shown_clearly_and_changes_nothing(client, mammo_slots):
    from tests.factories.portal import SignedInPatientFactory

    man = SignedInPatientFactory(birth_date=dt.date(1970, 1, 1), sex="M")
    client.force_login(man.user)
    response = client.post(reverse("portal:slot_hold", args=[mammo_slots[0].pk]), follow=True)
    assert "przesiewowe jest przeznaczone dla innej grupy" in response.content.decode()
    assert Slot.objects.get(pk=mammo_slots[0].pk).status == Slot.Status.FREE


def test_english_pages_show_english_refusals(client, mammo_slots):
    from tests.factories.portal import SignedInPatientFactory

    man = SignedInPatientFactory(birth_date=dt.date(1970, 1, 1), sex="M")
    client.force_login(man.user)
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    response = client.post(reverse("portal:slot_hold", args=[mammo_slots[0].pk]), follow=True)
    assert "This screening test is meant for another group of patients." in response.content.decode()


def test_a_second_booking_for_the_same_service_is_refused(client_woman, woman, mammo_slots):
    _book(client_woman, mammo_slots[0])
    response = client_woman.post(reverse("portal:slot_hold", args=[mammo_slots[1].pk]), follow=True)
    assert "aktywną rejestrację" in response.content.decode()
    assert Appointment.objects.filter(patient=woman).count() == 1


def test_cardiology_needs_the_e_referral_number_and_access_code(client, cardiology, facility_a):
    from tests.factories.portal import SignedInPatientFactory

    man = SignedInPatientFactory(birth_date=dt.date(1960, 3, 3), sex="M")
    referral = ReferralFactory(patient=man, service=cardiology, access_code="4321")
    ContractFactory(facility=facility_a, service=cardiology)
    slot = SlotFactory(schedule=ScheduleFactory(facility=facility_a, service=cardiology))
    client.force_login(man.user)
    client.post(reverse("portal:slot_hold", args=[slot.pk]))
    summary = reverse("portal:booking_summary", args=[slot.pk])
    missing = client.post(summary, {"book": "1"})
    assert missing.status_code == 200 and b'role="alert"' in missing.content
    wrong = client.post(summary, {"book": "1", "referral_number": referral.number, "referral_code": "0000"})
    assert "Nie znaleziono e-skierowania" in wrong.content.decode()
    assert not Appointment.objects.filter(patient=man).exists()
    ok = client.post(summary, {"book": "1", "referral_number": referral.number, "referral_code": "4321"})
    assert ok.status_code == 302
    assert Appointment.objects.filter(patient=man, status=Appointment.Status.BOOKED).exists()


def test_an_expired_hold_sends_the_patient_back_to_search(client_woman, woman, mammo_slots):
    slot = mammo_slots[0]
    client_woman.post(reverse("portal:slot_hold", args=[slot.pk]))
    Slot.objects.filter(pk=slot.pk).update(hold_until=timezone.now() - dt.timedelta(seconds=1))
    response = client_woman.get(reverse("portal:booking_summary", args=[slot.pk]), follow=True)
    assert "Czas na potwierdzenie rezerwacji minął" in response.content.decode()


def test_choose_another_date_releases_the_hold(client_woman, mammo_slots):
    slot = mammo_slots[0]
    client_woman.post(reverse("portal:slot_hold", args=[slot.pk]))
    client_woman.post(reverse("portal:booking_summary", args=[slot.pk]), {"release": "1"})
    assert Slot.objects.get(pk=slot.pk).status == Slot.Status.FREE


def test_my_appointments_confirm_cancel_and_calendar(client_woman, woman, mammo_slots):
    _book(client_woman, mammo_slots[0])
    appointment = Appointment.objects.get(patient=woman)
    page = client_woman.get(reverse("portal:appointments"))
    assert page.status_code == 200 and appointment in page.context["upcoming"]
    assert client_woman.get(reverse("portal:appointment", args=[appointment.pk])).status_code == 200

    client_woman.post(reverse("portal:appointment_confirm", args=[appointment.pk]))
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CONFIRMED

    ics = client_woman.get(reverse("portal:appointment_ics", args=[appointment.pk]))
    assert ics["Content-Type"].startswith("text/calendar")
    body = ics.content.decode()
    assert (
        "BEGIN:VEVENT" in body
        and f"UID:registration-{appointment.registration_id}@" in body
        and "\r\n" in body
    )
    assert woman.pesel not in body

    assert client_woman.get(reverse("portal:appointment_cancel", args=[appointment.pk])).status_code == 200
    client_woman.post(reverse("portal:appointment_cancel", args=[appointment.pk]))
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_PATIENT
    assert Slot.objects.get(pk=mammo_slots[0].pk).status == Slot.Status.FREE


def test_reschedule_moves_the_booking(client_woman, woman, mammo_slots):
    _book(client_woman, mammo_slots[0])
    old = Appointment.objects.get(patient=woman)
    page = client_woman.get(reverse("portal:appointment_reschedule", args=[old.pk]))
    assert mammo_slots[1] in page.context["slots"]
    response = client_woman.post(
        reverse("portal:appointment_reschedule", args=[old.pk]), {"slot": mammo_slots[1].pk}
    )
    new = Appointment.objects.get(patient=woman, status__in=["booked", "confirmed"])
    assert response.url == reverse("portal:appointment", args=[new.pk])
    assert new.slot_id == mammo_slots[1].pk
    assert Slot.objects.get(pk=mammo_slots[0].pk).status == Slot.Status.FREE
    garbage = client_woman.post(reverse("portal:appointment_reschedule", args=[new.pk]), {"slot": "x"})
    assert garbage.status_code == 404


def test_another_patients_appointment_is_a_404_and_unchanged(client, woman, other_patient, mammo_slots):
    appointment = booking_services.appointment_book(slot_id=mammo_slots[0].pk, patient=woman, channel="web")
    client.force_login(other_patient.user)
    for name, method in [
        ("portal:appointment", "get"),
        ("portal:appointment_ics", "get"),
        ("portal:appointment_cancel", "get"),
        ("portal:appointment_cancel", "post"),
        ("portal:appointment_confirm", "post"),
        ("portal:appointment_release", "post"),
        ("portal:appointment_reschedule", "get"),
    ]:
        response = getattr(client, method)(reverse(name, args=[appointment.pk]))
        assert response.status_code == 404, name
        assert woman.last_name not in response.content.decode() or woman.last_name == other_patient.last_name
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


def test_no_match_offers_the_waiting_list_and_shows_the_position(
    client_woman, woman, mammography, mammo_schedule
):
    response = _search(client_woman, mammography)
    assert response.context["slots"] == [] and response.context["join_form"] is not None
    join = client_woman.post(
        reverse("portal:waitlist_join"), {"service": mammography.pk, "city": "Warszawa", "radius_km": "25"}
    )
    assert join.status_code == 302
    registration = Registration.objects.get(patient=woman, status=Registration.Status.WAITING)
    assert registration.max_distance_km == 25
    page = client_woman.get(reverse("portal:waitlist"))
    assert page.context["entries"] == [(registration, 1)]
    assert "Twoje miejsce w kolejce: 1" in page.content.decode()
    again = client_woman.post(reverse("portal:waitlist_join"), {"service": mammography.pk})
    assert again.status_code == 400 and "aktywną rejestrację" in again.content.decode()
    client_woman.post(reverse("portal:waitlist_leave", args=[registration.pk]))
    registration.refresh_from_db()
    assert registration.status == Registration.Status.CLOSED


def test_a_patient_releases_a_slot_the_waiting_list_gave_them(
    client_woman, woman, mammography, mammo_schedule
):
    registration = booking_services.waitlist_join(patient=woman, service=mammography)
    slot = SlotFactory(schedule=mammo_schedule)
    appointment = booking_services.waitlist_allocate_slot(slot_id=slot.pk)
    assert appointment is not None and appointment.registration_id == registration.pk
    detail = client_woman.get(reverse("portal:appointment", args=[appointment.pk]))
    assert reverse("portal:appointment_release", args=[appointment.pk]) in detail.content.decode()
    client_woman.post(reverse("portal:appointment_release", args=[appointment.pk]))
    appointment.refresh_from_db()
    registration.refresh_from_db()
    assert appointment.status == Appointment.Status.RELEASED
    assert registration.status == Registration.Status.WAITING


def test_leaving_another_patients_waiting_list_entry_is_a_404(client, woman, other_patient, mammography):
    registration = booking_services.waitlist_join(patient=woman, service=mammography)
    client.force_login(other_patient.user)
    assert client.post(reverse("portal:waitlist_leave", args=[registration.pk])).status_code == 404


def test_inbox_shows_only_own_messages_and_marks_them_read(client_woman, woman, other_patient):
    mine = MessageFactory(patient=woman, subject="Moja wiadomość")
    MessageFactory(patient=other_patient, subject="Cudza wiadomość")
    page = client_woman.get(reverse("portal:inbox")).content.decode()
    assert "Moja wiadomość" in page and "Cudza wiadomość" not in page
    client_woman.post(reverse("portal:inbox"), {"message": mine.pk})
    mine.refresh_from_db()
    assert mine.read_at is not None


@pytest.mark.parametrize(
    ("language", "expected"), [("pl", "Znajdź najbliższy termin"), ("en", "Find the earliest date")]
)
def test_pages_render_in_polish_and_english(client, mammography, language, expected):
    client.post(reverse("set_language"), {"language": language, "next": "/"})
    response = client.get(reverse("portal:home"))
    html = response.content.decode()
    assert expected in html and f'<html lang="{language}">' in html
    assert 'class="skip-link" href="#main"' in html


def test_polish_is_the_default_language(client):
    assert "Znajdź najbliższy termin" in client.get(reverse("portal:home")).content.decode()


def test_a_user_without_a_patient_record_gets_404(client, django_user_model):
    staff = django_user_model.objects.create(username="staff-1")
    client.force_login(staff)
    assert client.get(reverse("portal:appointments")).status_code == 404


def test_a_click_that_reads_the_hold_just_after_the_other_click_booked_lands_on_the_booking(
    client_woman, woman, mammo_slots, monkeypatch
):
    """The moment of a double-click that threads rarely hit: the other click commits its booking just
    before this one reads the hold. This click must show the booking, not "your hold expired"."""
    from apps.portal import selectors

    slot = mammo_slots[0]
    client_woman.post(reverse("portal:slot_hold", args=[slot.pk]))
    read_hold = selectors.held_slot_get

    def other_click_books_first(**kwargs):
        if Slot.objects.get(pk=slot.pk).status == Slot.Status.HELD:
            booking_services.appointment_book(slot_id=slot.pk, patient=woman, channel="web")
        return read_hold(**kwargs)

    monkeypatch.setattr(selectors, "held_slot_get", other_click_books_first)
    response = client_woman.post(reverse("portal:booking_summary", args=[slot.pk]), {"book": "1"})

    appointment = Appointment.objects.get(patient=woman)
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:appointment", args=[appointment.pk])


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_clicks_on_book_make_one_booking_and_show_it_twice(woman, mammo_slots):
    """GIVEN a held slot
    WHEN the "book" form is sent twice at the same moment (a double-click, two tabs)
    THEN one appointment exists and both requests land on it."""
    import threading

    from django.db import connection

    slot = mammo_slots[0]
    first = Client()
    first.force_login(woman.user)
    first.post(reverse("portal:slot_hold", args=[slot.pk]))
    session_cookie = first.cookies
    barrier = threading.Barrier(2)
    landed: list[str] = []

    def click() -> None:
        try:
            client = Client()
            client.cookies = session_cookie
            barrier.wait()
            response = client.post(reverse("portal:booking_summary", args=[slot.pk]), {"book": "1"})
            # The status and the page too, so that a click that did not land says why.
            landed.append(response.get("Location") or f"{response.status_code} {response.content[:2000]!r}")
        except BaseException as exc:  # reported by the assertion below
            landed.append(repr(exc))
            raise
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    appointment = Appointment.objects.get(patient=woman)
    assert landed == [reverse("portal:appointment", args=[appointment.pk])] * 2
