"""Celery tasks of the notifications context: thin wrappers that take ids and call a service.

Every task is idempotent (messages have unique keys and are claimed by a conditional UPDATE; the
booking services claim rows with SKIP LOCKED), so a retry, a duplicate delivery by the broker or a
second beat on another worker changes nothing twice. The booking lifecycle jobs (expire holds,
release unconfirmed bookings, waiting-list sweep) are declared in apps.booking.tasks.
"""

from __future__ import annotations

from celery import shared_task

from . import lifecycle, services

PERIODIC_TASKS = [
    {
        "name": "notifications: patient notices from the outbox",
        "task": "apps.notifications.tasks.notifications_consume_task",
        "every_seconds": 15,
    },
    {
        "name": "notifications: reminders (catalogue offsets)",
        "task": "apps.notifications.tasks.reminders_send_task",
        "every_seconds": 600,
    },
    {
        "name": "notifications: retry failed and lost messages",
        "task": "apps.notifications.tasks.messages_retry_task",
        "every_seconds": 300,
    },
    {
        "name": "compliance: facility schedule horizons (daily)",
        "task": "apps.notifications.tasks.compliance_check_task",
        "crontab": {"minute": "15", "hour": "3"},
    },
]


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=3, time_limit=120)
def message_deliver_task(message_id: int) -> str:
    return services.message_deliver(message_id=message_id)


@shared_task(time_limit=300)
def messages_retry_task() -> int:
    services.messages_expire()
    ids = services.messages_retry()
    for message_id in ids:
        message_deliver_task.delay(message_id)
    return len(ids)


@shared_task(time_limit=300)
def notifications_consume_task() -> int:
    handled = total = lifecycle.notifications_consume()
    while handled:  # catch up after an outage, one committed batch at a time
        handled = lifecycle.notifications_consume()
        total += handled
    return total


@shared_task(time_limit=600)
def reminders_send_task() -> int:
    return lifecycle.reminders_send()


@shared_task(time_limit=1800)
def compliance_check_task() -> int:
    return lifecycle.compliance_check()
