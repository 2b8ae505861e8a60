"""Facility integration: API clients and their credentials, idempotency records, webhooks.

Credentials are OAuth 2 client-credentials applications of django-oauth-toolkit (DOT): the client
secret is stored only as a password hash by DOT, access tokens only as a SHA-256 checksum
(RFC 9700 token storage). An `ApiClient` is one facility system; it owns one or two DOT applications
(`ApiCredential`): two only during a secret rotation, when the old one carries an end date.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.catalog.models import Facility
from apps.core.models import TimeStampedModel

SCOPES = (
    "schedules:read",
    "schedules:write",
    "bookings:read",
    "bookings:write",
    "outcomes:write",
    "visits:write",
    "webhooks:manage",
    "waitlist:read",
    "waitlist:write",
    "changes:read",
)


class ApiClient(TimeStampedModel):
    """One facility system (HIS/RIS) with its own scopes, expiry and revocation."""

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="api_clients")
    name = models.CharField(max_length=200)
    scopes = ArrayField(models.CharField(max_length=32), default=list)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scopes__contained_by=list(SCOPES)), name="api_client_known_scopes"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.facility_id})"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and self.expires_at > now


class ApiCredential(models.Model):
    """A DOT application (client id + hashed secret) of an ApiClient; `valid_until` ends an old one."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="credentials")
    application = models.OneToOneField(
        "oauth2_provider.Application",
        on_delete=models.CASCADE,
        related_name="api_credential",
        swappable=False,  # DOT's default model; no OAUTH2_PROVIDER_APPLICATION_MODEL setting needed
    )
    created_at = models.DateTimeField(auto_now_add=True)
    valid_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"credential {self.pk} of client {self.client_id}"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return (self.valid_until is None or self.valid_until > now) and self.client.is_active(now)


class IdempotencyRecord(models.Model):
    """The first response to a POST/PUT/PATCH with an Idempotency-Key, per client and key."""

    id = models.BigAutoField(primary_key=True)
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=300)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_once_per_key")]


class WebhookSubscription(TimeStampedModel):
    """A facility's URL for some event types. The signing secret is stored encrypted (see crypto.py)."""

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="webhook_subscriptions")
    created_by = models.ForeignKey(ApiClient, null=True, on_delete=models.SET_NULL, related_name="+")
    url = models.URLField(max_length=500)
    event_types = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    secret_encrypted = models.TextField()
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} -> {self.url}"


class WebhookDelivery(models.Model):
    """One outbox event for one subscription: retried with exponential backoff until delivered."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up after CER_WEBHOOK_MAX_ATTEMPTS; can be redelivered on demand

    id = models.BigAutoField(primary_key=True)
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    # The outbox is month-partitioned on `created_at` (apps/outbox/partitions.py): its key is
    # (id, created_at), so the database's foreign key is (event_id, event_created_at), declared there,
    # and a delivery carries its event's `created_at` (`webhooks.delivery_new`).
    event = models.ForeignKey(
        "outbox.OutboxEvent", on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    event_created_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "event"], name="webhook_delivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="webhook_delivery_due", condition=Q(status="pending")
            ),
            # The deliveries of one outbox month: released and checked when the month is detached
            # (apps/outbox/partitions.py), with the outbox locked for the check.
            models.Index(fields=["event_created_at"], name="webhook_delivery_event_month"),
        ]


class WebhookAttempt(models.Model):
    """The delivery log: every HTTP attempt with its outcome."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]


class WebhookCursor(models.Model):
    """Single row: the (txid, id) of the last outbox event fanned out to subscriptions."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    txid = models.BigIntegerField(default=0)
    event_id = models.BigIntegerField(default=0)
