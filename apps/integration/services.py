"""Writes of the integration app: API clients (issue, rotate, revoke) and webhook subscriptions."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, Application

from apps.booking import services as booking
from apps.booking.models import Category, Registration
from apps.catalog.models import Entitlement, Facility, Locality, Voivodeship
from apps.catalog.selectors import service_get
from apps.core.errors import DomainError
from apps.outbox.services import event_record
from apps.patients import registry
from apps.patients.models import Patient, PatientEntitlement
from apps.reconciliation.imports import RawRow
from apps.reconciliation.models import ImportBatch
from apps.reconciliation.services import visits_record
from apps.scheduling.models import Practitioner

from .auth import principal_cache_forget
from .crypto import secret_encrypt
from .models import SCOPES, ApiClient, ApiCredential, WebhookDelivery, WebhookSubscription
from .selectors import not_found, patient_by_pesel
from .webhooks import delivery_new

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


# --- Patients the desk identifies, and the central waiting list on a facility's behalf ---------------

# How far ahead a waiting-list entry may state its date window (the list searches 40 days ahead for
# visits and 90 for tests; a window beyond two years is a typo, not a preference).
WAITLIST_WINDOW_DAYS = 730


@dataclass(frozen=True)
class ConfirmedPatient:
    """What the facility confirmed about a person (ID card at the desk, or asked on the phone)."""

    first_name: str
    last_name: str
    phone: str = ""
    email: str = ""


def patient_for_facility(
    *,
    pesel: str,
    confirmed: ConfirmedPatient | None,
    facility: Facility,
    channel: str,
    found: Patient | None = None,
) -> Patient:
    """The patient a facility names by PESEL. With `confirmed`, one CeR has never seen is created
    through the patient registry (source: this facility and channel; an existing one is returned,
    only its missing phone or e-mail filled in). Without it, an unknown PESEL is `patient_not_found`,
    whose message tells the integrator to send `patient`.

    The common case (a known patient, no `patient` object) stays one plain-SQL read; `found` is that
    read's patient when the caller has already made it (`selectors.patient_by_pesel_read`)."""
    registry.pesel_check(pesel)
    if confirmed is not None:
        return registry.patient_identify(
            pesel=pesel,
            first_name=confirmed.first_name,
            last_name=confirmed.last_name,
            phone=confirmed.phone,
            email=confirmed.email,
            source=registry.Source.facility_api(facility, channel),
        )
    if found is not None and found.pesel == pesel:
        return found
    patient = patient_by_pesel(pesel=pesel) or registry.patient_find(pesel=pesel)
    if patient is None:
        raise DomainError("patient_not_found", field="pesel")
    return patient


@dataclass(frozen=True)
class WaitlistPreferences:
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    voivodeship: str | None = None  # TERYT code
    locality: str | None = None  # SIMC code
    max_distance_km: int | None = None
    facility: str | None = None  # NFZ code
    practitioner: int | None = None  # id of a practitioner of the preferred (or own) facility


@dataclass(frozen=True)
class ShownEntitlement:
    """An out-of-turn entitlement the patient showed at the desk, with the document seen."""

    code: str
    document: str
    valid_from: dt.date
    valid_to: dt.date | None = None


def _window_check(preferences: WaitlistPreferences, today: dt.date) -> None:
    last = today + dt.timedelta(days=WAITLIST_WINDOW_DAYS)
    date_from, date_to = preferences.date_from, preferences.date_to
    too_far = any(d is not None and d > last for d in (date_from, date_to))
    backwards = date_to is not None and (date_to < today or (date_from is not None and date_to < date_from))
    if too_far or backwards:
        field = (
            "preferences.date_to" if backwards or (date_to and date_to > last) else "preferences.date_from"
        )
        raise DomainError("waitlist_window_invalid", field=field, days=WAITLIST_WINDOW_DAYS)


def _preferences_resolve(preferences: WaitlistPreferences) -> dict[str, Any]:
    """Catalogue rows for the stated preferences; anything unknown is a 400 naming the field."""

    def unknown(field: str) -> DomainError:
        return DomainError("waitlist_preference_unknown", field=f"preferences.{field}", preference=field)

    out: dict[str, Any] = {"voivodeship": None, "locality": None, "facility": None, "practitioner": None}
    if preferences.voivodeship is not None:
        out["voivodeship"] = Voivodeship.objects.filter(teryt=preferences.voivodeship).first()
        if out["voivodeship"] is None:
            raise unknown("voivodeship")
    if preferences.locality is not None:
        out["locality"] = Locality.objects.filter(simc=preferences.locality).first()
        if out["locality"] is None:
            raise unknown("locality")
    if preferences.facility is not None:
        out["facility"] = Facility.objects.filter(nfz_code=preferences.facility).first()
        if out["facility"] is None:
            raise unknown("facility")
    if preferences.practitioner is not None:
        practitioners = Practitioner.objects.filter(pk=preferences.practitioner)
        if out["facility"] is not None:
            practitioners = practitioners.filter(facility=out["facility"])
        out["practitioner"] = practitioners.select_related("facility").first()
        if out["practitioner"] is None:
            raise unknown("practitioner")
        # A doctor is seen at their own facility: the entry asks for that facility too.
        out["facility"] = out["practitioner"].facility
    return out


