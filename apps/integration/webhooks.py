"""Webhook delivery from the outbox: fan-out of new events to subscriptions, signed HTTP POSTs,
retries with exponential backoff, and a log of every attempt.

Signature (documented in docs/integration-quickstart.md): headers
    CeR-Timestamp: <unix seconds>
    CeR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
The receiver recomputes the HMAC over the exact raw body and refuses timestamps older than a few
minutes (replay protection). Delivery is at-least-once: receivers de-duplicate by `CeR-Event-Id`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from collections import defaultdict

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.outbox.models import OutboxEvent
from apps.outbox.selectors import event_list_after

from . import egress
from .crypto import secret_decrypt
from .models import WebhookAttempt, WebhookCursor, WebhookDelivery, WebhookSubscription

BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(hours=6)
LEASE = dt.timedelta(seconds=60)  # a claimed attempt not finished by then may be retried
TIMEOUT = (3.05, 10)


def backoff(attempts: int) -> dt.timedelta:
    """30 s, 1 min, 2 min, 4 min ... capped at 6 h (attempts counts the failed attempts so far)."""
    return min(BACKOFF_BASE * (2 ** max(0, attempts - 1)), BACKOFF_MAX)


def signature(*, secret: str, timestamp: str, body: str) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()


def event_body(event: OutboxEvent) -> str:
    return json.dumps(
        {
            "id": event.id,
            "type": event.type,
            "created_at": event.created_at,
            "aggregate_type": event.aggregate_type,
            "aggregate_id": event.aggregate_id,
            "request_id": event.request_id,
            "payload": event.payload,
        },
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
        sort_keys=True,
    )


def delivery_new(*, subscription: WebhookSubscription, event: OutboxEvent) -> WebhookDelivery:
    """A delivery of one event to one subscription, not yet written. It carries the event's
    `created_at`, the other half of the outbox's key (its foreign key is (event_id, event_created_at))."""
    return WebhookDelivery(subscription=subscription, event=event, event_created_at=event.created_at)


def webhooks_fan_out(*, limit: int = 1000) -> list[int]:
    """Create deliveries for committed events after the fan-out cursor. Returns new delivery ids.

    One transaction moves the cursor and writes the deliveries, under the cursor's row lock, so two
    workers never fan out the same events and a crash never loses or doubles one.
    """
    with transaction.atomic():
        cursor, _ = WebhookCursor.objects.select_for_update().get_or_create(pk=1)
        events = event_list_after(after=(cursor.txid, cursor.event_id), limit=limit)
        if not events:
            return []
        facility_ids = {e.facility_id for e in events if e.facility_id}
        by_facility: dict[int, list[WebhookSubscription]] = defaultdict(list)
        for subscription in WebhookSubscription.objects.filter(facility_id__in=facility_ids, active=True):
            by_facility[subscription.facility_id].append(subscription)
        rows = [
            delivery_new(subscription=subscription, event=event)
            for event in events
            if event.facility_id
            for subscription in by_facility.get(event.facility_id, [])
            if not subscription.event_types or event.type in subscription.event_types
        ]
        WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
        cursor.txid, cursor.event_id = events[-1].txid, events[-1].id
        cursor.save(update_fields=["txid", "event_id"])
        ids = list(
            WebhookDelivery.objects.filter(
                event_id__in=[e.id for e in events], status=WebhookDelivery.Status.PENDING
            ).values_list("id", flat=True)
        )
        from .tasks import webhook_deliver_task

        transaction.on_commit(lambda: [webhook_deliver_task.delay(i) for i in ids])
    return ids


def webhook_deliver(*, delivery_id: int, now: dt.datetime | None = None) -> str:
    """One attempt of one delivery, if it is due. HTTP happens outside any transaction."""
    now = now or timezone.now()
    max_attempts = int(getattr(settings, "CER_WEBHOOK_MAX_ATTEMPTS", 8))
    # Claim with a conditional UPDATE: of two workers, one gets the attempt; a lease pushes the due
    # time forward so a crashed worker's attempt is retried later, not lost.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + LEASE, attempts=F("attempts") + 1)
    if not claimed:
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("subscription", "event").get(pk=delivery_id)
    subscription = delivery.subscription
    body = event_body(delivery.event)
    timestamp = str(int(time.time()))
    sig = signature(secret=secret_decrypt(subscription.secret_encrypted), timestamp=timestamp, body=body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "CeR-Webhooks/1",
        "CeR-Event-Id": str(delivery.event_id),
        "CeR-Event-Type": delivery.event.type,
        "CeR-Delivery-Id": str(delivery.pk),
        "CeR-Timestamp": timestamp,
        "CeR-Signature": f"t={timestamp},v1={sig}",
    }
    status_code: int | None = None
    error = ""
    started = time.monotonic()
    if not subscription.active:
        error = "subscription_deleted"
    else:
        # Checked again at every attempt (DNS may have changed since the subscription), and the
        # connection goes to the address checked here.
        try:
            target = egress.target_check(subscription.url)
        except egress.TargetRefused:
            error = egress.REFUSED
        else:
            outcome = egress.post(target, body=body.encode(), headers=headers, timeout=TIMEOUT)
            status_code, error = outcome.status_code, outcome.error
    duration = int((time.monotonic() - started) * 1000)
    ok = not error
    finished = timezone.now()
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery, status_code=status_code, error=error[:300], duration_ms=duration
        )
        fields: dict = {"last_status_code": status_code, "last_error": error[:300]}
        if ok:
            fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=finished)
        elif delivery.attempts >= max_attempts or not subscription.active:
            fields.update(status=WebhookDelivery.Status.FAILED)
        else:
            fields.update(next_attempt_at=finished + backoff(delivery.attempts))
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    return fields.get("status", WebhookDelivery.Status.PENDING)


def webhook_deliveries_due(*, now: dt.datetime | None = None, limit: int = 500) -> list[int]:
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
