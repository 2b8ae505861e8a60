"""The demo schedules (`make run`): a restart the same day does not build the 90 days' slots again."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.scheduling import demo
from apps.scheduling.models import Schedule, Slot
from tests.factories import ContractFactory, FacilityFactory


def _slot_inserts(queries: CaptureQueriesContext) -> int:
    return sum(q["sql"].startswith('INSERT INTO "scheduling_slot"') for q in queries.captured_queries)


@pytest.mark.django_db
def test_a_second_seed_the_same_day_adds_nothing_and_a_day_later_only_the_new_days():
    ContractFactory(facility=FacilityFactory(nfz_code="14/DEMO/KARDIO"))
    demo.demo_seed(out=io.StringIO())
    schedule = Schedule.objects.get()
    until = timezone.localdate() + dt.timedelta(days=demo.DAYS_AHEAD)
    assert schedule.generated_until == until
    slots = Slot.objects.count()
    assert slots > 0

    with CaptureQueriesContext(connection) as again:
        out = io.StringIO()
        demo.demo_seed(out=out)
    assert _slot_inserts(again) == 0
    assert out.getvalue().endswith("new slots: 0")
    assert Slot.objects.count() == slots

    # As if the last run was a week ago: the week at the end of the horizon is generated, nothing twice.
    Schedule.objects.update(generated_until=until - dt.timedelta(days=7))
    Slot.objects.filter(start__date__gt=until - dt.timedelta(days=7)).delete()
    missing = slots - Slot.objects.count()
    assert missing > 0  # two mornings a week: a week holds slots
    with CaptureQueriesContext(connection) as later:
        out = io.StringIO()
        demo.demo_seed(out=out)
    assert _slot_inserts(later) > 0
    assert out.getvalue().endswith(f"new slots: {missing}")
    assert Slot.objects.count() == slots
    assert Schedule.objects.get().generated_until == until
