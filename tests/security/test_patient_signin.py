"""Patient sign-in by code (issue 15): known and unknown PESELs answer alike, the rate-limit answer
included; limits per PESEL and per address; off in production unless a setting turns it on."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import translation
from django.utils.html import escape

from apps.core import pesel as pesel_lib
from apps.notifications.channels import MemorySmsGateway
from apps.portal.models import LoginCode
from apps.portal.services import SignInError
from tests.core.test_settings import start_production
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _unknown_pesel(n: int = 1) -> str:
    return pesel_lib.generate(dt.date(1961, 3, 4), "F", 4000 + n)


def _ask(pesel: str, addr: str = "127.0.0.1"):
    return Client(REMOTE_ADDR=addr).post("/login/", {"pesel": pesel})


def _normalised(html: bytes, pesel: str) -> str:
    """The page without its CSRF token and the PESEL typed into it."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html.decode()).replace(pesel, "PESEL")


def test_known_and_unknown_pesels_get_the_same_answers_up_to_and_including_the_limit():
    known = PatientFactory(phone="+48500100200").pesel
    unknown = _unknown_pesel()
    answers = {}
    for pesel in (known, unknown):
        answers[pesel] = [_ask(pesel, addr=f"127.0.0.{n + 1}") for n in range(4)]

    for first, second in zip(answers[known], answers[unknown], strict=True):
        assert first.status_code == second.status_code
        assert first.get("Location") == second.get("Location")
    assert [a.status_code for a in answers[known]] == [302, 302, 302, 200]
    assert _normalised(answers[known][3].content, known) == _normalised(answers[unknown][3].content, unknown)
    with translation.override("pl"):
        refusal = escape(SignInError("too_many_codes").message)
    assert refusal in answers[unknown][3].content.decode()


def test_one_pesel_gets_at_most_three_codes_whatever_the_address():
    patient = PatientFactory(phone="+48500100201")
    MemorySmsGateway.outbox.clear()
    for n in range(6):
        _ask(patient.pesel, addr=f"127.0.1.{n + 1}")
    assert len(MemorySmsGateway.outbox) == 3
    assert LoginCode.objects.filter(patient=patient).count() == 3


def test_one_address_cannot_send_codes_to_every_patient(settings):
    settings.CER_SIGNIN_RATE_LIMIT_ADDRESS = 4
    patients = [PatientFactory(phone=f"+4850020{n:04d}") for n in range(6)]
    MemorySmsGateway.outbox.clear()
    answers = [_ask(p.pesel, addr="127.0.2.9").status_code for p in patients]
    assert answers == [302, 302, 302, 302, 200, 200]
    assert len(MemorySmsGateway.outbox) == 4
    assert _ask(patients[5].pesel, addr="127.0.2.10").status_code == 302  # another address still can


def test_the_code_sign_in_can_be_turned_off(settings):
    settings.CER_PATIENT_CODE_SIGNIN = False
    patient = PatientFactory(phone="+48500100202")
    MemorySmsGateway.outbox.clear()
    page = Client().get("/login/")
    assert page.status_code == 200
    assert 'name="pesel"' not in page.content.decode()
    assert _ask(patient.pesel).status_code == 404
    assert Client().get("/login/code/").status_code == 404
    assert MemorySmsGateway.outbox == []


def test_production_has_the_code_sign_in_off_unless_a_setting_turns_it_on():
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CER_PATIENT_CODE_SIGNIN)"
    )
    off = start_production({}, "-c", code)
    on = start_production({"CER_PATIENT_CODE_SIGNIN": "true"}, "-c", code)
    assert off.stdout.strip() == "False", off.stderr
    assert on.stdout.strip() == "True", on.stderr
