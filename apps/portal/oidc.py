"""Production sign-in: OpenID Connect against the national login service (login.gov.pl / Węzeł Krajowy).

Enabled only when the lead's settings configure mozilla-django-oidc from the environment
(OIDC_RP_CLIENT_ID, OIDC_RP_CLIENT_SECRET, OIDC_OP_* endpoints) and add this backend to
AUTHENTICATION_BACKENDS; otherwise nothing here runs. The national identity is the PESEL claim
(`CER_OIDC_PESEL_CLAIM`, default "pesel"); it maps to exactly one `Patient`, created from the claims
on first sign-in. The PESEL is never logged.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from apps.core import pesel as pesel_lib
from apps.patients.models import Patient

from .services import patient_user_link

logger = logging.getLogger("cer.portal")


def _claim_pesel(claims: dict[str, Any]) -> str | None:
    value = claims.get(getattr(settings, "CER_OIDC_PESEL_CLAIM", "pesel"))
    if not isinstance(value, str) or not pesel_lib.is_valid(value):
        return None
    return value


def patient_from_claims(*, claims: dict[str, Any]) -> Patient | None:
    """The patient named by verified OIDC claims; created from the PESEL and names if new."""
    pesel = _claim_pesel(claims)
    if pesel is None:
        return None
    info = pesel_lib.parse(pesel)
    with transaction.atomic():
        patient, _created = Patient.objects.get_or_create(
            pesel=pesel,
            defaults={
                "first_name": str(claims.get("given_name", ""))[:100],
                "last_name": str(claims.get("family_name", ""))[:100],
                "birth_date": info.birth_date,
                "sex": info.sex,
                "email": str(claims.get("email", ""))[:254] if claims.get("email_verified") else "",
                "phone": str(claims.get("phone_number", ""))[:20]
                if claims.get("phone_number_verified")
                else "",
            },
        )
    return patient


class NationalLoginBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc backend keyed by PESEL instead of e-mail."""

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return _claim_pesel(claims) is not None

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        user_model = get_user_model()
        pesel = _claim_pesel(claims)
        if pesel is None:
            return user_model.objects.none()
        return user_model.objects.filter(patient__pesel=pesel)

    def create_user(self, claims: dict[str, Any]) -> Any:
        patient = patient_from_claims(claims=claims)
        if patient is None:
            return None
        logger.info("national login: first sign-in of patient %s", patient.pk)
        return patient_user_link(patient=patient)

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        return user
