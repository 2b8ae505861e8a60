"""Celery signal handlers: the request id travels in a message header from the code that enqueued a
task to the worker that runs it, and every task is counted and timed (worker metrics, not only web).

Tasks whose return value says what happened feed the domain counters here, so the booking core and
the integration app need no metrics code of their own.
"""

from __future__ import annotations

import time
from contextvars import Token
from typing import Any

from celery import signals

from . import metrics
from .context import current_request_id, request_id_var

HEADER = "cer_request_id"
_running: dict[str, tuple[Token[str], float]] = {}


def _task_header(task: Any) -> str | None:
    request = getattr(task, "request", None)
    value = getattr(request, HEADER, None) or (getattr(request, "headers", None) or {}).get(HEADER)
    return value if isinstance(value, str) and value else None


def before_publish(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = current_request_id()
    if headers is not None and request_id:
        headers.setdefault(HEADER, request_id)


def task_started(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    # From the message header in a worker; the caller's own context when run eagerly; else the task's id.
    request_id = _task_header(task) or current_request_id() or f"task-{task_id}"
    _running[str(task_id)] = (request_id_var.set(request_id), time.perf_counter())


def _domain_counters(name: str, args: tuple[Any, ...], retval: Any) -> None:
    if name == "apps.booking.tasks.holds_expire_task" and isinstance(retval, int):
        metrics.HOLDS_EXPIRED.inc(retval)
    elif name == "apps.integration.tasks.webhook_deliver_task" and isinstance(retval, str):
        metrics.WEBHOOK_DELIVERIES.labels(retval).inc()
    elif name == "apps.notifications.tasks.message_deliver_task" and isinstance(retval, str) and args:
        from apps.notifications.models import Message

        channel = Message.objects.filter(pk=args[0]).values_list("channel", flat=True).first()
        metrics.NOTIFICATIONS.labels(channel or "unknown", retval).inc()
    elif name == "apps.reconciliation.tasks.run_execute_task":
        metrics.RECONCILIATION_RUNS.labels(str(retval)).inc()


def task_finished(
    task_id: str | None = None,
    task: Any = None,
    args: tuple[Any, ...] | None = None,
    retval: Any = None,
    state: str | None = None,
    **kwargs: Any,
) -> None:
    started = _running.pop(str(task_id), None)
    name = getattr(task, "name", "unknown")
    metrics.CELERY_TASKS.labels(name, state or "unknown").inc()
    if started is not None:
        token, began = started
        metrics.CELERY_TASK_DURATION.labels(name).observe(time.perf_counter() - began)
        request_id_var.reset(token)
    if state == "SUCCESS":
        _domain_counters(name, tuple(args or ()), retval)


def connect() -> None:
    signals.before_task_publish.connect(before_publish, weak=False, dispatch_uid="cer-request-id")
    signals.task_prerun.connect(task_started, weak=False, dispatch_uid="cer-task-started")
    signals.task_postrun.connect(task_finished, weak=False, dispatch_uid="cer-task-finished")
    from . import worker_metrics

    signals.worker_ready.connect(worker_metrics.worker_ready, weak=False, dispatch_uid="cer-worker-metrics")
    signals.worker_process_shutdown.connect(
        worker_metrics.worker_process_shutdown, weak=False, dispatch_uid="cer-worker-process-dead"
    )
