import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
import time_machine

from apps.catalog.models import Holiday
from apps.core.errors import DomainError
from apps.outbox.models import OutboxEvent
from apps.scheduling import services
from apps.scheduling.models import ScheduleException, Slot
from tests.factories import ContractFactory, ScheduleFactory

WARSAW = ZoneInfo("Europe/Warsaw")
SPRING = dt.date(2027, 3, 28)  # last Sunday of March 2027: 02:00 -> 03:00
AUTUMN = dt.date(2026, 10, 25)  # last Sunday of October 2026: 03:00 -> 02:00


@pytest.fixture
def schedule(db, cardiology, facility_a):
    ContractFactory(facility=facility_a, service=cardiology)
    return ScheduleFactory(facility=facility_a, service=cardiology)


def template(weekday, start, end, minutes=20, valid_from=dt.date(2026, 1, 1)):
    return {
        "weekday": weekday,
        "start_time": start,
        "end_time": end,
        "slot_minutes": minutes,
        "valid_from": valid_from,
    }


def local_times(schedule, day):
    slots = Slot.objects.filter(schedule=schedule).order_by("start")
    return [s.start.astimezone(WARSAW) for s in slots if s.start.astimezone(WARSAW).date() == day]


@pytest.mark.parametrize(("day", "utc_hour"), [(SPRING, 6), (AUTUMN, 7)])
def test_a_daytime_session_on_a_dst_sunday_keeps_its_wall_clock_times(schedule, day, utc_hour):
    services.template_set(schedule=schedule, templates=[template(6, dt.time(8), dt.time(10))])
    with time_machine.travel(dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC)):
        services.schedule_generate_slots(schedule=schedule, until=day + dt.timedelta(days=1))
    times = local_times(schedule, day)
    assert [t.strftime("%H:%M") for t in times] == ["08:00", "08:20", "08:40", "09:00", "09:20", "09:40"]
    assert times[0].astimezone(dt.UTC).hour == utc_hour  # CEST = UTC+2 after spring, CET = UTC+1 after autumn
    # and the Sunday before uses the other offset, so nothing was shifted by copying instants
    week_before = local_times(schedule, day - dt.timedelta(days=7))
    assert week_before[0].strftime("%H:%M") == "08:00"


@pytest.mark.parametrize(("day", "expected_count"), [(SPRING, 6), (AUTUMN, 12)])
def test_a_night_session_across_the_switch_has_only_real_20_minute_slots(schedule, day, expected_count):
    """01:00-04:00 lasts 2 real hours in spring and 4 in autumn: no slot lost, doubled or overlapping."""
    services.template_set(schedule=schedule, templates=[template(6, dt.time(1), dt.time(4))])
    with time_machine.travel(dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC)):
        services.schedule_generate_slots(schedule=schedule, until=day)
    slots = list(
        Slot.objects.filter(schedule=schedule, start__date__gte=day - dt.timedelta(days=1)).order_by("start")
    )
    slots = [s for s in slots if s.start.astimezone(WARSAW).date() == day]
    assert len(slots) == expected_count
    for a, b in itertools.pairwise(slots):
        assert b.start == a.end  # contiguous, none overlapping
        assert b.end - b.start == dt.timedelta(minutes=20)
    starts = [s.start for s in slots]
    assert len(set(starts)) == len(starts)


def test_generation_is_idempotent_and_skips_holidays_and_closures(schedule):
    services.template_set(
        schedule=schedule,
        templates=[template(d, dt.time(9), dt.time(10)) for d in range(5)],  # Mon-Fri, 3 slots each
    )
    Holiday.objects.create(date=dt.date(2026, 12, 24), name_pl="Wigilia", name_en="Christmas Eve")
    Holiday.objects.create(date=dt.date(2026, 12, 25), name_pl="Boże Narodzenie", name_en="Christmas Day")
    ScheduleException.objects.create(schedule=schedule, date=dt.date(2026, 12, 23), reason="urlop")
    with time_machine.travel(dt.datetime(2026, 12, 20, 12, tzinfo=dt.UTC)):
        created = services.schedule_generate_slots(schedule=schedule, until=dt.date(2026, 12, 27))
        assert services.schedule_generate_slots(schedule=schedule, until=dt.date(2026, 12, 27)) == 0
    # Mon 21, Tue 22 (Wed 23 closed, Thu 24 holiday, Fri 25 holiday)
    assert created == 6
    days = {s.start.astimezone(WARSAW).date() for s in Slot.objects.filter(schedule=schedule)}
    assert days == {dt.date(2026, 12, 21), dt.date(2026, 12, 22)}
    assert OutboxEvent.objects.filter(type="slots.published").count() == 1


