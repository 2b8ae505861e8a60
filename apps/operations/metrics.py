"""Prometheus metrics (prometheus-client). The series are listed in docs/operations.md.

Counters and histograms are counted where things happen, at seams outside the booking core: the
outbox event write (bookings, releases, no-shows and every other domain event, counted when its
transaction commits), the problem+json exception handler (refusals by code), the HTTP middleware
(requests per route) and the Celery task signals (tasks, holds expired, webhook deliveries,
notifications). Gauges that describe the state of the system (outbox lag, waiting-list size, retry
backlogs, reconciliation progress, queue depth, pool and Redis health) are read from PostgreSQL and
Redis when Prometheus scrapes (`collectors.py`), so every web process reports the same truth.

Multi-process: under gunicorn and Celery set PROMETHEUS_MULTIPROC_DIR to a directory shared by the
processes of one machine (emptied at deploy); prometheus-client then keeps the values in files
there and `/metrics` adds up every process, workers included.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "cer_http_requests_total", "HTTP requests by route, method and status", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "cer_http_request_duration_seconds",
    "HTTP request latency by route",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_EVENTS = Counter("cer_outbox_events_total", "Domain events committed to the outbox", ["type"])
BOOKINGS = Counter(
    "cer_bookings_total",
    "Appointment transitions committed, by channel and outcome (booked, allocated, released, ...)",
    ["channel", "outcome"],
)
REFUSALS = Counter("cer_refusals_total", "Requests refused with a problem code", ["code", "status"])
HOLDS_EXPIRED = Counter("cer_holds_expired_total", "Slot holds that expired and went back to the pool")
WEBHOOK_DELIVERIES = Counter(
    "cer_webhook_deliveries_total", "Webhook delivery attempts by result", ["result"]
)
NOTIFICATIONS = Counter(
    "cer_notifications_total", "Notification deliveries by channel and resulting state", ["channel", "state"]
)
CELERY_TASKS = Counter(
    "cer_celery_tasks_total", "Celery tasks finished, by task and state", ["task", "state"]
)
CELERY_TASK_DURATION = Histogram(
    "cer_celery_task_duration_seconds",
    "Celery task run time",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600),
)
RECONCILIATION_RUNS = Counter(
    "cer_reconciliation_run_tasks_total", "Reconciliation run task executions by result", ["result"]
)

WAITLIST_ALLOCATION_DELAY = Histogram(
    "cer_waitlist_allocation_delay_seconds",
    "Time from a slot becoming free (released, cancelled, a hold expired, published) to its allocation"
    " from the waiting list",
    buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400),
)
NOTIFICATIONS_EXPIRED = Counter(
    "cer_notifications_expired_total",
    "Notifications dropped unsent: their time-to-live passed, or every attempt failed",
    ["channel", "reason"],
)
PORTAL_REFUSALS = Counter(
    "cer_portal_refusals_total", "Refusals shown to patients on the patient pages, by problem code", ["code"]
)

UNMATCHED_ROUTE = "<unmatched>"


def _route(request: HttpRequest) -> str:
    """The URL pattern, not the path: ids in paths would make a series per booking."""
    match = getattr(request, "resolver_match", None)
    return str(match.route) if match is not None and match.route else UNMATCHED_ROUTE


def http_request_observed(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    route, method = _route(request), request.method or ""
    if method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        method = "other"
    HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
    HTTP_LATENCY.labels(route, method).observe(seconds)


def refusal_observed(code: str, status: int) -> None:
    REFUSALS.labels(code, str(status)).inc()


def waitlist_allocation_observed(*, free_since: Any, now: Any) -> None:
    """A slot free since `free_since` was allocated from the waiting list at `now` (counted on commit)."""
    seconds = max(0.0, (now - free_since).total_seconds())
    transaction.on_commit(lambda: WAITLIST_ALLOCATION_DELAY.observe(seconds), robust=True)


def notifications_expired_observed(*, channel: str, reason: str, count: int = 1) -> None:
    """`count` messages of `channel` dropped unsent (`time_to_live` or `attempts`), counted on commit."""
    if count:
        transaction.on_commit(lambda: NOTIFICATIONS_EXPIRED.labels(channel, reason).inc(count), robust=True)


def portal_refused(error: Any) -> None:
    """A refusal (a DomainError) shown to a patient on the patient pages."""
    PORTAL_REFUSALS.labels(str(getattr(error, "code", "unknown"))).inc()


def _event_committed(type: str, channel: str | None) -> None:
    OUTBOX_EVENTS.labels(type).inc()
    if type.startswith("appointment.") and channel:
        BOOKINGS.labels(channel, type.removeprefix("appointment.")).inc()


def outbox_event_made(type: str, payload: dict[str, Any]) -> None:
    """Count a domain event once its transaction commits (a savepoint rolled back, as a booking that
    lost its race, discards it with the rest)."""
    channel = payload.get("channel")
    transaction.on_commit(
        lambda: _event_committed(type, channel if isinstance(channel, str) else None), robust=True
    )


def _authorised(request: HttpRequest) -> bool:
    token = settings.CER_METRICS_TOKEN
    if not token:
        return False
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def registry_output() -> bytes:
    from .collectors import database_registry

    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(database_registry())


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus scrape endpoint. Never public: without CER_METRICS_TOKEN it does not exist, and a
    scrape without that bearer token is answered as if it did not (404)."""
    if not _authorised(request):
        raise Http404
    return HttpResponse(registry_output(), content_type=CONTENT_TYPE_LATEST)
