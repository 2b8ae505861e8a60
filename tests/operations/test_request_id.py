"""The request id: accepted from X-Request-ID or made, echoed, and carried into tasks and events."""

from __future__ import annotations

import json

import pytest
import redis
from celery import current_app
from django.conf import settings

from apps.booking.tasks import holds_expire_task
from apps.operations import celery_hooks
from apps.operations.context import request_id_var
from apps.outbox.models import OutboxEvent
from tests.factories import PatientFactory


@pytest.mark.django_db
def test_a_callers_request_id_is_echoed(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="his-a.2026-12-01:0042")

    assert response["X-Request-ID"] == "his-a.2026-12-01:0042"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "given", [None, "", "a" * 65, "bad id with spaces", "x\nInjected: 1", "ż" * 8, "his-44051401359"]
)
def test_a_missing_or_unusable_request_id_is_replaced_by_a_new_one(client, given):
    headers = {} if given is None else {"HTTP_X_REQUEST_ID": given}

    first = client.get("/healthz", **headers)["X-Request-ID"]
    second = client.get("/healthz", **headers)["X-Request-ID"]

    assert len(first) == 32 and first != second
    assert int(first, 16) >= 0


def test_the_events_of_a_booking_carry_the_request_id(api_a, world_a):
    body = {"slot_id": world_a.free_slots[0].pk, "pesel": PatientFactory().pesel, "channel": "phone"}

    response = api_a.post("/api/v1/bookings", body, **{"X-Request-ID": "req-booking-1"})

    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == "req-booking-1"
    event = OutboxEvent.objects.get(type="appointment.booked", aggregate_id=response.json()["id"])
    assert event.request_id == "req-booking-1"


@pytest.mark.filterwarnings("ignore:task_always_eager has no effect on send_task")
def test_a_task_published_during_a_request_carries_its_id_to_the_worker(monkeypatch):
    """GIVEN a request id in the context WHEN a task is published to the real Redis broker THEN the
    message has it in a header, and running that message sets it for the task's own log lines."""
    queue = f"cer-operations-test-{id(object())}"
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    token = request_id_var.set("req-publish-7")
    try:
        current_app.send_task(holds_expire_task.name, queue=queue)
    finally:
        request_id_var.reset(token)
    try:
        message = json.loads(broker.lpop(queue))
    finally:
        broker.delete(queue)
        broker.close()
    assert message["headers"][celery_hooks.HEADER] == "req-publish-7"

    seen: list[str] = []  # the task body records the id it runs under
    monkeypatch.setattr(holds_expire_task, "run", lambda: seen.append(request_id_var.get()) or 0)
    holds_expire_task.apply(headers={celery_hooks.HEADER: message["headers"][celery_hooks.HEADER]})

    assert seen == ["req-publish-7"]
    assert request_id_var.get() == ""  # reset after the task


@pytest.mark.django_db
def test_a_task_without_a_request_gets_an_id_of_its_own(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(holds_expire_task, "run", lambda: seen.append(request_id_var.get()) or 0)
    result = holds_expire_task.apply(task_id="abc")

    assert result.successful()
    assert seen == ["task-abc"]
