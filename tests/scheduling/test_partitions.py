"""Month partitions of the slot table (apps/scheduling/partitions.py) on real PostgreSQL: the overlap
rule across a month boundary, the table as the ORM sees it, and the maintenance job."""

from __future__ import annotations

import datetime as dt
import threading
import time
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import ProtectedError

from apps.booking.models import Appointment
from apps.scheduling import partitions
from apps.scheduling.models import Slot
from tests.core.partitions import models_at
from tests.factories import AppointmentFactory, PatientFactory, ScheduleFactory, ServiceFactory, SlotFactory

WARSAW = ZoneInfo("Europe/Warsaw")
# A month boundary far from today's partitions: both months made by the test itself.
JANUARY, FEBRUARY = dt.date(2031, 1, 1), dt.date(2031, 2, 1)
BOUNDARY = dt.datetime(2031, 2, 1, tzinfo=WARSAW)  # midnight of 1 February in Warsaw
MIN = dt.timedelta(minutes=1)
KEEP = 146  # months before May 2032: March 2020


def _slot(schedule, start: dt.datetime, end: dt.datetime, **fields) -> Slot:
    return SlotFactory(schedule=schedule, start=start, end=end, **fields)


def _refused(schedule, start, end, **fields) -> IntegrityError:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        _slot(schedule, start, end, **fields)
    return caught.value


def _partition_of(slot: Slot) -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text FROM scheduling_slot WHERE id = %s", [slot.pk])
        return cur.fetchone()[0]


@pytest.fixture
def boundary_months(db):
    partitions.partitions_ensure(JANUARY, FEBRUARY)  # rolled back with the test
    return ScheduleFactory()


def test_a_slot_crossing_midnight_at_a_months_end_overlaps_the_next_months_first_slot(boundary_months):
    """Both orders: the crossing slot first, or the one at midnight first; each in its own partition,
    where no exclusion constraint sees the other. The error is the constraint's own (23P01)."""
    schedule = boundary_months
    night = (BOUNDARY - 20 * MIN, BOUNDARY + 20 * MIN)  # 23:40 on 31 January to 00:20 on 1 February
    first = (BOUNDARY, BOUNDARY + 20 * MIN)
    crossing = _slot(schedule, *night)
    error = _refused(schedule, *first)
    assert error.__cause__.sqlstate == "23P01" and "slot_no_overlap" in str(error)
    assert _partition_of(crossing) == partitions.partition_name(JANUARY)

    other = ScheduleFactory()
    at_midnight = _slot(other, *first)
    _refused(other, *night)
    assert _partition_of(at_midnight) == partitions.partition_name(FEBRUARY)
    # Within one partition the exclusion constraint refuses as before.
    _refused(other, BOUNDARY + 10 * MIN, BOUNDARY + 30 * MIN)


def test_slots_touching_at_the_boundary_and_cancelled_ones_do_not_conflict(boundary_months):
    schedule = boundary_months
    _slot(schedule, BOUNDARY - 20 * MIN, BOUNDARY)  # ends at midnight
    _slot(schedule, BOUNDARY, BOUNDARY + 20 * MIN)  # starts at midnight
    cancelled = _slot(schedule, BOUNDARY - 30 * MIN, BOUNDARY + 30 * MIN, status="cancelled")
    assert Slot.objects.filter(schedule=schedule).count() == 3
    # Bringing the cancelled one back to life is an overlap (the UPDATE trigger).
    with pytest.raises(IntegrityError), transaction.atomic():
        Slot.objects.filter(pk=cancelled.pk).update(status="free")
    # Moving a live slot onto the other side of the boundary is checked too.
    late = _slot(schedule, BOUNDARY + 60 * MIN, BOUNDARY + 80 * MIN)
    with pytest.raises(IntegrityError), transaction.atomic():
        Slot.objects.filter(pk=late.pk).update(start=BOUNDARY - 10 * MIN, end=BOUNDARY + 10 * MIN)


def test_a_slot_longer_than_a_day_is_refused_by_the_database(boundary_months):
    """The bound the cross-month check relies on (and the catalogue's max_slot_minutes)."""
    schedule = boundary_months
    _slot(schedule, BOUNDARY - 12 * 60 * MIN, BOUNDARY + 12 * 60 * MIN)
    error = _refused(ScheduleFactory(), BOUNDARY, BOUNDARY + 24 * 60 * MIN + MIN)
    assert "slot_max_length" in str(error)


