"""The queue statistics job, registered in the project's periodic-task registry (apps.core.periodic)."""

from __future__ import annotations

from celery import shared_task

from .services import queue_stats_compute

PERIODIC_TASKS = [
    {
        # The statistics the open `queues` resource publishes: first free date, number waiting,
        # average wait. A quarter of an hour keeps the first free date close to the schedule.
        "name": "open data: queue statistics",
        "task": "apps.opendata.tasks.queue_stats_compute_task",
        "crontab": {"minute": "*/15"},
    },
]


@shared_task(soft_time_limit=900, time_limit=960)
def queue_stats_compute_task() -> int:
    return queue_stats_compute()
