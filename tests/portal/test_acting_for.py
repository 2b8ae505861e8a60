"""Acting for others on the patient pages (issue 18): a parent books, moves, cancels and joins the waiting
list for a child through the same booking services (the rules judge the child), a "booking for" line on
every page, the audit says who acted for whom, and whoever the registry does not allow is refused with
a clear message in one language while nothing changes (including posted ids of other patients)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AccessLog
from apps.booking import services as booking_services
from apps.booking.models import Appointment, Registration
from apps.notifications.lifecycle import notification_for_event
from apps.notifications.models import Message
from apps.outbox.models import OutboxEvent
from apps.patients import registry
from apps.patients.models import Relationship
from apps.portal.acting import SESSION_ACTING_FOR
from apps.scheduling.models import Slot
from tests.factories import (
    AppointmentFactory,
    ContractFactory,
    PatientFactory,
    ReferralFactory,
    RegistrationFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)
from tests.factories.portal import SignedInPatientFactory
from tests.portal.test_one_language import assert_english, assert_polish

pytestmark = pytest.mark.django_db


def _years_ago(years: int, days: int = 0) -> dt.date:
    today = timezone.localdate() + dt.timedelta(days=days)
    return today.replace(year=today.year - years) if (today.month, today.day) != (2, 29) else today


@pytest.fixture
def parent():
    return SignedInPatientFactory(
        first_name="Anna", last_name="Nowak", birth_date=dt.date(1982, 5, 1), sex="F", phone="+48600111222"
    )


@pytest.fixture
def son(parent):
    child = PatientFactory(
        first_name="Jan", last_name="Nowak", birth_date=_years_ago(9), sex="M", phone="", email=""
    )
    registry.relationship_record(
        representative=parent, patient=child, kind=Relationship.Kind.PARENT, valid_from=child.birth_date
    )
    return child


@pytest.fixture
def client_parent(client, parent):
    client.force_login(parent.user)
    return client


@pytest.fixture
def paediatric():
    """A service for under-18s only, screening every 12 months, no e-referral: the parent (44) is not
    eligible, the child is; a rule judged on the parent would refuse the child and vice versa."""
    service = ServiceFactory(
        code="PED_SCR",
        name_pl="Badanie przesiewowe dzieci",
        name_en="Children's screening",
        referral_required=False,
        age_max=17,
        interval_months=12,
        confirmation_required=False,
        confirm_deadline_hours=None,
    )
    schedule = ScheduleFactory(service=service)
    ContractFactory(facility=schedule.facility, service=service)
    return service, schedule


def _slot(schedule, days: int, minute: int = 0) -> Slot:
    start = (timezone.localtime() + dt.timedelta(days=days)).replace(
        hour=9, minute=minute, second=0, microsecond=0
    )
    return SlotFactory(schedule=schedule, start=start, end=start + dt.timedelta(minutes=20))


def _choose(client, person):
    return client.post(reverse("portal:acting_for"), {"acting_for": person.pk})


def _book(client, slot, person, **fields):
    hold = client.post(reverse("portal:slot_hold", args=[slot.pk]), {"acting_for": person.pk})
    assert hold.status_code == 302, hold.content.decode()[:500]
    return client.post(
        reverse("portal:booking_summary", args=[slot.pk]), {"book": "1", "acting_for": person.pk, **fields}
    )


def _signed_in_again(client, person, *, acting_for) -> None:
    """Days later (time_machine): a live session that still holds the choice made back then."""
    client.force_login(person.user)
    session = client.session
    session[SESSION_ACTING_FOR] = acting_for.pk
    session.save()


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def _described_by_targets_exist(html: str) -> None:
    for ids in re.findall(r'aria-describedby="([^"]*)"', html):
        for target in ids.split():
            assert f'id="{target}"' in html, f"aria-describedby names a missing element: {target}"


# --- the choice ---------------------------------------------------------------------------------------


def test_a_parent_sees_whom_they_book_for_on_every_page_and_can_change_it(client_parent, parent, son):
    for name in ("home", "appointments", "waitlist", "inbox", "acting_for"):
        page = _text(client_parent.get(reverse(f"portal:{name}")))
        assert "Rezerwujesz dla: Anna Nowak (Ty)" in page, name
    choice = client_parent.get(reverse("portal:acting_for"))
    assert f'value="{son.pk}"' in choice.content.decode() and "Jan Nowak (syn)" in _text(choice)
    chosen = _choose(client_parent, son)
    assert chosen.status_code == 302 and client_parent.session[SESSION_ACTING_FOR] == son.pk
    for name in ("home", "appointments", "waitlist", "inbox"):
        page = _text(client_parent.get(reverse(f"portal:{name}")))
        assert "Rezerwujesz dla: Jan Nowak (syn)" in page and "Zmień" in page, name
    assert "Brak nadchodzących wizyt." in _text(client_parent.get(reverse("portal:appointments")))
    client_parent.cookies["django_language"] = "en"
    assert "Booking for: Jan Nowak (son)" in _text(client_parent.get(reverse("portal:appointments")))
    _choose(client_parent, parent)
    assert SESSION_ACTING_FOR not in client_parent.session


def test_a_patient_with_nobody_to_act_for_sees_no_booking_for_line(client, mammo_slots):
    alone = SignedInPatientFactory()
    client.force_login(alone.user)
    assert "Rezerwujesz dla" not in _text(client.get(reverse("portal:appointments")))
    assert "nie wskazuje nikogo" in _text(client.get(reverse("portal:acting_for")))


def test_the_child_sign_in_message_points_to_booking_for(client):
    child = PatientFactory(birth_date=_years_ago(8), phone="", email="")
    page = _text(client.post(reverse("portal:login"), {"pesel": child.pesel}))
    assert "wybiera dziecko w polu „Rezerwujesz dla”" in page


# --- booking, moving, cancelling, waiting for the child --------------------------------------------------


def test_a_parent_books_for_a_child_and_the_rules_judge_the_child(client_parent, parent, son, paediatric):
    _service, schedule = paediatric
    slot = _slot(schedule, 10)
    # For herself the parent is refused (the service is for under-18s): the rule saw the parent.
    refused = client_parent.post(reverse("portal:slot_hold", args=[slot.pk]), follow=True)
    assert "To badanie jest dla osób w wieku 0-17 lat" in _text(refused)
    assert Slot.objects.get(pk=slot.pk).status == Slot.Status.FREE
    # For the child it is booked, and it is the child's appointment.
    booked = _book(client_parent, slot, son)
    appointment = Appointment.objects.get(patient=son)
    assert booked.url == reverse("portal:appointment", args=[appointment.pk])
    assert not Appointment.objects.filter(patient=parent).exists()
    page = _text(client_parent.get(booked.url))
    assert "<dt>Pacjent</dt><dd>Jan Nowak (syn)</dd>" in page.replace("> <", "><")
    # Seen under the child, not under the parent.
    assert "Badanie przesiewowe dzieci" in _text(client_parent.get(reverse("portal:appointments")))
    _choose(client_parent, parent)
    assert "Badanie przesiewowe dzieci" not in _text(client_parent.get(reverse("portal:appointments")))
    # Opening the child's appointment switches the line to the child (the appointment decides).
    page = _text(client_parent.get(reverse("portal:appointment", args=[appointment.pk])))
    assert "Rezerwujesz dla: Jan Nowak (syn)" in page
    # Who acted for whom.
    log = AccessLog.objects.filter(patient=son, actor_id=f"patient:{parent.pk}")
    actions = set(log.values_list("action", flat=True))
    assert f"portal.slot_hold.post slot_id={slot.pk}" in actions
    assert f"portal.booking_summary.post slot_id={slot.pk}" in actions
    assert all(
        purpose.startswith("acting for: parent (relationship")
        for purpose in log.values_list("purpose", flat=True)
    )


def test_the_screening_interval_of_the_child_applies_to_waiting_and_moving(client_parent, son, paediatric):
    service, schedule = paediatric
    # The child was screened 12 months ago less 8 days: the next screening from day 8.
    son.screenings.create(service=service, performed_on=timezone.localdate() - dt.timedelta(days=365 - 8))
    _choose(client_parent, son)
    joined = client_parent.post(
        reverse("portal:waitlist_join"), {"service": service.pk, "acting_for": son.pk}
    )
    assert joined.status_code == 400 and "Kolejne będzie możliwe od" in _text(joined)
    assert not Registration.objects.filter(patient=son).exists()
    current = AppointmentFactory(
        slot=_slot(schedule, 20), registration__patient=son, registration__service=service
    )
    too_early, allowed = _slot(schedule, 5), _slot(schedule, 12)
    url = reverse("portal:appointment_reschedule", args=[current.pk])
    refused = client_parent.post(url, {"slot": too_early.pk}, follow=True)
    assert "Kolejne będzie możliwe od" in _text(refused)
    assert Appointment.objects.get(pk=current.pk).status == Appointment.Status.BOOKED
    moved = client_parent.post(url, {"slot": allowed.pk})
    new = Appointment.objects.get(patient=son, status=Appointment.Status.BOOKED)
    assert new.slot_id == allowed.pk and moved.url == reverse("portal:appointment", args=[new.pk])


def test_a_parent_joins_the_waiting_list_with_the_childs_referral_not_her_own(
    client_parent, parent, son, cardiology
):
    ContractFactory(service=cardiology)
    own = ReferralFactory(patient=parent, service=cardiology)
    childs = ReferralFactory(patient=son, service=cardiology)
    _choose(client_parent, son)
    form = {"service": cardiology.pk, "acting_for": son.pk}
    refused = client_parent.post(
        reverse("portal:waitlist_join"),
        {**form, "referral_number": own.number, "referral_code": own.access_code},
    )
    assert refused.status_code == 400 and not Registration.objects.filter(patient=son).exists()
    joined = client_parent.post(
        reverse("portal:waitlist_join"),
        {**form, "referral_number": childs.number, "referral_code": childs.access_code},
    )
    assert joined.status_code == 302
    entry = Registration.objects.get(patient=son, status=Registration.Status.WAITING)
    assert "Wpisy osoby: Jan Nowak (syn)." in _text(client_parent.get(reverse("portal:waitlist")))
    left = client_parent.post(reverse("portal:waitlist_leave", args=[entry.pk]))
    assert left.status_code == 302
    assert Registration.objects.get(pk=entry.pk).status == Registration.Status.CLOSED


def test_the_booking_step_takes_the_childs_e_referral_not_the_parents(client_parent, parent, son, cardiology):
    schedule = ScheduleFactory(service=cardiology)
    ContractFactory(facility=schedule.facility, service=cardiology)
    slot = _slot(schedule, 10)
    own = ReferralFactory(patient=parent, service=cardiology)
    childs = ReferralFactory(patient=son, service=cardiology)
    refused = _book(client_parent, slot, son, referral_number=own.number, referral_code=own.access_code)
    assert refused.status_code == 200 and not Appointment.objects.exists()
    assert 'id="id_referral_code_error"' in refused.content.decode()
    _described_by_targets_exist(refused.content.decode())
    booked = _book(client_parent, slot, son, referral_number=childs.number, referral_code=childs.access_code)
    assert booked.status_code == 302
    assert Appointment.objects.get().registration.referral == childs


# The paths of `apps.booking.rules.PATHS` the patient pages take, each exercised above acting for a child
# with a rule the child (not the parent) breaks or passes: a new page path needs a case here.
ACTING_FOR_CASES = {
    "hold": "test_a_parent_books_for_a_child_and_the_rules_judge_the_child",
    "book": "test_the_booking_step_takes_the_childs_e_referral_not_the_parents",
    "reschedule": "test_the_screening_interval_of_the_child_applies_to_waiting_and_moving",
    "waitlist_join": "test_a_parent_joins_the_waiting_list_with_the_childs_referral_not_her_own",
}


def test_every_patient_page_path_of_the_rules_registry_is_tried_acting_for_a_child():
    from apps.booking import rules

    on_pages = {path.name for path in rules.PATHS if path.interfaces.startswith("patient pages")}
    assert on_pages == set(ACTING_FOR_CASES)
    assert all(callable(globals()[name]) for name in ACTING_FOR_CASES.values())


def test_a_parent_cancels_a_childs_appointment(client_parent, parent, son, paediatric):
    _service, schedule = paediatric
    appointment = booking_services.appointment_book(slot_id=_slot(schedule, 10).pk, patient=son)
    _choose(client_parent, parent)  # the appointment's URL decides whom it is for
    page = _text(client_parent.get(reverse("portal:appointment_cancel", args=[appointment.pk])))
    assert "Pacjent: Jan Nowak (syn)" in page
    client_parent.post(reverse("portal:appointment_cancel", args=[appointment.pk]))
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.CANCELLED_BY_PATIENT
    assert AccessLog.objects.filter(
        patient=son, action=f"portal.appointment_cancel.post appointment_id={appointment.pk}"
    ).exists()


def test_a_childs_booking_notice_goes_to_the_parents_phone_in_her_language(
    client_parent, parent, son, paediatric
):
    _service, schedule = paediatric
    parent.language = "en"
    parent.save()
    _book(client_parent, _slot(schedule, 10), son)
    for event in OutboxEvent.objects.filter(aggregate_type="appointment").order_by("id"):
        notification_for_event(event=event)
    sms = Message.objects.get(patient=son, channel=Message.Channel.SMS, kind="booked")
    assert sms.to == parent.phone and sms.language == "en"
    assert sms.body_text.startswith("For: Jan Nowak. ")
    assert_english(sms.body_text.replace("Jan Nowak", "").replace("TAK", "").replace("ANULUJ", ""))
    email = Message.objects.get(patient=son, channel=Message.Channel.EMAIL, kind="booked")
    assert email.to == parent.email and "<p>For: Jan Nowak.</p>" in email.body_html
    # In the child's inbox, which the parent reads while booking for the child.
    assert Message.objects.filter(patient=son, channel=Message.Channel.IN_APP).exists()


def test_a_parents_sms_reply_acts_for_the_child_only_while_she_may(parent, son, paediatric):
    from apps.notifications.lifecycle import sms_inbound_handle

    _service, schedule = paediatric
    booked = booking_services.appointment_book(slot_id=_slot(schedule, 10).pk, patient=son)
    for event in OutboxEvent.objects.filter(aggregate_type="appointment").order_by("id"):
        notification_for_event(event=event)
    Message.objects.filter(channel=Message.Channel.SMS).update(state=Message.State.SENT)
    sender = "48" + parent.phone[-9:]
    assert sms_inbound_handle(provider_id="op-1", sender=sender, text="TAK") == "confirmed"
    assert Appointment.objects.get(pk=booked.pk).status == Appointment.Status.CONFIRMED
    # The registry no longer names her (e.g. a court decision): her reply changes nothing.
    Relationship.objects.filter(representative=parent, patient=son).update(
        valid_to=timezone.localdate() - dt.timedelta(days=1)
    )
    assert sms_inbound_handle(provider_id="op-2", sender=sender, text="ANULUJ") == "acting_not_allowed"
    assert Appointment.objects.get(pk=booked.pk).status == Appointment.Status.CONFIRMED


def test_a_childs_notice_reads_in_one_language_each(son, parent, paediatric):
    from apps.notifications.services import message_compose

    _service, schedule = paediatric
    father = PatientFactory(
        first_name="Piotr", last_name="Nowak", sex="M", language="pl", phone="+48600999888"
    )
    registry.relationship_record(
        representative=father, patient=son, kind=Relationship.Kind.LEGAL_GUARDIAN, valid_from=son.birth_date
    )
    parent.language = "en"
    parent.save()
    appointment = booking_services.appointment_book(slot_id=_slot(schedule, 10).pk, patient=son)
    context = {
        "appointment": appointment,
        "service": appointment.service,
        "facility": appointment.facility,
        "start": timezone.localtime(appointment.start),
    }
    created = message_compose(
        patient=son,
        kind="test",
        key="test:child",
        template="appointment-booked",
        context=context,
        expires_at=appointment.start,
        channels=[Message.Channel.SMS],
    )
    by_phone = {m.to: m for m in created}
    assert set(by_phone) == {parent.phone, father.phone}  # both parents, each in their language
    facility = appointment.facility.name
    polish = by_phone[father.phone].body_text
    assert polish.startswith("Dotyczy: Jan Nowak. ")
    assert_polish(polish.replace(facility, ""))
    assert_english(
        by_phone[parent.phone].body_text.replace(facility, "").replace("TAK", "").replace("ANULUJ", "")
    )


# --- refused: nobody the registry does not name, a child of age, an expired authorisation -------------------


def test_posting_another_patients_id_is_refused_and_changes_nothing(client_parent, parent, son, mammo_slots):
    stranger = PatientFactory(birth_date=dt.date(1970, 1, 1), sex="F")
    slot = mammo_slots[0]
    for value in (stranger.pk, "x", ""):
        hold = client_parent.post(reverse("portal:slot_hold", args=[slot.pk]), {"acting_for": value})
        assert hold.status_code == 403
        assert "Nie możesz działać w imieniu tej osoby" in _text(hold)
        _described_by_targets_exist(hold.content.decode())
    assert Slot.objects.get(pk=slot.pk).status == Slot.Status.FREE
    chosen = _choose(client_parent, stranger)
    assert chosen.status_code == 403 and SESSION_ACTING_FOR not in client_parent.session
    joined = client_parent.post(
        reverse("portal:waitlist_join"), {"service": slot.service_id, "acting_for": stranger.pk}
    )
    assert joined.status_code == 403 and not Registration.objects.exists()
    summary = client_parent.post(
        reverse("portal:booking_summary", args=[slot.pk]), {"book": "1", "acting_for": stranger.pk}
    )
    assert summary.status_code == 403 and not Appointment.objects.exists()
    assert not AccessLog.objects.filter(patient=stranger).exists()


def test_another_patients_appointment_and_waiting_entry_stay_not_found(client_parent, son, mammo_schedule):
    theirs = AppointmentFactory(
        slot=SlotFactory(schedule=mammo_schedule, start=timezone.now() + dt.timedelta(days=4))
    )
    entry = RegistrationFactory(status="waiting")
    for name in ("appointment", "appointment_cancel", "appointment_reschedule", "appointment_ics"):
        assert client_parent.get(reverse(f"portal:{name}", args=[theirs.pk])).status_code == 404, name
    for name in ("appointment_cancel", "appointment_confirm", "appointment_release"):
        response = client_parent.post(
            reverse(f"portal:{name}", args=[theirs.pk]), {"acting_for": theirs.patient_id}
        )
        assert response.status_code == 404, name
    assert client_parent.post(reverse("portal:waitlist_leave", args=[entry.pk])).status_code == 404
    assert Appointment.objects.get(pk=theirs.pk).status == Appointment.Status.BOOKED
    assert Registration.objects.get(pk=entry.pk).status == Registration.Status.WAITING


def test_a_child_who_turned_18_is_refused_with_the_reason_in_one_language(client, parent, mammo_schedule):
    daughter = PatientFactory(first_name="Ola", last_name="Nowak", birth_date=_years_ago(18, days=3), sex="F")
    registry.relationship_record(
        representative=parent, patient=daughter, kind=Relationship.Kind.PARENT, valid_from=daughter.birth_date
    )
    appointment = AppointmentFactory(
        slot=SlotFactory(schedule=mammo_schedule, start=timezone.now() + dt.timedelta(days=10)),
        registration__patient=daughter,
    )
    client.force_login(parent.user)
    _choose(client, daughter)
    choice = _text(client.get(reverse("portal:acting_for")))
    assert "Pełnoletność" in choice  # the choice says when she comes of age
    with time_machine.travel(timezone.now() + dt.timedelta(days=4), tick=False):
        _signed_in_again(client, parent, acting_for=daughter)  # the choice made before her birthday
        page = client.get(reverse("portal:appointments"))
        assert page.status_code == 403
        text = _text(page)
        assert "Ta osoba jest pełnoletnia od" in text and "Nic nie zostało zmienione" in text
        assert_polish(re.sub(r"<[^>]+>", " ", text.split("There is a problem")[0]).split("<main")[-1])
        _described_by_targets_exist(page.content.decode())
        assert SESSION_ACTING_FOR not in client.session  # the stale choice is dropped
        cancel = client.post(reverse("portal:appointment_cancel", args=[appointment.pk]))
        assert cancel.status_code == 403 and "pełnoletnia" in _text(cancel)
        client.cookies["django_language"] = "en"
        english = _text(client.post(reverse("portal:appointment_cancel", args=[appointment.pk])))
        assert "This person has been of age since" in english and "pełnoletnia" not in english
        assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.BOOKED
        # She is no longer offered; the parent books for herself again.
        assert "Ola Nowak" not in _text(client.get(reverse("portal:acting_for")))


def test_an_expired_authorisation_is_refused_and_changes_nothing(client_parent, parent, mammo_slots):
    mother = PatientFactory(first_name="Halina", last_name="Nowak", birth_date=dt.date(1960, 2, 2), sex="F")
    registry.relationship_record(
        representative=parent,
        patient=mother,
        kind=Relationship.Kind.AUTHORISATION,
        valid_from=dt.date(2020, 1, 1),
        valid_to=timezone.localdate() + dt.timedelta(days=1),
    )
    _choose(client_parent, mother)
    assert "Halina Nowak (masz upoważnienie)" in _text(client_parent.get(reverse("portal:home")))
    with time_machine.travel(timezone.now() + dt.timedelta(days=2), tick=False):
        _signed_in_again(client_parent, parent, acting_for=mother)
        hold = client_parent.post(
            reverse("portal:slot_hold", args=[mammo_slots[0].pk]), {"acting_for": mother.pk}
        )
        assert hold.status_code == 403 and "Upoważnienie do działania w imieniu tej osoby wygasło" in _text(
            hold
        )
    assert Slot.objects.get(pk=mammo_slots[0].pk).status == Slot.Status.FREE
    assert not Appointment.objects.exists()