def test_the_orm_sees_the_partitions_as_one_table(boundary_months):
    """What the hand-written DDL built, read back through the plain ORM: every row in its month's
    partition and counted once, updates and deletes through the parent, and a booked slot still
    protected (PROTECT in Django, the composite foreign key in PostgreSQL)."""
    schedule = boundary_months
    made = [
        _slot(schedule, BOUNDARY - dt.timedelta(days=3), BOUNDARY - dt.timedelta(days=3) + 20 * MIN),
        _slot(schedule, BOUNDARY + dt.timedelta(days=3), BOUNDARY + dt.timedelta(days=3) + 20 * MIN),
        _slot(
            schedule, dt.datetime(9999, 6, 1, tzinfo=dt.UTC), dt.datetime(9999, 6, 1, 0, 20, tzinfo=dt.UTC)
        ),
        _slot(schedule, dt.datetime(1, 6, 1, tzinfo=dt.UTC), dt.datetime(1, 6, 1, 0, 20, tzinfo=dt.UTC)),
    ]
    assert [_partition_of(s) for s in made] == [
        partitions.partition_name(JANUARY),
        partitions.partition_name(FEBRUARY),
        partitions.DEFAULT_PARTITION,
        partitions.DEFAULT_PARTITION,
    ]
    with connection.cursor() as cur:
        counts = []
        for name in partitions.partition_names():
            cur.execute(f"SELECT count(*) FROM {name}")
            counts.append(cur.fetchone()[0])
    assert sum(counts) == Slot.objects.count()
    assert sorted(Slot.objects.filter(schedule=schedule).values_list("pk", flat=True)) == sorted(
        s.pk for s in made
    )
    assert Slot.objects.filter(schedule=schedule, start__lt=BOUNDARY).update(status="blocked") == 2
    assert Slot.objects.get(pk=made[0].pk).status == "blocked"
    assert Slot.objects.filter(pk=made[3].pk).delete()[0] == 1

    booked = AppointmentFactory(slot=SlotFactory(status="booked"))
    with pytest.raises(ProtectedError):
        booked.slot.delete()
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("DELETE FROM scheduling_slot WHERE id = %s", [booked.slot_id])
    # The appointment's start is its slot's: another start is no slot at all.
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        Appointment.objects.filter(pk=booked.pk).update(start=booked.start + MIN)
    assert Appointment.objects.get(pk=booked.pk).slot == booked.slot


# --- real concurrency and the maintenance job: committed data, separate connections ------------------


@pytest.fixture
def own_partitions(transactional_db):
    """Partitions a test makes are detached and dropped afterwards (the flush empties them)."""
    before = set(partitions.partition_names())
    yield
    with connection.cursor() as cur:
        cur.execute("TRUNCATE booking_appointment, scheduling_slot CASCADE")
        for name in set(partitions.partition_names()) - before:
            cur.execute(f"ALTER TABLE scheduling_slot DETACH PARTITION {name}")
            cur.execute(f"DROP TABLE {name}")
        cur.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE 'scheduling_slot_p20%%' AND relkind = 'r'"
        )
        for (name,) in cur.fetchall():
            if name not in before:
                cur.execute(f"DROP TABLE {name}")  # detached by the test


def _in_thread(work, results: list, barrier: threading.Barrier) -> threading.Thread:
    def run():
        barrier.wait()
        try:
            results.append(work())
        except Exception as exc:  # inspected by the test
            results.append(exc)
        finally:
            connection.close()

    return threading.Thread(target=run)


