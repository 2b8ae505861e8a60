"""One language at a time (issue 18): every message a patient can meet is composed in one language
from one catalogue, with every placeholder filled, dates written as people write them, and one
Polish term per concept ("świadczenie", never "usługa")."""

from __future__ import annotations

import datetime as dt
import re
import string

import pytest
from django.conf import settings
from django.utils import timezone

from apps.booking import services as booking_services
from apps.core.errors import FACILITY_MESSAGES, MESSAGES, DomainError, localised
from apps.notifications.services import message_render
from apps.patients import registry
from apps.portal.i18n import catalogues, msgids_in_sources, po_parse
from tests.factories import AppointmentFactory, PatientFactory

POLISH_LETTERS = re.compile("[ąćęłńóśźżĄĆĘŁŃÓŚŹŻ]")
POLISH_WORDS = {
    "nie",
    "jest",
    "wizyta",
    "wizyty",
    "wizytę",
    "termin",
    "odwołana",
    "Poczekalnia",
    "lub",
    "oraz",
}
ENGLISH_WORDS = {
    "the", "is", "and", "your", "you", "can", "not", "longer", "appointment", "cancelled", "booked",
    "service", "slot", "waiting", "list", "wrong", "digit", "state", "entry",
}  # fmt: skip
# Tokens an API message names literally (header, field and code names): no language of their own.
TECHNICAL = re.compile(r"`[^`]*`|\b\w*[_/]\w*\b|\bGET\b|[A-Z][\w-]*-[A-Z][\w-]*|\bETag\b")
SAMPLE = localised("żółw", "turtle")  # a parameter in both languages: each message must pick its own
DAY = dt.date(2027, 3, 5)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W\d_]+", TECHNICAL.sub(" ", text)))


def assert_english(text: str) -> None:
    assert not POLISH_LETTERS.search(text), f"Polish letters in English text: {text!r}"
    assert not (_words(text) & POLISH_WORDS), f"Polish words in English text: {text!r}"
    assert not re.search(r"\{\w*\}|%\(\w+\)s", text), f"an unfilled placeholder: {text!r}"


def assert_polish(text: str) -> None:
    assert not (_words(text) & ENGLISH_WORDS), f"English words in Polish text: {text!r}"
    assert not re.search(r"\{\w*\}|%\(\w+\)s", text), f"an unfilled placeholder: {text!r}"
    assert not re.search(r"\busług", text, re.I), f"'usługa' where the pages say 'świadczenie': {text!r}"


def _sample_params(template: str) -> dict[str, object]:
    names = {name for _text, name, _spec, _conv in string.Formatter().parse(template) if name}
    return {name: DAY if name in {"date", "last", "next", "today"} else SAMPLE for name in names}


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_every_error_message_renders_in_one_language_with_every_placeholder_filled(code):
    _status, pl, en = MESSAGES[code]
    error = DomainError(code, **(_sample_params(pl) | _sample_params(en)))
    polish, english = error.message_in("pl"), error.message_in("en")
    assert_polish(polish)
    assert_english(english)
    assert "turtle" not in polish and "żółw" not in english
    if "{date}" in pl:
        # Dates as people write them, not ISO: "5 marca 2027" / "5 March 2027".
        assert "5 marca 2027" in polish and "5 March 2027" in english and "2027-03-05" not in polish + english
    for pl_f, en_f in [FACILITY_MESSAGES.get(code, (pl, en))]:
        assert_polish(pl_f.format(**dict.fromkeys(_sample_params(pl_f), "x")))
        assert_english(en_f.format(**dict.fromkeys(_sample_params(en_f), "x")))


def test_an_error_keeps_its_dates_iso_in_the_api_params():
    error = DomainError("referral_expired", date=DAY)
    from apps.core.errors import param_in

    assert param_in(error.params["date"], "pl") == "2027-03-05"


def test_the_portal_catalogue_is_one_language_with_the_same_placeholders():
    ((po, _mo),) = catalogues()
    for msgid, msgstr in po_parse(po.read_text(encoding="utf-8")).items():
        if not msgid:
            continue  # the header
        assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(re.findall(r"%\(\w+\)s", msgstr)), msgid
        assert_english(re.sub(r"%\(\w+\)s", "", msgid))
        assert_polish(re.sub(r"%\(\w+\)s", "", msgstr))
        assert " / " not in msgid and " / " not in msgstr, f"a glued 'PL / EN' string: {msgid!r}"


