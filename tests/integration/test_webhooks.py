"""Webhooks with a real local HTTP receiver: signing, retries with backoff, log, redelivery, fan-out."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.integration import webhooks
from apps.integration.models import WebhookDelivery, WebhookSubscription
from apps.integration.services import webhook_subscription_create
from apps.outbox.models import OutboxEvent
from tests.factories import PatientFactory

LOCAL = override_settings(CER_WEBHOOK_ALLOW_HTTP=True, CER_WEBHOOK_ALLOW_PRIVATE=True)


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers with queued status codes."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers["CeR-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.{body.decode()}".encode(), hashlib.sha256).hexdigest()
    return headers["CeR-Signature"] == f"t={timestamp},v1={expected}"


@pytest.fixture
def subscription(world_a, issued_a, receiver):
    return webhook_subscription_create(
        facility=world_a.facility, client=issued_a.client, url=receiver.url, event_types=[]
    )


def _delivery(subscription, world_a) -> WebhookDelivery:
    event = OutboxEvent.objects.filter(facility=world_a.facility, type="appointment.booked").first()
    return WebhookDelivery.objects.create(
        subscription=subscription.subscription, event=event, event_created_at=event.created_at
    )


@LOCAL
def test_a_delivery_is_signed_with_hmac_sha256_over_timestamp_and_body(subscription, world_a, receiver):
    delivery = _delivery(subscription, world_a)

    status = webhooks.webhook_deliver(delivery_id=delivery.pk)

    assert status == "delivered"
    headers, body = receiver.requests[0]
    assert _verify(subscription.secret, headers, body)
    assert not _verify(subscription.secret + "x", headers, body)
    payload = json.loads(body)
    assert payload["type"] == "appointment.booked"
    assert headers["CeR-Event-Id"] == str(delivery.event_id)
    assert subscription.secret not in WebhookSubscription.objects.get().secret_encrypted


@LOCAL
@override_settings(CER_WEBHOOK_MAX_ATTEMPTS=3)
def test_failures_are_retried_with_exponential_backoff_then_given_up(subscription, world_a, receiver):
    receiver.statuses = [500, 503, 500]
    delivery = _delivery(subscription, world_a)
    now = timezone.now()

    first = webhooks.webhook_deliver(delivery_id=delivery.pk, now=now)
    delivery.refresh_from_db()
    wait_1 = delivery.next_attempt_at - timezone.now()
    too_early = webhooks.webhook_deliver(delivery_id=delivery.pk, now=now + dt.timedelta(seconds=10))
    second = webhooks.webhook_deliver(delivery_id=delivery.pk, now=delivery.next_attempt_at)
    delivery.refresh_from_db()
    wait_2 = delivery.next_attempt_at - timezone.now()
    third = webhooks.webhook_deliver(delivery_id=delivery.pk, now=delivery.next_attempt_at)
    delivery.refresh_from_db()

    assert (first, too_early, second, third) == ("pending", "skipped", "pending", "failed")
    assert dt.timedelta(seconds=25) < wait_1 <= dt.timedelta(seconds=30)
    assert dt.timedelta(seconds=55) < wait_2 <= dt.timedelta(seconds=60)
    assert delivery.attempts == 3
    assert [a.status_code for a in delivery.log.all()] == [500, 503, 500]
    assert len(receiver.requests) == 3


def test_backoff_doubles_and_is_capped():
    assert [webhooks.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert webhooks.backoff(30) == webhooks.BACKOFF_MAX


@LOCAL
def test_an_unreachable_receiver_is_logged_and_retried(subscription, world_a, receiver):
    receiver.close()
    delivery = _delivery(subscription, world_a)

    status = webhooks.webhook_deliver(delivery_id=delivery.pk)

    assert status == "pending"
    assert delivery.log.get().error == "unreachable"


def test_a_private_address_is_not_delivered_to_by_default(subscription, world_a, receiver):
    delivery = _delivery(subscription, world_a)

    webhooks.webhook_deliver(delivery_id=delivery.pk)

    assert receiver.requests == []
    assert delivery.log.get().error == "destination_refused"


@LOCAL
def test_the_api_subscribes_lists_logs_and_redelivers(
    api_a, world_a, receiver, django_capture_on_commit_callbacks
):
    created = api_a.post("/api/v1/webhooks", {"url": receiver.url, "event_types": ["appointment.booked"]})
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    listed = api_a.get("/api/v1/webhooks").json()["results"]
    assert "secret" not in listed[0]
    subscription = WebhookSubscription.objects.get()
    event = OutboxEvent.objects.filter(facility=world_a.facility, type="appointment.booked").first()
    delivery = WebhookDelivery.objects.create(
        subscription=subscription, event=event, event_created_at=event.created_at, status="failed", attempts=8
    )

    with django_capture_on_commit_callbacks() as callbacks:
        response = api_a.post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver")
    webhooks.webhook_deliver(delivery_id=delivery.pk)
    log = api_a.get(f"/api/v1/webhooks/{subscription.pk}/deliveries").json()["results"]

    assert response.status_code == 202
    assert len(callbacks) == 1
    assert log[0]["status"] == "delivered"
    assert log[0]["log"][0]["status_code"] == 204
    assert _verify(secret, *receiver.requests[0])
    assert api_a.call("DELETE", f"/api/v1/webhooks/{subscription.pk}").status_code == 204
    assert api_a.get("/api/v1/webhooks").json() == {"results": [], "next": None}


def test_webhook_urls_must_be_https(api_a, db):
    response = api_a.post("/api/v1/webhooks", {"url": "http://his.example.org/hook"})

    assert response.status_code == 400
    assert not WebhookSubscription.objects.exists()


@LOCAL
@pytest.mark.django_db(transaction=True)
def test_a_booking_arrives_by_webhook_once(api_a, world_a, receiver):
    """GIVEN a subscription to appointment.booked, WHEN a desk booking is made through the API and the
    outbox is fanned out twice, THEN the receiver gets exactly one signed appointment.booked."""
    secret = api_a.post(
        "/api/v1/webhooks", {"url": receiver.url, "event_types": ["appointment.booked"]}
    ).json()["secret"]
    patient = PatientFactory()
    booked = api_a.post(
        "/api/v1/bookings", {"slot_id": world_a.free_slots[0].pk, "pesel": patient.pesel, "channel": "email"}
    ).json()

    ids: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # events become visible once older transactions end
        ids += webhooks.webhooks_fan_out()
        if WebhookDelivery.objects.filter(event__aggregate_id=booked["id"]).exists():
            break
        time.sleep(0.05)
    ids += webhooks.webhooks_fan_out()
    for delivery_id in ids:
        webhooks.webhook_deliver(delivery_id=delivery_id)

    bodies = [json.loads(body) for _, body in receiver.requests]
    booked_events = [b for b in bodies if b["payload"].get("appointment_id") == booked["id"]]
    assert len(booked_events) == 1
    assert all(b["type"] == "appointment.booked" for b in bodies)
    assert all(_verify(secret, h, b) for h, b in receiver.requests)
    assert patient.pesel not in b"".join(body for _, body in receiver.requests).decode()
