"""Periodic upkeep of the database itself, registered in the project's periodic-task registry."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from apps.core import partitions

PERIODIC_TASKS = [
    {
        # Month partitions of every table registered in apps.core.partitions made ahead and old ones
        # detached (docs/scaling.md). Daily, so a missed run or a
        # lock timeout is caught up long before the next month starts.
        "name": "core: month partitions",
        "task": "apps.core.tasks.month_partitions_maintain_task",
        "crontab": {"minute": "17", "hour": "3"},
    },
]


@shared_task(time_limit=1800, soft_time_limit=1700)
def month_partitions_maintain_task() -> dict[str, dict[str, object]]:
    reports = partitions.all_partitions_maintain(now=timezone.now())
    return {
        table: {"created": report.created, "detached": report.detached, "kept": report.kept}
        for table, report in reports.items()
    }
