"""Periodic upkeep of the national schedule, registered in the project's periodic-task registry."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from . import partitions

PERIODIC_TASKS = [
    {
        # Month partitions of the slot table made ahead and old ones detached (docs/scaling.md). Daily,
        # so a missed run or a lock timeout is caught up long before the next month starts.
        "name": "scheduling: slot partitions",
        "task": "apps.scheduling.tasks.slot_partitions_maintain_task",
        "crontab": {"minute": "17", "hour": "3"},
    },
]


@shared_task(time_limit=1800, soft_time_limit=1700)
def slot_partitions_maintain_task() -> dict[str, object]:
    report = partitions.partitions_maintain(now=timezone.now())
    return {"created": report.created, "detached": report.detached, "kept": report.kept}
