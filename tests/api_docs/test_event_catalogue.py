"""Issue 17: every event type is catalogued with a typed payload (OpenAPI components and
docs/events.md), events carry the request id, subscriptions refuse unknown types, and a signed test
event can be sent to a subscription."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client

from apps.integration import webhooks
from apps.integration.apis.changes import EventOutput
from apps.integration.events import EVENT_TYPES, catalogue_markdown, event_type_component
from apps.outbox.models import OutboxEvent
from tests.integration.test_webhooks import LOCAL, Receiver, _verify

ROOT = Path(__file__).resolve().parents[2]
EMITTED = re.compile(
    r"""(?:type=|appointment_event(?:_new)?\([^,]+,\s*|registration_event\([^,]+,\s*|_event\([^,]+,\s*)"""
    r"""["']([a-z_]+\.[a-z_]+)["']"""
)


def test_docs_events_md_is_the_catalogue():
    assert (ROOT / "docs" / "events.md").read_text() == catalogue_markdown(), (
        "run `make manage ARGS=events_catalogue`"
    )


def test_every_event_type_the_code_emits_is_catalogued():
    emitted = {"appointment.attended", "appointment.no_show"}  # f"appointment.{outcome}"
    for path in (ROOT / "apps").rglob("*.py"):
        emitted |= set(EMITTED.findall(path.read_text()))
    assert len(emitted) >= 16
    assert emitted - set(EVENT_TYPES) == set()


def test_the_schema_types_every_event_of_the_feed(db):
    schema = json.loads(Client().get("/api/schema/?format=json").content)
    components = schema["components"]["schemas"]
    event = components["Event"]
    mapping = event["discriminator"]["mapping"]

    assert set(mapping) == set(EVENT_TYPES) - {"webhook.test"}
    cancelled = components[event_type_component("appointment.cancelled")]
    payload = cancelled["properties"]["payload"]
    payload = components[payload["$ref"].rsplit("/", 1)[1]] if "$ref" in payload else payload
    assert {"by", "reason", "appointment_id", "start"} <= set(payload["properties"])
    assert "request_id" in cancelled["properties"]


def _conforms(event: dict) -> list[str]:
    """Problems of one event against its catalogued payload: unknown or missing fields."""
    fields = EVENT_TYPES[event["type"]].payload().fields
    unknown = set(event["payload"]) - set(fields)
    missing = {name for name, field in fields.items() if field.required and name not in event["payload"]}
    return sorted(unknown | missing)


def test_a_desk_flows_events_match_their_schemas_and_carry_the_request_id(api_a, world_a):
    slot = world_a.free_slots[0]
    booked = api_a.post(
        "/api/v1/bookings",
        {"slot_id": slot.pk, "pesel": world_a.patient.pesel, "channel": "desk"},
        **{"X-Request-ID": "desk-flow-1"},
    )
    api_a.post(f"/api/v1/bookings/{world_a.booking.pk}/confirm", **{"X-Request-ID": "desk-flow-2"})
    api_a.post(
        f"/api/v1/bookings/{world_a.booking.pk}/cancel",
        {"reason_code": "DOCTOR_ILLNESS"},
        **{"X-Request-ID": "desk-flow-3"},
    )
    api_a.post(f"/api/v1/bookings/{world_a.past_booking.pk}/outcome", {"outcome": "attended"})

    # The feed shows committed transactions only (tests/integration/test_changes.py): its serializer
    # is applied to the events written here.
    feed = EventOutput(OutboxEvent.objects.filter(facility=world_a.facility).order_by("id"), many=True).data

    assert booked.status_code == 409  # the patient already has a booking: refused, no event
    assert {e["type"] for e in feed} >= {
        "appointment.booked",
        "appointment.confirmed",
        "appointment.cancelled",
    }
    assert {e["type"] for e in feed} >= {"appointment.attended"}
    for event in feed:
        assert _conforms(event) == [], event["type"]
    ids = {e["type"]: e["request_id"] for e in feed if e["request_id"].startswith("desk-flow")}
    assert ids["appointment.confirmed"] == "desk-flow-2"
    assert ids["appointment.cancelled"] == "desk-flow-3"


@LOCAL
def test_a_webhook_body_carries_the_request_id(world_a, issued_a):
    event = OutboxEvent.objects.filter(facility=world_a.facility).first()
    event.request_id = "abc-123"
    body = json.loads(webhooks.event_body(event))

    assert body["request_id"] == "abc-123"


def test_a_subscription_to_a_misspelt_type_is_refused(api_a, db):
    response = api_a.post(
        "/api/v1/webhooks",
        {"url": "https://hooks.example.org/cer", "event_types": ["appointment.canceled"]},
        **{"Accept-Language": "en"},
    )

    assert response.status_code == 400
    assert "appointment.canceled" in response.json()["errors"]["event_types"][0]
    assert "appointment.cancelled" in response.json()["errors"]["event_types"][0]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@LOCAL
def test_the_test_endpoint_sends_one_signed_test_event_to_that_subscription_only(
    api_a, world_a, receiver, django_capture_on_commit_callbacks
):
    created = api_a.post("/api/v1/webhooks", {"url": receiver.url, "event_types": []}).json()
    other = api_a.post("/api/v1/webhooks", {"url": receiver.url + "/other", "event_types": []}).json()

    with django_capture_on_commit_callbacks(execute=False):
        response = api_a.post(f"/api/v1/webhooks/{created['id']}/test")
    assert response.status_code == 202, response.content
    webhooks.webhook_deliver(delivery_id=response.json()["id"])
    webhooks.webhooks_fan_out()

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert _verify(created["secret"], headers, body)
    event = json.loads(body)
    assert event["type"] == headers["CeR-Event-Type"] == "webhook.test"
    assert event["payload"]["subscription_id"] == created["id"]
    log = api_a.get(f"/api/v1/webhooks/{created['id']}/deliveries").json()["results"]
    assert log[0]["status"] == "delivered" and log[0]["event_type"] == "webhook.test"
    assert api_a.get(f"/api/v1/webhooks/{other['id']}/deliveries").json()["results"] == []
    assert not OutboxEvent.objects.filter(type="webhook.test", facility__isnull=False).exists()