def _entitlement_record(
    *, patient: Patient, shown: ShownEntitlement, facility: Facility, now: dt.datetime
) -> Entitlement:
    """Record the entitlement the desk saw (who and when), or refresh the same one already recorded."""
    entitlement = Entitlement.objects.filter(code=shown.code).first()
    if entitlement is None:
        raise DomainError("unknown_entitlement", field="entitlement.code", entitlement=shown.code)
    today = timezone.localdate(now)
    if shown.valid_from > today or (shown.valid_to is not None and shown.valid_to < today):
        field = "entitlement.valid_from" if shown.valid_from > today else "entitlement.valid_to"
        raise DomainError("entitlement_not_valid", field=field, today=today.isoformat())
    PatientEntitlement.objects.update_or_create(
        patient=patient,
        entitlement=entitlement,
        valid_from=shown.valid_from,
        defaults={
            "valid_to": shown.valid_to,
            "document": shown.document,
            "source_facility": facility,
            "recorded_at": now,
        },
    )
    return entitlement


def waitlist_entry_create(
    *,
    facility: Facility,
    pesel: str,
    confirmed: ConfirmedPatient | None,
    service_code: str,
    referral_number: str | None = None,
    referral_code: str | None = None,
    category: str | None = None,
    preferences: WaitlistPreferences | None = None,
    entitlement: ShownEntitlement | None = None,
    now: dt.datetime | None = None,
) -> Registration:
    """A facility puts a patient on the central waiting list (Poczekalnia) for a service.

    The booking rules, the referral lifecycle and the queue order are `waitlist_join`'s; this adds what
    only a facility brings: a patient identified at the desk, the entitlement document it saw, and
    itself as the entry's registrant (the join's outbox event), which is what lets it read and remove
    the entry later. One transaction: a refusal leaves no patient, entitlement or entry behind."""
    now = now or timezone.now()
    preferences = preferences or WaitlistPreferences()
    _window_check(preferences, timezone.localdate(now))
    with transaction.atomic():
        service = service_get(code=service_code)
        resolved = _preferences_resolve(preferences)
        patient = patient_for_facility(
            pesel=pesel, confirmed=confirmed, facility=facility, channel="waitlist"
        )
        shown = (
            _entitlement_record(patient=patient, shown=entitlement, facility=facility, now=now)
            if entitlement is not None
            else None
        )
        return booking.waitlist_join(
            patient=patient,
            service=service,
            referral_number=referral_number,
            referral_code=referral_code,
            date_from=preferences.date_from,
            date_to=preferences.date_to,
            max_distance_km=preferences.max_distance_km,
            urgent=None if category is None else category == Category.URGENT,
            entitlement=shown,
            registered_by=facility,
            now=now,
            **resolved,
        )


def waitlist_entry_leave(*, registration: Registration, facility: Facility) -> Registration:
    """Remove an entry the facility registered; the e-referral it held is freed. An entry that is no
    longer waiting (allocated a slot, or closed) is a 409 that says so."""
    if registration.status != Registration.Status.WAITING:
        raise DomainError("waitlist_entry_not_waiting", state=registration.status)
    return booking.waitlist_leave(registration=registration, facility=facility)


@transaction.atomic
def webhook_test_send(*, subscription: WebhookSubscription) -> WebhookDelivery:
    """A signed `webhook.test` event for one subscription. The event has no facility, so the fan-out
    and the changes feed never carry it; its one delivery goes out like any other (egress checks,
    signature, attempt log)."""
    event = event_record(
        type="webhook.test",
        aggregate_type="webhook",
        aggregate_id=subscription.pk,
        payload={"subscription_id": subscription.pk, "message": "Test event from CeR: your receiver works."},
    )
    delivery = delivery_new(subscription=subscription, event=event)
    delivery.save(force_insert=True)
    from .tasks import webhook_deliver_task

    transaction.on_commit(lambda: webhook_deliver_task.delay(delivery.pk))
    return delivery
