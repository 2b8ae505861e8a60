"""/metrics: the listed series after a booking, a refusal, a webhook delivery and a reconciliation run."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from apps.booking import services as booking
from apps.booking.tasks import holds_expire_task
from apps.integration.models import WebhookDelivery
from apps.integration.services import webhook_subscription_create
from apps.integration.tasks import webhook_deliver_task
from apps.notifications.models import Message
from apps.notifications.tasks import message_deliver_task
from apps.outbox.models import OutboxEvent
from apps.reconciliation.models import ReconciliationRun
from apps.reconciliation.tasks import run_execute_task
from scripts.restore_drill import with_database
from tests.factories import PatientFactory, RegistrationFactory
from tests.factories.portal import MessageFactory
from tests.factories.reconciliation import ReportedVisitFactory
from tests.integration.test_webhooks import Receiver

from .conftest import METRICS_TOKEN, Scrape

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@override_settings(CER_WEBHOOK_ALLOW_HTTP=True, CER_WEBHOOK_ALLOW_PRIVATE=True)
def test_the_series_move_after_a_booking_a_refusal_a_webhook_and_a_reconciliation(
    api_a, world_a, issued_a, receiver, scrape, django_capture_on_commit_callbacks
):
    """GIVEN facility A's system, a webhook receiver on loopback and a reported visit
    WHEN it books (committed), loses a race for a taken slot, a webhook is delivered, a hold expires,
         a notification is sent, a patient waits and a reconciliation runs
    THEN each shows in /metrics, read with prometheus-client's parser."""
    before = scrape()
    body = {"slot_id": world_a.free_slots[0].pk, "pesel": PatientFactory().pesel, "channel": "phone"}

    with django_capture_on_commit_callbacks(execute=True):
        booked = api_a.post("/api/v1/bookings", body)
    refused = api_a.post("/api/v1/bookings", {**body, "pesel": PatientFactory().pesel})
    subscription = webhook_subscription_create(
        facility=world_a.facility, client=issued_a.client, url=receiver.url, event_types=[]
    )
    event = OutboxEvent.objects.get(type="appointment.booked", aggregate_id=booked.json()["id"])
    delivery = WebhookDelivery.objects.create(
        subscription=subscription.subscription, event=event, event_created_at=event.created_at
    )
    delivered = webhook_deliver_task.delay(delivery.pk).get()
    hold_at = timezone.now() - dt.timedelta(hours=1)
    booking.slot_hold(slot_id=world_a.free_slots[1].pk, patient=PatientFactory(), now=hold_at)
    expired = holds_expire_task.delay().get()
    message = MessageFactory(channel=Message.Channel.IN_APP, state=Message.State.PENDING)
    sent = message_deliver_task.delay(message.pk).get()
    RegistrationFactory(service=world_a.service, status="waiting")
    visit = ReportedVisitFactory(facility=world_a.facility, service=world_a.service)
    day = timezone.localdate(visit.visit_at)
    run = ReconciliationRun.objects.create(
        scope="day", period_start=day, period_end=day + dt.timedelta(days=1), rule_version="x"
    )
    reconciled = run_execute_task.delay(run.pk).get()
    after = scrape()

    assert (booked.status_code, refused.status_code) == (201, 409)
    assert (delivered, expired, sent, reconciled) == ("delivered", 1, "sent", "done")

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    # requests per route, latency, errors
    assert grew("cer_http_requests_total", route="api/v1/bookings", method="POST", status="201") == 1
    assert grew("cer_http_requests_total", route="api/v1/bookings", method="POST", status="409") == 1
    assert grew("cer_http_request_duration_seconds_count", route="api/v1/bookings", method="POST") == 2
    # bookings by channel and outcome (committed only), refusals by problem code
    assert grew("cer_bookings_total", channel="phone", outcome="booked") == 1
    assert grew("cer_outbox_events_total", type="appointment.booked") == 1
    assert grew("cer_refusals_total", code="slot_not_free", status="409") == 1
    # worker side: webhook result, holds expired, notifications, reconciliation, task counts
    assert grew("cer_webhook_deliveries_total", result="delivered") == 1
    assert grew("cer_holds_expired_total") == 1
    assert grew("cer_notifications_total", channel="in_app", state="sent") == 1
    assert grew("cer_reconciliation_run_tasks_total", result="done") == 1
    assert grew("cer_celery_tasks_total", task=webhook_deliver_task.name, state="SUCCESS") == 1
    assert grew("cer_celery_task_duration_seconds_count", task=run_execute_task.name) == 1
    # gauges read from the database and Redis at scrape time
    assert after.value("cer_waiting_list_size", service=world_a.service.code) == 1
    assert after.value("cer_reconciliation_runs", state="done") >= 1
    assert after.value("cer_reconciliation_last_success_timestamp_seconds", scope="day") > 0
    assert after.value("cer_outbox_pending_events", consumer="webhooks") >= 1
    assert after.value("cer_notifications_backlog", channel="in_app") == 0
    assert after.value("cer_database_up") == after.value("cer_redis_up") == 1
    assert after.value("cer_database_connections") >= 1
    assert "cer_celery_queue_length" in after.names()


@pytest.mark.django_db
def test_a_booking_that_never_commits_is_not_counted(world_a, scrape, django_capture_on_commit_callbacks):
    before = scrape()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        booking.appointment_book(slot_id=world_a.free_slots[0].pk, patient=PatientFactory(), channel="desk")

    assert callbacks  # it would be counted by its commit
    assert scrape().value("cer_bookings_total", channel="desk") == before.value(
        "cer_bookings_total", channel="desk"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x"]
)
def test_metrics_are_not_public(authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    with override_settings(CER_METRICS_TOKEN=METRICS_TOKEN):
        response = Client().get("/metrics", **headers)

    assert response.status_code == 404
    assert b"cer_" not in response.content


@pytest.mark.django_db
def test_without_a_configured_token_there_is_no_metrics_endpoint():
    with override_settings(CER_METRICS_TOKEN=None):
        response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 404


@pytest.mark.django_db
def test_a_redis_outage_is_reported_not_a_failed_scrape(scrape, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1 of loopback

    scraped = scrape()

    assert scraped.value("cer_redis_up") == 0
    assert scraped.value("cer_database_up") == 1


COUNT_ONE = """
import django
django.setup()
from apps.operations import metrics
metrics.OUTBOX_EVENTS.labels("test.multiprocess").inc()
"""
SCRAPE = """
import django
django.setup()
from apps.operations.metrics import registry_output
print(registry_output().decode())
"""


@pytest.mark.django_db
def test_counts_of_several_processes_add_up_in_multiprocess_mode(tmp_path):
    """GIVEN PROMETHEUS_MULTIPROC_DIR shared by processes (gunicorn workers, Celery workers)
    WHEN two of them count an event each THEN a third one's /metrics output has both."""
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DATABASE_URL": with_database(os.environ["DATABASE_URL"], connection.settings_dict["NAME"]),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }

    def run(script: str) -> str:
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    run(COUNT_ONE)
    run(COUNT_ONE)
    output = Scrape(run(SCRAPE))

    assert output.value("cer_outbox_events_total", type="test.multiprocess") == 2
    assert output.value("cer_database_up") == 1  # the scrape-time gauges are there too
