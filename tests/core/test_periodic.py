"""The periodic-task registry (apps/core/periodic.py) as beat's tables see it."""

from __future__ import annotations

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core.periodic import declared_tasks, periodic_tasks_register

pytestmark = pytest.mark.django_db


def test_every_declared_task_is_written_and_a_task_no_longer_declared_is_removed():
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    # What an earlier release registered under a name it has since given up.
    PeriodicTask.objects.create(
        name="scheduling: slot partitions",
        task="apps.scheduling.tasks.slot_partitions_maintain_task",
        interval=every_minute,
    )
    # Someone else's entry (Celery's own, or added by an operator) is not ours to remove.
    PeriodicTask.objects.create(name="celery cleanup", task="celery.backend_cleanup", interval=every_minute)

    names = periodic_tasks_register()

    assert sorted(names) == sorted(spec["name"] for spec in declared_tasks())
    assert "core: month partitions" in names
    written = dict(PeriodicTask.objects.values_list("name", "task"))
    assert written["core: month partitions"] == "apps.core.tasks.month_partitions_maintain_task"
    assert "scheduling: slot partitions" not in written
    assert written["celery cleanup"] == "celery.backend_cleanup"
    assert periodic_tasks_register() == names  # idempotent
    assert PeriodicTask.objects.count() == len(names) + 1
