"""Celery entry points of the integration app: take ids, call a function, exit quietly if gone."""

from __future__ import annotations

from celery import shared_task

from . import webhooks
from .idempotency import idempotency_records_purge

PERIODIC_TASKS = [
    {
        "name": "integration: webhook fan-out",
        "task": "apps.integration.tasks.webhooks_fan_out_task",
        "every_seconds": 5,
    },
    {
        "name": "integration: webhook retries",
        "task": "apps.integration.tasks.webhooks_retry_due_task",
        "every_seconds": 30,
    },
    {
        "name": "integration: purge idempotency records",
        "task": "apps.integration.tasks.idempotency_purge_task",
        "crontab": {"minute": "17", "hour": "3"},
    },
]


@shared_task(time_limit=600)
def idempotency_purge_task() -> int:
    return idempotency_records_purge()


@shared_task(time_limit=120)
def webhooks_fan_out_task() -> int:
    return len(webhooks.webhooks_fan_out())


@shared_task(time_limit=60, acks_late=True)
def webhook_deliver_task(delivery_id: int) -> str:
    return webhooks.webhook_deliver(delivery_id=delivery_id)


@shared_task(time_limit=300)
def webhooks_retry_due_task() -> int:
    ids = webhooks.webhook_deliveries_due()
    for delivery_id in ids:
        webhook_deliver_task.delay(delivery_id)
    return len(ids)
