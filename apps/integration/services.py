"""Writes of the integration app: API clients (issue, rotate, revoke) and webhook subscriptions."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, Application

from apps.catalog.models import Facility
from apps.core.errors import DomainError
from apps.reconciliation.imports import RawRow
from apps.reconciliation.models import ImportBatch
from apps.reconciliation.services import visits_record

from .auth import principal_cache_forget
from .crypto import secret_encrypt
from .models import SCOPES, ApiClient, ApiCredential, WebhookDelivery, WebhookSubscription
from .selectors import not_found

ROTATION_OVERLAP = dt.timedelta(days=7)


@dataclass(frozen=True)
class IssuedCredential:
    """The only moment the plain secret exists: show it once, never store or log it."""

    client: ApiClient
    client_id: str
    client_secret: str


def _scopes_clean(scopes: Iterable[str]) -> list[str]:
    cleaned = sorted({s.strip() for s in scopes if s.strip()})
    unknown = [s for s in cleaned if s not in SCOPES]
    if unknown or not cleaned:
        raise DomainError(
            "invalid_scope", field="scopes", unknown=", ".join(unknown) or "-", known=", ".join(SCOPES)
        )
    return cleaned


def _application_create(*, client: ApiClient) -> tuple[Application, str]:
    plain = generate_client_secret()
    application = Application.objects.create(
        name=f"{client.facility.nfz_code} {client.name}"[:255],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=plain,  # DOT hashes it on save (hash_client_secret=True)
        hash_client_secret=True,
    )
    ApiCredential.objects.create(client=client, application=application)
    return application, plain


@transaction.atomic
def api_client_issue(
    *, facility: Facility, name: str, scopes: Iterable[str], days: int, created_by=None
) -> IssuedCredential:
    if days < 1 or days > 3650:
        raise DomainError("invalid_expiry", field="days")
    client = ApiClient.objects.create(
        facility=facility,
        name=name,
        scopes=_scopes_clean(scopes),
        expires_at=timezone.now() + dt.timedelta(days=days),
        created_by=created_by,
    )
    application, plain = _application_create(client=client)
    return IssuedCredential(client=client, client_id=application.client_id, client_secret=plain)


def _credential_for_update(client_id: str) -> ApiCredential:
    credential = (
        ApiCredential.objects.select_for_update()
        .select_related("client", "client__facility", "application")
        .filter(application__client_id=client_id)
        .first()
    )
    if credential is None:
        raise not_found("api_client")
    return credential


@transaction.atomic
def api_client_rotate(*, client_id: str, overlap: dt.timedelta = ROTATION_OVERLAP) -> IssuedCredential:
    """A new secret (and client id); the current ones stay valid for `overlap`, then stop working.

    Two valid credentials during the change-over let a facility deploy the new secret to every
    instance of its system before the old one ends.
    """
    credential = _credential_for_update(client_id)
    client = ApiClient.objects.select_for_update().get(pk=credential.client_id)
    if not client.is_active():
        raise DomainError("api_client_inactive")
    now = timezone.now()
    ends = min(now + overlap, client.expires_at)
    principal_cache_forget(client=client)
    ApiCredential.objects.filter(client=client).filter(valid_until__isnull=True).update(valid_until=ends)
    ApiCredential.objects.filter(client=client, valid_until__gt=ends).update(valid_until=ends)
    application, plain = _application_create(client=client)
    return IssuedCredential(client=client, client_id=application.client_id, client_secret=plain)


@transaction.atomic
def api_client_revoke(*, client_id: str) -> ApiClient:
    """Revoke every credential of the client at once and delete its live access tokens."""
    credential = _credential_for_update(client_id)
    client = ApiClient.objects.select_for_update().get(pk=credential.client_id)
    return api_client_revoke_client(client=client)


@transaction.atomic
def api_client_revoke_client(*, client: ApiClient) -> ApiClient:
    now = timezone.now()
    ApiClient.objects.filter(pk=client.pk, revoked_at__isnull=True).update(revoked_at=now, updated_at=now)
    AccessToken.objects.filter(application__api_credential__client=client).delete()
    client.refresh_from_db()
    return client


# --- Webhook subscriptions --------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedSubscription:
    subscription: WebhookSubscription
    secret: str  # shown once in the response


@transaction.atomic
def webhook_subscription_create(
    *, facility: Facility, client: ApiClient | None, url: str, event_types: list[str]
) -> CreatedSubscription:
    plain = "whsec_" + secrets.token_urlsafe(32)
    subscription = WebhookSubscription.objects.create(
        facility=facility,
        created_by=client,
        url=url,
        event_types=sorted(set(event_types)),
        secret_encrypted=secret_encrypt(plain),
    )
    return CreatedSubscription(subscription=subscription, secret=plain)


@transaction.atomic
def webhook_subscription_delete(*, subscription: WebhookSubscription) -> None:
    WebhookSubscription.objects.filter(pk=subscription.pk).update(active=False, updated_at=timezone.now())


@transaction.atomic
def webhook_delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Redelivery on demand: back to pending, due now; the attempt counter starts over."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
    delivery.refresh_from_db()
    from .tasks import webhook_deliver_task

    transaction.on_commit(lambda: webhook_deliver_task.delay(delivery.pk))
    return delivery


@transaction.atomic
def visits_report(*, client: ApiClient, rows: list[dict]) -> ImportBatch:
    """Record visits a facility system posts for settlement, as one API import batch.

    Every row is recorded for the client's own facility (the caller has refused any row or body that
    names another). Validation, de-duplication (a visit id the facility already reported is left as
    it was) and the insert are the reconciliation import's (`visits_record`), so a file import and an
    API post of the same visits behave alike. Rows are numbered from 1 by their position in the list.
    """
    facility = client.facility
    raw = [
        RawRow(line=index, data={**row, "facility_code": facility.nfz_code})
        for index, row in enumerate(rows, 1)
    ]
    batch = ImportBatch.objects.create(
        file_name=f"API {client.name} (client {client.pk})"[:255],
        # API batches are not de-duplicated by content (visit ids are); the digest only identifies it.
        sha256=hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest(),
        source=ImportBatch.Source.API,
    )
    return visits_record(batch=batch, rows=raw, facility=facility)