def test_generation_at_a_month_boundary_skips_overlaps_and_runs_again(schedule):
    """The slot table is partitioned by month: a template slot at midnight on the 1st overlapping a
    published slot that crosses midnight from the month before is skipped (not a failed generation),
    and a second run leaves the 1st's slots alone."""
    from apps.scheduling import partitions

    partitions.partitions_ensure(dt.date(2027, 1, 1), dt.date(2027, 2, 1))
    services.template_set(schedule=schedule, templates=[template(0, dt.time(0), dt.time(1))])  # Mondays
    midnight = dt.datetime(2027, 2, 1, tzinfo=WARSAW)  # Monday 1 February 2027
    with time_machine.travel(dt.datetime(2027, 1, 20, tzinfo=dt.UTC)):
        services.slots_publish(
            schedule=schedule,
            slots=[(midnight - dt.timedelta(minutes=20), midnight + dt.timedelta(minutes=20), "first")],
        )
        created = services.schedule_generate_slots(schedule=schedule, until=dt.date(2027, 2, 1))
        assert services.schedule_generate_slots(schedule=schedule, until=dt.date(2027, 2, 1)) == 0
    on_the_1st = [t.strftime("%H:%M") for t in local_times(schedule, dt.date(2027, 2, 1))]
    assert on_the_1st == ["00:20", "00:40"]  # 00:00 overlaps the published slot
    assert created == 2 + 3  # and Monday 25 January's three


def test_publishing_explicit_slots_refuses_overlaps_and_the_past_and_skips_repeats(schedule):
    start = dt.datetime(2027, 1, 11, 8, tzinfo=dt.UTC)
    batch = [
        (start + dt.timedelta(minutes=15 * i), start + dt.timedelta(minutes=15 * (i + 1)), "first")
        for i in range(8)
    ]
    with time_machine.travel(dt.datetime(2026, 12, 1, tzinfo=dt.UTC)):
        assert services.slots_publish(schedule=schedule, slots=batch) == 8
        assert services.slots_publish(schedule=schedule, slots=batch) == 0  # a retried publication
        overlapping = [(start + dt.timedelta(minutes=5), start + dt.timedelta(minutes=25), "first")]
        with pytest.raises(DomainError) as exc:
            services.slots_publish(schedule=schedule, slots=overlapping)
        assert exc.value.code == "schedule_overlap"
        with pytest.raises(DomainError) as exc:
            services.slots_publish(schedule=schedule, slots=[(start - dt.timedelta(days=60), start, "first")])
        assert exc.value.code == "slot_in_past"
        with pytest.raises(DomainError) as exc:
            services.slots_publish(schedule=schedule, slots=[(start, start, "first")])
        assert exc.value.code == "validation_error"
    assert Slot.objects.filter(schedule=schedule).count() == 8


def test_the_database_refuses_overlapping_slots_even_without_the_service(schedule):
    from django.db import IntegrityError, transaction

    from tests.factories import ScheduleFactory, SlotFactory

    HOUR = dt.timedelta(hours=1)

    slot = SlotFactory(schedule=schedule)
    with pytest.raises(IntegrityError), transaction.atomic():
        SlotFactory(
            schedule=schedule,
            start=slot.start + dt.timedelta(minutes=10),
            end=slot.end + dt.timedelta(minutes=10),
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        SlotFactory(schedule=schedule, start=slot.start, end=slot.start - dt.timedelta(minutes=1))
    # One second of overlap is enough; touching slots (even off whole seconds) and another schedule's
    # are fine.
    with pytest.raises(IntegrityError), transaction.atomic():
        SlotFactory(schedule=schedule, start=slot.end - dt.timedelta(seconds=1), end=slot.end + HOUR)
    odd = slot.end + dt.timedelta(microseconds=500_000)
    SlotFactory(schedule=schedule, start=slot.end, end=odd)
    SlotFactory(schedule=schedule, start=odd, end=odd + HOUR)
    SlotFactory(schedule=ScheduleFactory(service=schedule.service), start=slot.start, end=slot.end)


def test_block_and_unblock(schedule):
    from tests.factories import SlotFactory

    slot = SlotFactory(schedule=schedule)
    assert services.slot_block(slot=slot, reason="awaria").status == "blocked"
    assert services.slot_unblock(slot=slot).status == "free"
    booked = SlotFactory(schedule=schedule, status="booked")
    with pytest.raises(DomainError):
        services.slot_block(slot=booked)
    assert list(OutboxEvent.objects.values_list("type", flat=True).order_by("id")) == [
        "slot.blocked",
        "slot.unblocked",
    ]


def test_a_schedule_needs_a_contract(db, cardiology, facility_b):
    with pytest.raises(DomainError) as exc:
        services.schedule_create(facility=facility_b, service=cardiology)
    assert exc.value.code == "facility_not_contracted"


def test_a_schedule_update_with_a_stale_version_changes_nothing(db, cardiology):
    from tests.factories import ScheduleFactory

    schedule = ScheduleFactory(service=cardiology, place="Gabinet 1")
    updated = services.schedule_update(
        schedule_id=schedule.pk, expected_version=schedule.version, changes={"place": "2"}
    )
    assert (updated.place, updated.version) == ("2", schedule.version + 1)
    with pytest.raises(DomainError) as refused:
        services.schedule_update(
            schedule_id=schedule.pk, expected_version=schedule.version, changes={"place": "3"}
        )
    assert (refused.value.code, refused.value.status) == ("precondition_failed", 412)
    schedule.refresh_from_db()
    assert schedule.place == "2"
