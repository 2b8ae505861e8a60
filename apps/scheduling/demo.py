"""Demo schedules: one per demo contract, two mornings a week, slots generated for 90 days, so every
covered service has free slots in every voivodeship (`make run`; a later run adds only the new days)."""

from __future__ import annotations

import datetime as dt
from typing import TextIO

from django.utils import timezone

from apps.catalog.models import Contract

from .models import Schedule
from .services import schedule_create, schedule_generate_slots, template_set

DAYS_AHEAD = 90


def demo_seed(*, out: TextIO) -> None:
    today = timezone.localdate()
    created = 0
    contracts = Contract.objects.filter(facility__nfz_code__contains="/DEMO/").select_related(
        "facility", "service"
    )
    for n, contract in enumerate(contracts.order_by("id")):
        schedule = Schedule.objects.filter(facility=contract.facility, service=contract.service).first()
        if schedule is None:
            schedule = schedule_create(
                facility=contract.facility,
                service=contract.service,
                place=f"Gabinet {n % 12 + 1}",
                external_id=f"demo-{contract.service.code}",
            )
            first_day, second_day = n % 5, (n + 2) % 5  # spread sessions across the working week
            template_set(
                schedule=schedule,
                templates=[
                    {"weekday": d, "start_time": dt.time(8), "end_time": dt.time(11), "valid_from": today}
                    for d in (first_day, second_day)
                ],
            )
        until = today + dt.timedelta(days=DAYS_AHEAD)
        # Generation is idempotent but builds every candidate slot of the 90 days in Python: a schedule
        # already generated this far (an earlier `make run` today) is skipped, so a restart is quick.
        if schedule.generated_until is None or schedule.generated_until < until:
            created += schedule_generate_slots(schedule=schedule, until=until)
    out.write(f"demo schedules: {contracts.count()}, new slots: {created}")
