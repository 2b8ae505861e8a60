"""The signed manage link of every SMS and e-mail about an appointment (issue 18).

The link opens a page where the patient confirms, cancels or moves that one appointment in one step,
without signing in again. The token names only the appointment and its purpose (a salted signature
of the app's secret key: nothing to guess, nothing personal in it), expires (`MAX_AGE`, and never
acts on a visit that has begun), is rate-limited per token and per address, and every use of it is
written to the access log. A child's messages go to a parent: a link made while the patient was a
minor stops working when they come of age (the parent no longer acts for them).
"""

from __future__ import annotations

import datetime as dt
import hashlib

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from apps.audit.services import access_record
from apps.booking.models import Appointment
from apps.booking.selectors import appointment_in_month
from apps.integration.ratelimit import window_hit
from apps.patients.services import adult_on

SALT = "cer.portal.manage-appointment"  # single purpose: this salt signs nothing else
MAX_AGE = 90 * 24 * 3600  # seconds; longer than the booking horizon of the services it is sent for
USES_PER_WINDOW = 30  # per token, and (x4) per address, in RATE_WINDOW seconds
RATE_WINDOW = 600


def manage_token(*, appointment_id: int) -> str:
    return signing.TimestampSigner(salt=SALT).sign_object({"a": appointment_id})


def manage_url(*, appointment_id: int) -> str:
    """The absolute link put in messages (they are composed off any request: CER_PUBLIC_URL)."""
    path = reverse("portal:manage", args=[manage_token(appointment_id=appointment_id)])
    return f"{settings.CER_PUBLIC_URL.rstrip('/')}{path}"


def appointment_for_token(token: str) -> Appointment | None:
    """The appointment the token was made for, or None if it is forged, altered or expired."""
    try:
        payload = signing.TimestampSigner(salt=SALT).unsign_object(token, max_age=MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("a"), int):
        return None
    key = appointment_in_month(payload["a"], slot=True)
    if key is None:
        return None
    appointment = (
        Appointment.objects.select_related("service", "facility", "slot", "patient").filter(**key).first()
    )
    if appointment is not None and _came_of_age_since(appointment, token):
        return None
    return appointment


def _came_of_age_since(appointment: Appointment, token: str) -> bool:
    """Whether the patient was a minor on the day the link was made (it went to a parent) and is an
    adult today."""
    signed_at = signing.b62_decode(token.rsplit(signing.Signer().sep, 2)[1])  # the signature is valid
    made_on = timezone.localdate(dt.datetime.fromtimestamp(signed_at, tz=dt.UTC))
    patient = appointment.patient
    return not adult_on(patient, made_on) and adult_on(patient, timezone.localdate())


def limited(*, token: str, address: str) -> bool:
    """Count one use; True when the token or the address went over its limit (then nothing is done)."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:32]
    over = window_hit(key=f"cer:manage:token:{digest}", limit=USES_PER_WINDOW, window=RATE_WINDOW).exceeded
    if address:
        over = (
            window_hit(
                key=f"cer:manage:addr:{address}", limit=4 * USES_PER_WINDOW, window=RATE_WINDOW
            ).exceeded
            or over
        )
    return over


def audit(*, appointment: Appointment, action: str) -> None:
    access_record(
        actor_type="patient",
        actor_id=f"manage-link:{appointment.pk}",
        patient_ids=[appointment.patient_id],
        action=f"portal.manage.{action}",
        facility_id=appointment.facility_id,
        purpose="manage link from a message",
    )