def test_both_sides_of_a_boundary_published_at_once_exactly_one_succeeds(own_partitions):
    """GIVEN a slot crossing midnight at January's end and one at midnight on 1 February, of one
    schedule, in two transactions at once WHEN both insert (the first holds its transaction open a
    moment) THEN the second waits on the schedule's lock and is refused once the first commits."""
    partitions.partitions_ensure(JANUARY, FEBRUARY)
    schedule = ScheduleFactory()
    results: list = []
    barrier = threading.Barrier(2)

    def write(start, end, hold):
        with transaction.atomic():
            slot = _slot(schedule, start, end)
            time.sleep(hold)
        return slot

    threads = [
        _in_thread(lambda: write(BOUNDARY - 20 * MIN, BOUNDARY + 20 * MIN, 0.5), results, barrier),
        _in_thread(lambda: write(BOUNDARY, BOUNDARY + 20 * MIN, 0.5), results, barrier),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    close_old_connections()
    made = [r for r in results if isinstance(r, Slot)]
    refused = [r for r in results if isinstance(r, IntegrityError)]
    assert len(made) == 1 and len(refused) == 1, results
    assert refused[0].__cause__.sqlstate == "23P01"
    assert list(Slot.objects.filter(schedule=schedule).values_list("pk", flat=True)) == [made[0].pk]


def test_maintenance_creates_ahead_moves_rows_out_of_default_detaches_old_and_runs_twice_at_once(
    own_partitions,
):
    """GIVEN slots in DEFAULT for months that have no partition yet (one booked) and two old months
    WHEN the job runs twice at once THEN the months ahead exist once each with their overlap rule,
    DEFAULT's rows moved into them (the appointment's foreign key still valid), the old unbooked
    month detached and the old booked one kept; a third run changes nothing."""
    now = dt.datetime(2032, 5, 10, 12, tzinfo=WARSAW)
    schedule = ScheduleFactory()
    partitions.partitions_ensure(dt.date(2020, 1, 1), dt.date(2020, 2, 1))  # "old" months
    old_booked = AppointmentFactory(
        slot=SlotFactory(
            schedule=schedule,
            status="booked",
            start=dt.datetime(2020, 2, 5, 9, tzinfo=WARSAW),
            end=dt.datetime(2020, 2, 5, 9, 20, tzinfo=WARSAW),
        )
    )
    waiting = [
        SlotFactory(
            schedule=schedule,
            start=dt.datetime(2032, month, 2, 9, tzinfo=WARSAW),
            end=dt.datetime(2032, month, 2, 9, 20, tzinfo=WARSAW),
            status="booked" if month == 6 else "free",
        )
        for month in (5, 6, 7)
    ]
    booked = AppointmentFactory(slot=waiting[1])
    assert {_partition_of(s) for s in waiting} == {partitions.DEFAULT_PARTITION}

    results: list = []
    barrier = threading.Barrier(2)

    def run():
        # Keep 146 months: from March 2020 on (the test database's own partitions stay).
        return partitions.partitions_maintain(now=now, ahead=2, keep=KEEP)

    threads = [_in_thread(run, results, barrier) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    close_old_connections()
    assert all(isinstance(r, partitions.MaintenanceReport) for r in results), results
    made = ["scheduling_slot_p2032_05", "scheduling_slot_p2032_06", "scheduling_slot_p2032_07"]
    assert sorted(results[0].created + results[1].created) == made
    assert sorted(results[0].detached + results[1].detached) == ["scheduling_slot_p2020_01"]
    assert "scheduling_slot_p2020_02" in {*results[0].kept, *results[1].kept}  # booked: refused
    names = partitions.partition_names()
    assert set(made) <= set(names) and "scheduling_slot_p2020_01" not in names
    assert [_partition_of(s) for s in waiting] == made
    assert not partitions.partitions_missing_overlap_rule()
    with connection.cursor() as cur:
        cur.execute("SELECT convalidated FROM pg_constraint WHERE conname = %s", [partitions.APPOINTMENT_FK])
        assert cur.fetchone() == (True,)
    assert Appointment.objects.get(pk=booked.pk).slot_id == waiting[1].pk
    assert Appointment.objects.get(pk=old_booked.pk).slot.start.year == 2020

    again = partitions.partitions_maintain(now=now, ahead=2, keep=KEEP)
    assert again.created == [] and again.detached == [] and list(again.kept) == ["scheduling_slot_p2020_02"]


def test_overlap_rules_are_built_per_partition_in_parallel_sessions(own_partitions):
    """The generator's path: partitions loaded without their overlap rule get it from separate
    sessions, and it holds afterwards."""
    partitions.partitions_ensure(JANUARY, FEBRUARY, overlap_rule=False)
    schedule = ScheduleFactory()
    _slot(schedule, BOUNDARY - dt.timedelta(days=2), BOUNDARY - dt.timedelta(days=2) + 20 * MIN)
    _slot(schedule, BOUNDARY + dt.timedelta(days=2), BOUNDARY + dt.timedelta(days=2) + 20 * MIN)
    missing = [partitions.partition_name(JANUARY), partitions.partition_name(FEBRUARY)]
    assert set(missing) <= set(partitions.partitions_missing_overlap_rule())
    partitions.overlap_rules_build(missing, workers=2)
    assert not set(missing) & set(partitions.partitions_missing_overlap_rule())
    with pytest.raises(IntegrityError):
        _slot(
            schedule, BOUNDARY + dt.timedelta(days=2, minutes=10), BOUNDARY + dt.timedelta(days=2, minutes=30)
        )


# --- the migration, on populated data --------------------------------------------------------------

BEFORE = [("scheduling", "0003_int8_slot_span"), ("booking", "0004_freed_slot_queue")]


def _appointment_before(slot: Slot):
    old = models_at(BEFORE)
    registration = old.get_model("booking", "Registration").objects.create(
        patient_id=PatientFactory().pk, service_id=slot.service_id, status="booked", joined_at=slot.start
    )
    return old.get_model("booking", "Appointment").objects.create(
        registration=registration,
        patient_id=registration.patient_id,
        service_id=slot.service_id,
        facility_id=slot.facility_id,
        slot_id=slot.pk,
        start=slot.start,
        channel="web",
    )


def _migrate(targets) -> None:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def test_the_migration_partitions_a_populated_table_keeping_rows_ids_sequence_keys_and_the_overlap_rule(
    own_partitions,
):
    """GIVEN the schema before scheduling 0004 (one table, Django's slot foreign key) holding slots in
    two months, one crossing midnight at the first month's end, one in year 9999, and appointments
    WHEN migrated forward THEN every row is in its month's partition (or DEFAULT) with its id, the
    sequence continues, the appointments' composite key holds, and the overlap rule still refuses
    overlaps within a month and across the boundary."""
    try:
        _migrate(BEFORE)
        assert not partitions.is_partitioned()
        schedule = ScheduleFactory()
        slots = [
            SlotFactory(
                schedule=schedule,
                start=BOUNDARY - dt.timedelta(days=5),
                end=BOUNDARY - dt.timedelta(days=5) + 20 * MIN,
            ),
            SlotFactory(
                schedule=schedule, start=BOUNDARY - 20 * MIN, end=BOUNDARY + 20 * MIN, status="booked"
            ),
            SlotFactory(
                schedule=schedule,
                start=BOUNDARY + dt.timedelta(days=5),
                end=BOUNDARY + dt.timedelta(days=5) + 20 * MIN,
                status="booked",
            ),
            SlotFactory(
                schedule=schedule,
                start=dt.datetime(9999, 1, 4, 9, tzinfo=dt.UTC),
                end=dt.datetime(9999, 1, 4, 9, 20, tzinfo=dt.UTC),
            ),
        ]
        # Booking migrations after 0004 changed the registration: the rows are written as it was then.
        appointments = [_appointment_before(slots[1]), _appointment_before(slots[2])]
        rows = list(Slot.objects.order_by("pk").values_list("pk", "schedule_id", "start", "end", "status"))
        with connection.cursor() as cur:
            cur.execute("SELECT last_value FROM scheduling_slot_id_seq")
            last_value = cur.fetchone()[0]

        _migrate(None)

        assert partitions.is_partitioned()
        assert (
            list(Slot.objects.order_by("pk").values_list("pk", "schedule_id", "start", "end", "status"))
            == rows
        )
        assert [_partition_of(s) for s in slots] == [
            partitions.partition_name(JANUARY),
            partitions.partition_name(JANUARY),
            partitions.partition_name(FEBRUARY),
            partitions.DEFAULT_PARTITION,
        ]
        assert not partitions.partitions_missing_overlap_rule()
        assert SlotFactory(schedule=schedule).pk == last_value + 1  # the sequence went on
        assert [a.slot_id for a in Appointment.objects.order_by("pk")] == [a.slot_id for a in appointments]
        with connection.cursor() as cur:
            cur.execute(
                "SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE conname = %s",
                [partitions.APPOINTMENT_FK],
            )
            definition, validated = cur.fetchone()
            assert (
                "FOREIGN KEY (slot_id, start) REFERENCES scheduling_slot(id, start)" in definition
                and validated
            )
            cur.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'scheduling_slot_pkey'"
            )
            assert cur.fetchone()[0] == "PRIMARY KEY (id, start)"
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cur:
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cur.execute("DELETE FROM scheduling_slot WHERE id = %s", [slots[1].pk])
        _refused(schedule, BOUNDARY, BOUNDARY + 20 * MIN)  # across the boundary
        _refused(schedule, slots[0].start + 10 * MIN, slots[0].end + 10 * MIN)  # within January
    finally:
        _migrate(None)


def test_partitions_are_made_the_setting_ahead_whatever_the_catalogues_publish_horizon(db, settings):
    """Every attached partition costs each booking statement a lock per index (a slot named by id
    cannot be pruned: docs/scaling.md), so the months made ahead are the setting's, not the 27 months
    of a 730-day publish horizon; a slot published further waits in DEFAULT until its month is made."""
    ServiceFactory(publish_horizon_days=730)
    settings.CER_SLOT_PARTITIONS_AHEAD = 2
    now = dt.datetime(2034, 3, 10, 12, tzinfo=WARSAW)
    schedule = ScheduleFactory()
    far = _slot(
        schedule, dt.datetime(2034, 9, 1, 9, tzinfo=WARSAW), dt.datetime(2034, 9, 1, 9, 20, tzinfo=WARSAW)
    )

    report = partitions.partitions_maintain(now=now, keep=0)

    assert report.created == [partitions.partition_name(dt.date(2034, m, 1)) for m in (3, 4, 5)]
    assert _partition_of(far) == partitions.DEFAULT_PARTITION
    later = partitions.partitions_maintain(now=dt.datetime(2034, 7, 2, tzinfo=WARSAW), keep=0)
    assert partitions.partition_name(dt.date(2034, 9, 1)) in later.created
    assert _partition_of(far) == partitions.partition_name(dt.date(2034, 9, 1))
