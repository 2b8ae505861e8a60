"""One-time-code sign-in: the PESEL goes only in a POST body, the code is hashed, limited and expires."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from apps.notifications.channels import MemorySmsGateway
from apps.notifications.models import Message
from apps.portal.models import LoginCode
from apps.portal.services import ATTEMPTS_MAX, SignInError, login_code_request, login_code_verify
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _sent_code() -> str:
    match = re.search(r"\b(\d{6})\b", MemorySmsGateway.outbox[-1]["text"])
    assert match, MemorySmsGateway.outbox
    return match.group(1)


def test_a_patient_signs_in_with_the_code_sent_by_sms(client, caplog):
    patient = PatientFactory(phone="+48500100200")
    caplog.set_level(logging.DEBUG)

    response = client.post(reverse("portal:login"), {"pesel": patient.pesel})

    assert response.status_code == 302 and response.url == reverse("portal:login_code")
    assert patient.pesel not in response.url
    assert MemorySmsGateway.outbox[-1]["to"] == "+48500100200"
    code = _sent_code()
    response = client.post(reverse("portal:login_code"), {"code": code})
    assert response.status_code == 302 and response.url == reverse("portal:appointments")
    patient.refresh_from_db()
    assert patient.user_id is not None
    assert client.get(reverse("portal:appointments")).status_code == 200
    # The PESEL never reaches a log line or the session; the code is stored only hashed.
    assert patient.pesel not in caplog.text
    assert not any(patient.pesel in str(v) for v in client.session.values())
    stored = LoginCode.objects.get(patient=patient)
    assert code not in stored.code_hash and stored.used_at is not None
    message = Message.objects.get(kind="login_code")
    assert code not in message.body_text and message.state == Message.State.SENT


def test_the_code_goes_by_email_when_there_is_no_phone(mailoutbox):
    patient = PatientFactory(phone="", email="anna@example.org")
    login_code_request(pesel=patient.pesel)
    assert mailoutbox[-1].to == ["anna@example.org"]
    assert re.search(r"\b\d{6}\b", mailoutbox[-1].body)


def test_an_unknown_pesel_shows_the_same_page_and_never_signs_in(client):
    unknown = PatientFactory.build().pesel
    response = client.post(reverse("portal:login"), {"pesel": unknown})
    assert response.status_code == 302 and response.url == reverse("portal:login_code")
    assert MemorySmsGateway.outbox == []
    for _ in range(ATTEMPTS_MAX + 1):
        response = client.post(reverse("portal:login_code"), {"code": "123456"})
        assert response.status_code == 200
    assert b"error-summary" in response.content
    assert "_auth_user_id" not in client.session


def test_a_malformed_pesel_is_a_form_error_announced_in_an_alert(client):
    response = client.post(reverse("portal:login"), {"pesel": "12345678901"})
    assert response.status_code == 200
    assert b'role="alert"' in response.content
    assert LoginCode.objects.count() == 0


def test_a_wrong_code_counts_attempts_and_locks_after_the_limit():
    patient = PatientFactory()
    code_id = login_code_request(pesel=patient.pesel)
    right = _sent_code()
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(ATTEMPTS_MAX):
        with pytest.raises(SignInError):
            login_code_verify(login_code_id=code_id, code=wrong)
    with pytest.raises(SignInError) as exc:
        login_code_verify(login_code_id=code_id, code=right)
    assert exc.value.code == "code_expired"


def test_a_code_expires_after_the_ttl(settings):
    settings.CER_OTP_TTL = dt.timedelta(minutes=10)
    patient = PatientFactory()
    code_id = login_code_request(pesel=patient.pesel)
    code = _sent_code()
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=11)), pytest.raises(SignInError) as exc:
        login_code_verify(login_code_id=code_id, code=code)
    assert exc.value.code == "code_expired"


def test_a_code_works_once_and_a_new_one_replaces_the_old():
    patient = PatientFactory()
    first_id = login_code_request(pesel=patient.pesel)
    first = _sent_code()
    second_id = login_code_request(pesel=patient.pesel)
    second = _sent_code()
    with pytest.raises(SignInError):
        login_code_verify(login_code_id=first_id, code=first)
    assert login_code_verify(login_code_id=second_id, code=second) == patient
    with pytest.raises(SignInError):
        login_code_verify(login_code_id=second_id, code=second)


def test_code_requests_are_rate_limited():
    patient = PatientFactory()
    for _ in range(3):
        login_code_request(pesel=patient.pesel)
    with pytest.raises(SignInError) as exc:
        login_code_request(pesel=patient.pesel)
    assert exc.value.code == "too_many_codes"


def test_the_development_outbox_shows_codes_only_with_debug(client, settings):
    patient = PatientFactory()
    settings.DEBUG = False
    assert client.get(reverse("portal:dev_outbox")).status_code == 404
    settings.DEBUG = True
    login_code_request(pesel=patient.pesel)
    response = client.get(reverse("portal:dev_outbox"))
    assert response.status_code == 200
    assert _sent_code().encode() in response.content


def test_sign_out_needs_a_post_with_csrf(woman):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(woman.user)
    # A GET never signs out (no dead end either: it goes back to the patient's pages, issue 18).
    assert client.get(reverse("portal:logout")).status_code == 302
    assert "_auth_user_id" in client.session
    assert client.post(reverse("portal:logout")).status_code == 403
    assert "_auth_user_id" in client.session


class _Down:
    def send(self, *, to: str, text: str) -> str:
        from apps.notifications.channels import DeliveryError

        raise DeliveryError("operator down")


def test_a_code_that_could_not_be_sent_is_never_retried_with_the_masked_text(settings):
    from apps.notifications.services import messages_retry

    settings.CER_SMS_BACKEND = f"{__name__}._Down"
    patient = PatientFactory()
    login_code_request(pesel=patient.pesel)
    assert Message.objects.get(kind="login_code").state == Message.State.EXPIRED
    assert messages_retry() == []
