"""Celery entry points of the booking core: take ids, call a service, exit quietly if the row is gone."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from apps.catalog.models import Service

from . import services

PERIODIC_TASKS = [
    {"name": "booking: expire holds", "task": "apps.booking.tasks.holds_expire_task", "every_seconds": 60},
    {
        "name": "booking: release unconfirmed bookings",
        "task": "apps.booking.tasks.release_unconfirmed_task",
        "every_seconds": 300,
    },
    {
        "name": "booking: no-show rule",
        "task": "apps.booking.tasks.no_show_mark_task",
        "every_seconds": 3600,
    },
    {
        # Safety net: a drain is asked for after every commit that frees slots; this one catches a
        # request lost with a broker outage and slots put back because another transaction held them.
        "name": "booking: offer freed slots to the waiting list",
        "task": "apps.booking.tasks.waitlist_drain_task",
        "every_seconds": 60,
    },
    {
        "name": "booking: waiting-list sweep",
        "task": "apps.booking.tasks.waitlist_sweep_all_task",
        "every_seconds": 900,
    },
]

RETRY = {"autoretry_for": (Exception,), "retry_backoff": True, "max_retries": 5}


@shared_task(**RETRY, time_limit=60)
def waitlist_allocate_slot_task(slot_id: int) -> int | None:
    """One slot (messages queued before the freed-slot queue existed; nothing sends it any more)."""
    appointment = services.waitlist_allocate_slot(slot_id=slot_id)
    return appointment.pk if appointment else None


DRAIN_PENDING_KEY = "waitlist-drain-pending"
DRAIN_PENDING_SECONDS = 120


def waitlist_drain_request() -> bool:
    """Queue a drain of the freed-slot queue unless one is already queued (Redis SET NX): a burst of
    cancellations costs one Celery message per drain, not one per slot. The task clears the mark when
    it starts, so slots freed during a drain get another one; the mark expires on its own if a worker
    dies first, and the periodic drain covers the rest."""
    if not cache.add(DRAIN_PENDING_KEY, 1, timeout=DRAIN_PENDING_SECONDS):
        return False
    waitlist_drain_task.delay()
    return True


@shared_task(**RETRY, time_limit=300)
def waitlist_drain_task() -> int:
    cache.delete(DRAIN_PENDING_KEY)
    drained = services.waitlist_drain()
    if drained >= services.waitlist.DRAIN_LIMIT:
        waitlist_drain_request()  # more may wait: another task, so one worker does not hold it all
    return drained


@shared_task(**RETRY, time_limit=60)
def waitlist_allocate_registration_task(registration_id: int) -> int | None:
    appointment = services.waitlist_allocate_registration(registration_id=registration_id)
    return appointment.pk if appointment else None


SWEEP_PENDING_SECONDS = 600


def _sweep_pending_key(service_id: int) -> str:
    return f"waitlist-sweep-pending:{service_id}"


def waitlist_sweep_request(service_id: int) -> bool:
    """Queue a sweep of the service's waiting list unless one is already queued (Redis SET NX).
    The task clears the mark when it starts, so slots published during a sweep get another one;
    the mark expires on its own if a worker dies first, and the periodic sweep covers the rest."""
    if not cache.add(_sweep_pending_key(service_id), 1, timeout=SWEEP_PENDING_SECONDS):
        return False
    waitlist_sweep_task.delay(service_id)
    return True


@shared_task(**RETRY, time_limit=600)
def waitlist_sweep_task(service_id: int) -> int:
    cache.delete(_sweep_pending_key(service_id))
    service = Service.objects.filter(pk=service_id).first()
    if service is None:
        return 0
    return services.waitlist_sweep(service=service)


@shared_task(time_limit=1800)
def waitlist_sweep_all_task() -> int:
    return sum(services.waitlist_sweep(service=service) for service in Service.objects.all())


@shared_task(time_limit=120)
def holds_expire_task() -> int:
    return services.holds_expire()


@shared_task(time_limit=600)
def release_unconfirmed_task() -> int:
    return services.appointments_release_unconfirmed()


@shared_task(time_limit=600)
def no_show_mark_task() -> int:
    return services.appointments_mark_no_show()
