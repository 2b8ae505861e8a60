"""Factories for the integration app: API clients with real (hashed) DOT credentials and tokens."""

from __future__ import annotations

import datetime as dt
import secrets

from django.utils import timezone
from oauth2_provider.models import AccessToken

from apps.integration.models import SCOPES
from apps.integration.services import IssuedCredential, api_client_issue
from tests.factories import FacilityFactory

ALL_SCOPES = tuple(SCOPES)


def api_client_create(
    *, facility=None, scopes=ALL_SCOPES, days: int = 30, name: str = "HIS"
) -> IssuedCredential:
    return api_client_issue(facility=facility or FacilityFactory(), name=name, scopes=scopes, days=days)


def access_token_create(issued: IssuedCredential, *, scopes=None, seconds: int = 3600) -> str:
    """A bearer token as the token endpoint would issue it (without the HTTP round trip)."""
    raw = secrets.token_urlsafe(30)
    application = issued.client.credentials.get(application__client_id=issued.client_id).application
    AccessToken.objects.create(
        application=application,
        token=raw,
        scope=" ".join(scopes if scopes is not None else issued.client.scopes),
        expires=timezone.now() + dt.timedelta(seconds=seconds),
    )
    return raw
