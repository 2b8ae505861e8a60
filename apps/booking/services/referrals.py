"""The e-referral's life, as in P1: issued -> registered -> (freed: issued again) -> realised.

A referral holds one registration at a time (a booking or a waiting-list entry; PostgreSQL's
`one_live_registration_per_referral` index). Cancelling or releasing that registration frees it for
another booking; the visit recorded as attended realises (spends) it; what a no-show does is the
catalogue's `referral_after_no_show`. Every transition is a conditional UPDATE plus a
`ReferralTransition` row, in the caller's transaction.

Access codes are guarded: a wrong code, an unknown number and another patient's referral get the
same refusal, and `CER_REFERRAL_MAX_ATTEMPTS` wrong tries for one number lock it for
`CER_REFERRAL_LOCK_SECONDS` (counted in Redis, so a refused request's rollback does not undo it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

from django.conf import settings
from django.core.cache import cache

from apps.catalog.models import Service
from apps.core.errors import DomainError
from apps.patients.models import Patient, Referral

from .. import rules, sql
from ..models import Registration

Status = Referral.Status
_SEPARATORS = re.compile("[\\s\\-\u2010\u2011\u2013]+")  # hyphens as word processors type them


def referral_number_normalise(number: str) -> str:
    """As printed, typed or dictated: case, spaces and hyphens do not matter."""
    return _SEPARATORS.sub("", number).upper()


def _attempts_key(number: str) -> str:
    return "referral-attempts:" + hashlib.sha256(number.encode()).hexdigest()[:32]


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _refuse_if_locked(key: str) -> int:
    """The wrong tries so far; refuses once they reach the limit."""
    tries = int(cache.get(key) or 0)
    if tries >= settings.CER_REFERRAL_MAX_ATTEMPTS:
        minutes = max(1, settings.CER_REFERRAL_LOCK_SECONDS // 60)
        raise DomainError(
            "referral_locked",
            field="referral_code",
            minutes=minutes,
            headers={"Retry-After": str(settings.CER_REFERRAL_LOCK_SECONDS)},
        )
    return tries


def _count_failure(key: str) -> None:
    cache.add(key, 0, timeout=settings.CER_REFERRAL_LOCK_SECONDS)
    try:
        cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.set(key, 1, timeout=settings.CER_REFERRAL_LOCK_SECONDS)


def referral_find(
    *, patient: Patient, service: Service, number: str | None, code: str | None, today: dt.date
) -> Referral | None:
    """The e-referral a new registration will hold, checked and locked (FOR UPDATE) for the caller's
    transaction; None for a service that needs none. Refuses a wrong number, code or patient (one
    answer for all three), another service's referral, one already registered or realised, one expired.
    """
    if not service.referral_required:
        return None
    if not number or not code:
        raise DomainError("referral_required", field="referral_number")
    normal = referral_number_normalise(number)
    key = _attempts_key(normal)
    tries = _refuse_if_locked(key)
    referral = (
        Referral.objects.select_for_update(of=("self",))
        .select_related("service")
        .filter(number=normal)
        .first()
    )
    # One answer for "no such number", "wrong code" and "someone else's referral": nothing can be
    # learnt number by number, and each of them counts against the number's attempts.
    if referral is None or not _same(referral.access_code, code.strip()) or referral.patient_id != patient.pk:
        _count_failure(key)
        raise DomainError("referral_invalid", field="referral_code")
    if tries:
        cache.delete(key)  # the right code: earlier slips are forgiven
    rules.referral(rules.Facts(patient=patient, service=service, day=today, referral=referral))
    if referral.status == Status.REALISED:
        raise DomainError("referral_used", field="referral_number")
    if referral.status == Status.REGISTERED:
        raise DomainError("referral_registered", field="referral_number")
    if referral.valid_until < today:
        raise DomainError("referral_expired", field="referral_number", date=referral.valid_until)
    return referral


def referral_register(*, referral: Referral, registration_id: int, now: dt.datetime, reason: str) -> None:
    """A booking or a waiting-list entry now holds the referral (found by `referral_find`)."""
    sql.referral_transition(
        referral_id=referral.pk,
        registration_id=registration_id,
        from_statuses=(Status.ISSUED,),
        to=Status.REGISTERED,
        reason=reason,
        now=now,
    )
    referral.status, referral.status_at = Status.REGISTERED, now


def referral_free(*, registration: Registration, now: dt.datetime, reason: str) -> None:
    """The registration holding the referral ended without a visit: the referral can book again."""
    if registration.referral_id is None:
        return
    sql.referral_transition(
        referral_id=registration.referral_id,
        registration_id=registration.pk,
        from_statuses=(Status.REGISTERED,),
        to=Status.ISSUED,
        reason=reason,
        now=now,
    )


def referral_realise(*, registration: Registration, now: dt.datetime, reason: str) -> None:
    """The visit took place: the referral is spent. Also from `issued`, when a facility corrects an
    automatic no-show (which had freed it) to attended."""
    if registration.referral_id is None:
        return
    sql.referral_transition(
        referral_id=registration.referral_id,
        registration_id=registration.pk,
        from_statuses=(Status.REGISTERED, Status.ISSUED),
        to=Status.REALISED,
        reason=reason,
        now=now,
    )


def referral_after_outcome(
    *, registration: Registration, service: Service, outcome: str, now: dt.datetime, reason: str
) -> None:
    """Attended realises the referral; a no-show does what the catalogue says (`referral_after_no_show`)."""
    if outcome == "attended" or service.referral_after_no_show == "realised":
        referral_realise(registration=registration, now=now, reason=reason)
    else:
        referral_free(registration=registration, now=now, reason=reason)
