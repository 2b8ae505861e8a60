"""Periodic schedules, registered in one place (STYLE.md rule 7).

Each app may declare `PERIODIC_TASKS` in its `tasks.py`:

    PERIODIC_TASKS = [
        {"name": "expire holds", "task": "apps.booking.tasks.holds_expire_task", "every_seconds": 60},
        {"name": "daily reconciliation", "task": "...", "crontab": {"minute": "30", "hour": "2"}},
    ]

`manage.py setup_periodic_tasks` (run by `make run` and at every deploy) writes them into
django-celery-beat's tables, idempotently, and deletes the entries of this project's tasks that are no
longer declared (a renamed or removed task would otherwise be sent by beat forever, to no worker);
beat's DatabaseScheduler then runs them.
"""

from __future__ import annotations

import json
from importlib import import_module
from typing import Any

from django.apps import apps
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


def declared_tasks() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for config in apps.get_app_configs():
        if not config.name.startswith("apps."):
            continue
        try:
            module = import_module(f"{config.name}.tasks")
        except ModuleNotFoundError as exc:
            if exc.name == f"{config.name}.tasks":
                continue
            raise
        found.extend(getattr(module, "PERIODIC_TASKS", []))
    return found


def periodic_tasks_register() -> list[str]:
    names = []
    for spec in declared_tasks():
        defaults: dict[str, Any] = {"task": spec["task"], "enabled": True, "interval": None, "crontab": None}
        if "every_seconds" in spec:
            defaults["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=spec["every_seconds"], period=IntervalSchedule.SECONDS
            )
        else:
            defaults["crontab"], _ = CrontabSchedule.objects.get_or_create(
                timezone="Europe/Warsaw", **{"minute": "0", "hour": "*", **spec["crontab"]}
            )
        if "kwargs" in spec:
            defaults["kwargs"] = json.dumps(spec["kwargs"])
        PeriodicTask.objects.update_or_create(name=spec["name"], defaults=defaults)
        names.append(spec["name"])
    PeriodicTask.objects.filter(task__startswith="apps.").exclude(name__in=names).delete()
    return names