def test_single_quoted_template_strings_are_in_the_catalogue_too():
    # {% trans 'Main menu' %} (the menu's screen-reader label) was missed by the extractor: the Polish
    # menu was announced in English.
    root = settings.BASE_DIR
    found = msgids_in_sources([root / "templates" / "base.html"])
    assert "Main menu" in found
    ((po, _mo),) = catalogues()
    assert po_parse(po.read_text(encoding="utf-8"))["Main menu"] == "Menu główne"


@pytest.mark.django_db
def test_a_refused_pesel_gives_its_reason_in_the_page_language():
    with pytest.raises(DomainError) as refused:
        registry.pesel_check("12345678901")
    assert refused.value.message_in("pl") == "Numer PESEL jest niepoprawny: błędna cyfra kontrolna."
    assert refused.value.message_in("en") == "The PESEL number is not valid: wrong check digit."


@pytest.mark.django_db
def test_cancelling_twice_is_refused_in_one_language(mammography, facility_a):
    appointment = AppointmentFactory(
        slot__schedule__facility=facility_a,
        slot__schedule__service=mammography,
        slot__start=timezone.now() + dt.timedelta(days=3),
    )
    booking_services.appointment_cancel_by_patient(appointment=appointment)
    with pytest.raises(DomainError) as refused:
        booking_services.appointment_cancel_by_patient(appointment=appointment)
    assert (
        refused.value.message_in("pl") == "Tej wizyty nie można już odwołać (stan: odwołana przez pacjenta)."
    )
    assert (
        refused.value.message_in("en")
        == "This appointment can no longer be cancelled (state: cancelled by patient)."
    )


@pytest.mark.django_db
def test_a_second_registration_names_the_existing_one_in_one_language(mammography, facility_a):
    appointment = AppointmentFactory(
        slot__schedule__facility=facility_a,
        slot__schedule__service=mammography,
        slot__start=timezone.make_aware(dt.datetime(2027, 3, 5, 9, 40)),
    )
    from apps.booking.services._transitions import refuse_second_registration

    error = refuse_second_registration(appointment.patient, mammography)
    assert "5 marca 2027, 09:40" in error.message_in("pl") and "świadczenie" in error.message_in("pl")
    assert "5 March 2027, 09:40" in error.message_in("en")
    assert_english(error.message_in("en").replace(facility_a.name, ""))


NOTIFICATIONS = [
    "appointment-allocated",
    "appointment-booked",
    "appointment-cancelled",
    "appointment-no-show",
    "appointment-released",
    "appointment-reminder",
    "appointment-rescheduled",
    "login-code",
]


@pytest.mark.django_db
@pytest.mark.parametrize("template", NOTIFICATIONS)
def test_every_sms_and_email_renders_in_one_language(template, mammography, facility_a):
    appointment = AppointmentFactory(
        slot__schedule__facility=facility_a,
        slot__schedule__service=mammography,
        slot__start=timezone.make_aware(dt.datetime(2027, 3, 5, 9, 40)),
        confirm_by=timezone.make_aware(dt.datetime(2027, 3, 3, 9, 40)),
    )
    context = {
        "patient": PatientFactory.build(),
        "appointment": appointment,
        "previous": appointment,
        "service": mammography,
        "facility": facility_a,
        "start": timezone.localtime(appointment.start),
        "confirm_by": timezone.localtime(appointment.confirm_by),
        "confirm_pending": True,
        "by_facility": True,
        "days": 1,
        "code": "******",
        "minutes": 10,
    }
    for language, check in (("pl", assert_polish), ("en", assert_english)):
        parts = message_render(template=template, language=language, context=context)
        for part in ("subject", "text", "sms"):
            text = parts[part]
            for name in (facility_a.name, facility_a.address, mammography.name_pl):
                text = text.replace(name, "")
            check(text.replace("TAK", "").replace("ANULUJ", ""))
