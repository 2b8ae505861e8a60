"""Patient sign-in for the demo and development: a one-time code sent through the notification channel.

The PESEL is typed into a POST form, looked up, and forgotten: it is never put in a URL, the
session or a log line. A 6-digit code is sent by SMS (or e-mail when there is no phone number);
only its keyed hash is stored, it expires after `CER_OTP_TTL` and allows `ATTEMPTS_MAX` tries.
Production sign-in is OpenID Connect (`apps.portal.oidc`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core import pesel as pesel_lib
from apps.integration.ratelimit import window_hit
from apps.notifications.models import Message
from apps.notifications.services import message_compose, message_deliver
from apps.patients.models import Patient

from .models import LoginCode

ATTEMPTS_MAX = 5
ADULT_AGE = 18
CODES_PER_TTL_MAX = 3  # new codes a PESEL may request within one TTL window (known or not)


class SignInError(Exception):
    """A refused sign-in step; `message` is shown in the form (lazy: follows the page language)."""

    MESSAGES = {
        "invalid_pesel": _("Enter a valid 11-digit PESEL number."),
        "too_many_codes": _("Too many codes were requested. Wait a few minutes and try again."),
        "wrong_code": _("The code is not correct. Check it and try again."),
        "code_expired": _("The code has expired or was used too many times. Request a new code."),
        "unavailable": _("Sign-in by code is temporarily unavailable. Try again in a few minutes."),
        # Points to acting for a child (issue 18): the parent signs in and chooses the child.
        "child": _(
            "A child under 18 does not sign in with their own PESEL. A parent or legal guardian signs in "
            'with their own PESEL and chooses the child under "Booking for"; they can also book at the '
            "facility or through the NFZ helpline 800 190 590."
        ),
    }

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)

    @property
    def message(self) -> str:
        return str(self.MESSAGES[self.code])


def _ttl() -> dt.timedelta:
    return getattr(settings, "CER_OTP_TTL", dt.timedelta(minutes=10))


def _age(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _code_hash(patient_id: int, code: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"cer-login:{patient_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _signin_limits_hit(*, pesel: str, address: str) -> None:
    """Count this request per PESEL and per address in Redis, before the PESEL is looked up, so a
    known and an unknown PESEL are limited alike (issue 15: only registered ones ever got "too many
    codes", which told who is registered) and one address cannot send every patient SMS."""
    window = int(_ttl().total_seconds())
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"cer-signin:{pesel}".encode(), hashlib.sha256
    ).hexdigest()
    checks = [(f"cer:signin:pesel:{digest[:32]}", CODES_PER_TTL_MAX)]
    if address:
        checks.append((f"cer:signin:addr:{address}", int(settings.CER_SIGNIN_RATE_LIMIT_ADDRESS)))
    exceeded = False
    try:
        for key, limit in checks:
            exceeded = window_hit(key=key, limit=limit, window=window).exceeded or exceeded
    except redis.exceptions.RedisError:
        raise SignInError("unavailable") from None  # no limits, no codes (an SMS flood otherwise)
    if exceeded:
        raise SignInError("too_many_codes")


def login_code_request(*, pesel: str, address: str = "", now: dt.datetime | None = None) -> int | None:
    """Send a sign-in code to the patient with this PESEL; returns the code's id, or None if unknown.

    The caller shows the same page either way, so the form does not reveal who is registered; the
    limits (per PESEL, per address) are counted before the lookup and answer alike for both.
    """
    now = now or timezone.now()
    try:
        info = pesel_lib.parse(pesel)
    except pesel_lib.InvalidPesel:
        raise SignInError("invalid_pesel") from None
    if _age(info.birth_date, timezone.localdate(now)) < ADULT_AGE:
        # Said from the number alone (it encodes the birth date), so it tells nothing about who is
        # registered; before, a child's PESEL without contact details took the decoy path and the
        # parent waited for a code that never came.
        raise SignInError("child")
    _signin_limits_hit(pesel=pesel, address=address)
    patient = Patient.objects.filter(pesel=pesel).first()
    if patient is None or not (patient.phone or patient.email):
        return None
    code = f"{secrets.randbelow(1_000_000):06d}"
    with transaction.atomic():
        Patient.objects.select_for_update().filter(pk=patient.pk).first()  # one request at a time
        # A new code replaces the previous ones.
        LoginCode.objects.filter(patient=patient, used_at__isnull=True, expires_at__gt=now).update(
            expires_at=now
        )
        login_code = LoginCode.objects.create(
            patient=patient, code_hash=_code_hash(patient.pk, code), expires_at=now + _ttl()
        )
        channel = Message.Channel.SMS if patient.phone else Message.Channel.EMAIL
        messages = message_compose(
            patient=patient,
            kind="login_code",
            key=f"login-code:{login_code.pk}",
            template="login-code",
            context={"code": "******", "minutes": int(_ttl().total_seconds() // 60)},
            expires_at=login_code.expires_at,
            channels=[channel],
            deliver_later=False,
        )
    # Sent now, outside the transaction: the stored message has the code masked, the wire has it.
    for message in messages:
        state = message_deliver(message_id=message.pk, body_text=message.body_text.replace("******", code))
        if state != Message.State.SENT:
            # The code exists nowhere but in this request: a retry could only send the masked text.
            Message.objects.filter(pk=message.pk).update(state=Message.State.EXPIRED)
    return login_code.pk


def login_code_verify(*, login_code_id: int, code: str, now: dt.datetime | None = None) -> Patient:
    """Check a code; every try counts, whatever its outcome, under a row lock (no parallel guessing)."""
    now = now or timezone.now()
    code = code.strip().replace(" ", "")
    with transaction.atomic():
        login_code = LoginCode.objects.select_for_update().filter(pk=login_code_id).first()
        if (
            login_code is None
            or login_code.used_at is not None
            or login_code.expires_at <= now
            or login_code.attempts >= ATTEMPTS_MAX
        ):
            raise SignInError("code_expired")
        login_code.attempts += 1
        matches = len(code) == 6 and hmac.compare_digest(
            login_code.code_hash, _code_hash(login_code.patient_id, code)
        )
        if matches:
            login_code.used_at = now
        login_code.save(update_fields=["attempts", "used_at"])
    if not matches:
        raise SignInError("wrong_code" if login_code.attempts < ATTEMPTS_MAX else "code_expired")
    return Patient.objects.get(pk=login_code.patient_id)


def patient_user_link(*, patient: Patient) -> User:
    """The Django user of a patient, created on first sign-in (no password: sign-in is by code/OIDC)."""
    with transaction.atomic():
        patient = Patient.objects.select_for_update().get(pk=patient.pk)
        if patient.user is not None:
            return patient.user
        user, _created = get_user_model().objects.get_or_create(username=f"patient-{patient.pk}")
        user.set_unusable_password()
        user.save()
        patient.user = user
        patient.save(update_fields=["user", "updated_at"])
        return user
