"""Gauges read from PostgreSQL and Redis at scrape time (one scrape: a handful of indexed queries).

Each reading is guarded: a failing source is reported as down (`cer_database_up`, `cer_redis_up`)
and its gauges are left out, never a failed scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

BACKLOG_CAP = 100_000  # counts stop here: an alert needs "too many", not the exact figure
CELERY_QUEUES = ("celery",)


def _consumer_cursors() -> dict[str, tuple[int, int]]:
    from apps.integration.models import WebhookCursor
    from apps.notifications.models import ConsumerCursor

    cursors = {f"notifications:{c.name}": (c.txid, c.event_id) for c in ConsumerCursor.objects.all()}
    webhook = WebhookCursor.objects.filter(pk=1).first()
    cursors["webhooks"] = (webhook.txid, webhook.event_id) if webhook else (0, 0)
    return cursors


def _outbox(now: Any) -> Iterator[Metric]:
    from apps.outbox.models import OutboxEvent
    from apps.outbox.selectors import event_list_after

    lag = GaugeMetricFamily(
        "cer_outbox_lag_seconds",
        "Age of the oldest committed event a consumer has not taken",
        labels=["consumer"],
    )
    pending = GaugeMetricFamily(
        "cer_outbox_pending_events", "Committed events a consumer has not taken (capped)", labels=["consumer"]
    )
    for consumer, (txid, event_id) in sorted(_consumer_cursors().items()):
        oldest = event_list_after(after=(txid, event_id), limit=1)
        lag.add_metric([consumer], (now - oldest[0].created_at).total_seconds() if oldest else 0.0)
        after = OutboxEvent.objects.filter(Q(txid__gt=txid) | Q(txid=txid, id__gt=event_id))
        pending.add_metric([consumer], after.order_by()[:BACKLOG_CAP].count())
    yield lag
    yield pending


def _waiting_list(now: Any) -> Iterator[Metric]:
    from apps.booking.models import Registration

    size = GaugeMetricFamily("cer_waiting_list_size", "Patients waiting in Poczekalnia", labels=["service"])
    oldest = GaugeMetricFamily(
        "cer_waiting_list_oldest_seconds",
        "How long the first-registered waiting patient of a service has waited",
        labels=["service"],
    )
    rows = (
        Registration.objects.filter(status=Registration.Status.WAITING)
        .values("service__code")
        .annotate(n=Count("id"), first=Min("joined_at"))
        .order_by("service__code")
    )
    for row in rows:
        size.add_metric([row["service__code"]], row["n"])
        oldest.add_metric([row["service__code"]], (now - row["first"]).total_seconds())
    yield size
    yield oldest


def _webhooks(now: Any) -> Iterator[Metric]:
    from apps.integration.models import WebhookDelivery

    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
    backlog = GaugeMetricFamily(
        "cer_webhook_retry_backlog", "Webhook deliveries waiting for a (re)try (capped)", labels=["due"]
    )
    backlog.add_metric(["now"], pending.filter(next_attempt_at__lte=now).order_by()[:BACKLOG_CAP].count())
    backlog.add_metric(["later"], pending.filter(next_attempt_at__gt=now).order_by()[:BACKLOG_CAP].count())
    yield backlog


def _notifications(now: Any) -> Iterator[Metric]:
    from apps.notifications.models import Message

    backlog = GaugeMetricFamily(
        "cer_notifications_backlog",
        "Unsent notifications (pending or failed, to be retried) by channel",
        labels=["channel", "state"],
    )
    overdue = GaugeMetricFamily(
        "cer_notifications_oldest_unsent_seconds", "Age of the oldest unsent notification", labels=["channel"]
    )
    rows = (
        Message.objects.filter(state__in=[Message.State.PENDING, Message.State.FAILED])
        .values("channel", "state")
        .annotate(n=Count("id"), first=Min("created_at"))
        .order_by("channel", "state")
    )
    first_by_channel: dict[str, Any] = {}
    for row in rows:
        backlog.add_metric([row["channel"], row["state"]], row["n"])
        first = first_by_channel.get(row["channel"])
        first_by_channel[row["channel"]] = row["first"] if first is None else min(first, row["first"])
    for channel, first in sorted(first_by_channel.items()):
        overdue.add_metric([channel], (now - first).total_seconds())
    yield backlog
    yield overdue


def _reconciliation(now: Any) -> Iterator[Metric]:
    from apps.reconciliation.models import ReconciliationRun

    runs = GaugeMetricFamily("cer_reconciliation_runs", "Reconciliation runs by state", labels=["state"])
    for row in ReconciliationRun.objects.values("state").annotate(n=Count("id")).order_by("state"):
        runs.add_metric([row["state"]], row["n"])
    yield runs
    last = GaugeMetricFamily(
        "cer_reconciliation_last_success_timestamp_seconds",
        "When the last successful run of each scope finished (Unix time)",
        labels=["scope"],
    )
    duration = GaugeMetricFamily(
        "cer_reconciliation_last_duration_seconds", "Duration of the last successful run", labels=["scope"]
    )
    for scope in ReconciliationRun.Scope.values:
        run = (
            ReconciliationRun.objects.filter(scope=scope, state=ReconciliationRun.State.DONE)
            .exclude(finished_at=None)
            .order_by("-finished_at")
            .first()
        )
        if run is not None and run.finished_at is not None:
            last.add_metric([scope], run.finished_at.timestamp())
            if run.started_at is not None:
                duration.add_metric([scope], (run.finished_at - run.started_at).total_seconds())
    yield last
    yield duration
    progress = GaugeMetricFamily(
        "cer_reconciliation_progress_ratio", "Share of visits done in runs under way", labels=["run"]
    )
    for run in ReconciliationRun.objects.filter(state=ReconciliationRun.State.RUNNING).order_by("id")[:20]:
        progress.add_metric([str(run.pk)], run.visits_done / run.visits_total if run.visits_total else 0.0)
    yield progress


def _database() -> Iterator[Metric]:
    connections = GaugeMetricFamily(
        "cer_database_connections", "Sessions on this database by state (pg_stat_activity)", labels=["state"]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() GROUP BY 1 ORDER BY 1"
        )
        for state, n in cursor.fetchall():
            connections.add_metric([state], n)
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
    yield connections
    yield GaugeMetricFamily(
        "cer_database_max_connections", "max_connections of the server", value=max_connections
    )


def _redis() -> Iterator[Metric]:
    client = redis.Redis.from_url(settings.REDIS_URL or "", socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
        depth = GaugeMetricFamily(
            "cer_celery_queue_length", "Tasks waiting in a Celery queue", labels=["queue"]
        )
        for queue in CELERY_QUEUES:
            depth.add_metric([queue], int(client.llen(queue)))  # type: ignore[arg-type]
        clients = int(client.info("clients").get("connected_clients", 0))  # type: ignore[union-attr]
    finally:
        client.close()
    yield depth
    yield GaugeMetricFamily("cer_redis_connected_clients", "Clients connected to Redis", value=clients)


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        database_up = redis_up = 1.0
        try:
            for part in (_outbox, _waiting_list, _webhooks, _notifications, _reconciliation):
                yield from part(now)
            yield from _database()
        except Exception:  # a scrape reports an outage, it does not fail with it
            logger.exception("metrics: database gauges unavailable")
            database_up = 0.0
        try:
            yield from _redis()
        except (redis.RedisError, OSError):
            logger.warning("metrics: Redis unavailable")
            redis_up = 0.0
        yield GaugeMetricFamily(
            "cer_database_up", "PostgreSQL answered the scrape's queries", value=database_up
        )
        yield GaugeMetricFamily("cer_redis_up", "Redis answered a ping", value=redis_up)


def database_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return registry
