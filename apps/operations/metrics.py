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
