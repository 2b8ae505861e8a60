"""The national data generator at a tiny scale: counts, constraints, valid PESELs, reproducibility.

No timings here: the benchmarks themselves live in bench/ and run with `make bench`.
"""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from apps.booking.models import Appointment, Registration
from apps.catalog.models import Facility, Voivodeship
from apps.core import pesel
from apps.core.management.commands.generate_national_data import (
    BulkLoad,
    national_data_generate,
    plan_for,
    table_schema_objects,
)
from apps.patients.models import Patient
from apps.scheduling import partitions
from apps.scheduling.models import Schedule, Slot
from tests.factories import FacilityFactory, PatientFactory

SCALE = 0.0001  # the floors: 16 schedules and facilities, 2,000 patients
START = dt.date(2026, 11, 2)
DAYS = 14  # two weeks of future slots keep the test fast; the month before START is always generated

FINGERPRINT_SQL = """
SELECT
  (SELECT md5(string_agg(pesel || first_name || last_name || birth_date || sex || phone || language,
                         ',' ORDER BY pesel)) FROM patients_patient),
  (SELECT md5(string_agg(f.nfz_code || f.name || f.voivodeship_id || round(f.lat::numeric, 6),
                         ',' ORDER BY f.nfz_code)) FROM catalog_facility f),
  (SELECT md5(string_agg(f.nfz_code || sc.external_id || s.start || s.kind || s.status,
                         ',' ORDER BY sc.external_id, s.start))
     FROM scheduling_slot s JOIN scheduling_schedule sc ON sc.id = s.schedule_id
     JOIN catalog_facility f ON f.id = s.facility_id),
  (SELECT md5(string_agg(p.pesel || a.start || a.status || a.channel, ',' ORDER BY p.pesel, a.start))
     FROM booking_appointment a JOIN patients_patient p ON p.id = a.patient_id),
  (SELECT md5(string_agg(p.pesel || r.service_id || r.status || coalesce(r.voivodeship_id, '-') || r.urgent
                         || r.priority, ',' ORDER BY p.pesel, r.service_id, r.status))
     FROM booking_registration r JOIN patients_patient p ON p.id = r.patient_id),
  (SELECT md5(string_agg(f.nfz_code || v.facility_visit_id || v.patient_pesel || v.visit_at || v.emergency,
                         ',' ORDER BY f.nfz_code, v.facility_visit_id))
     FROM reconciliation_reportedvisit v JOIN catalog_facility f ON f.id = v.facility_id)
"""


def _fingerprint() -> tuple[str, ...]:
    with connection.cursor() as cursor:
        cursor.execute(FINGERPRINT_SQL)
        return tuple(cursor.fetchone())


def _generate(seed: int) -> dict:
    return national_data_generate(scale=SCALE, seed=seed, start=START, days=DAYS)


@pytest.fixture
def generated(db):
    return _generate(seed=3)


def test_it_fills_the_real_tables_with_national_shapes_that_satisfy_every_constraint(generated):
    """GIVEN an empty database WHEN the generator runs at a tiny scale THEN every voivodeship has
    facilities, the near term is about half booked, each booked slot has exactly one live appointment, live
    registrations are unique per patient and service, every PESEL is valid, and last month's visits
    are reported with some problem cases."""
    from apps.reconciliation.models import ReportedVisit

    plan = plan_for(SCALE)
    assert Facility.objects.filter(nfz_code__startswith="GEN-").count() == plan["facilities"]
    assert Schedule.objects.filter(external_id__startswith="GEN-S-").count() == plan["schedules"]
    assert Patient.objects.count() == plan["patients"]
    assert generated["rows"]["slots"] == Slot.objects.count()
    voivodeships = set(Facility.objects.values_list("voivodeship_id", flat=True).distinct())
    assert voivodeships == set(Voivodeship.objects.values_list("teryt", flat=True))

    future = Slot.objects.filter(start__gte=dt.datetime.combine(START, dt.time(), tzinfo=dt.UTC))
    # The nearest two weeks are about half booked (later weeks, not generated here, are mostly free).
    assert 0.3 < future.filter(status="booked").count() / future.count() < 0.8
    assert future.filter(status="free").exists()
    booked = future.filter(status="booked")
    live = Appointment.objects.filter(slot__in=booked, status__in=["booked", "confirmed"])
    assert booked.count() == live.count() > 0
    assert live.values("slot").distinct().count() == live.count()

    waiting = Registration.objects.filter(status="waiting")
    assert waiting.values("service").distinct().count() == 16  # every catalogue service has a queue
    live_registrations = Registration.objects.filter(status__in=["waiting", "booked"])
    assert live_registrations.values("patient", "service").distinct().count() == live_registrations.count()

    for value, birth, sex in Patient.objects.values_list("pesel", "birth_date", "sex"):
        assert pesel.parse(value, sex=sex).birth_date == birth

    visits = ReportedVisit.objects.all()
    assert visits.count() == generated["rows"]["reported visits"] > 0
    assert {v.date().replace(day=1) for v in visits.values_list("visit_at", flat=True)} == {
        dt.date(2026, 10, 1)
    }
    assert visits.filter(emergency=True).exists()
    assert visits.filter(facility_visit_id__startswith="X").exists()  # claims beyond the attended visits


def test_every_attended_screening_has_its_record_as_the_outcome_service_writes_it(generated):
    """The screening interval rules read the records alone (booking.sql.screening_columns): the
    generator writes one per attended screening visit, as the database does when a screening becomes
    attended (the visit's Warsaw date, source "cer"), and none for other services or for no-shows."""
    from django.utils import timezone

    from apps.patients.models import ScreeningRecord

    attended = Appointment.objects.filter(status="attended").select_related("service")
    expected = sorted(
        (a.patient_id, a.service_id, timezone.localdate(a.start), "cer")
        for a in attended
        if a.service.is_screening
    )
    assert expected  # some screening visits were attended
    assert attended.exclude(service__in=[s for _p, s, _d, _c in expected]).exists()  # and others
    assert (
        sorted(ScreeningRecord.objects.values_list("patient_id", "service_id", "performed_on", "source"))
        == expected
    )


def test_the_same_seed_gives_the_same_rows_and_another_seed_different_ones(generated):
    first = _fingerprint()
    _wipe()
    _generate(seed=3)
    again = _fingerprint()
    _wipe()
    _generate(seed=4)
    other = _fingerprint()
    assert again == first
    assert other[0] != first[0] and other[2] != first[2]


def test_it_refuses_to_generate_twice_into_the_same_database(generated):
    with pytest.raises(CommandError, match="already present"):
        call_command("generate_national_data", "--scale", str(SCALE), stdout=StringIO())
    assert Facility.objects.filter(nfz_code__startswith="GEN-").count() == plan_for(SCALE)["facilities"]


@pytest.mark.parametrize("existing", ["facilities", "patients"])
def test_it_refuses_a_database_with_real_or_demo_data(db, existing):
    made = FacilityFactory() if existing == "facilities" else PatientFactory()

    with pytest.raises(CommandError, match=f"already holds 1 {existing}"):
        call_command("generate_national_data", "--scale", str(SCALE), stdout=StringIO())

    assert not Facility.objects.filter(nfz_code__startswith="GEN-").exists()
    assert type(made).objects.count() == 1


def _wipe() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            DELETE FROM reconciliation_reportedvisit; DELETE FROM booking_appointment;
            DELETE FROM booking_referraltransition; DELETE FROM booking_registration;
            DELETE FROM patients_referral; DELETE FROM scheduling_slot;
            DELETE FROM scheduling_weeklytemplate;
            DELETE FROM scheduling_schedule; DELETE FROM catalog_contract; DELETE FROM catalog_facility;
            DELETE FROM patients_screeningrecord; DELETE FROM patients_patient;
            """
        )


SCHEMA_SQL = """
SELECT 'index', tablename, indexname, indexdef, '' FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid),
       concat_ws(',', c.convalidated, c.condeferrable, c.condeferred)
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'
  AND c.conparentid = 0  -- not PostgreSQL's own per-partition copies of a partitioned table's constraint
"""


def _schema() -> set[tuple[str, ...]]:
    """The schema's objects. A partition's index is named by PostgreSQL after the partition and its
    columns, cut to 63 characters and numbered when two cut names collide (the visit and verdict
    partitions' names are long): rebuilding an index may number them otherwise, so a partition's
    indexes are compared by definition, not by name."""
    with connection.cursor() as cursor:
        cursor.execute(SCHEMA_SQL)
        rows = {tuple(row) for row in cursor.fetchall()}
        cursor.execute("SELECT relname FROM pg_class WHERE relispartition AND relkind = 'r'")
        partitions_ = {name for (name,) in cursor.fetchall()}
    return {
        (kind, table, "", definition.replace(f"INDEX {name} ON", "INDEX ON"), extra)
        if kind == "index" and table in partitions_
        else (kind, table, name, definition, extra)
        for kind, table, name, definition, extra in rows
    }


def test_after_generation_the_schema_has_exactly_the_migrated_indexes_and_constraints(db):
    """The generator drops the big tables' secondary indexes and constraints for the bulk insert:
    afterwards every one of them is back, with the same name, definition and deferral, validated.
    The month partitions it made for its slots and its reported visits have the same objects as a
    migrated partition, and every visit has its key. Inside a transaction (here) the partitions'
    overlap rules are built in the load's transaction, one after another."""
    _generate_and_compare_schema()


@pytest.fixture
def committed_generation(transactional_db):
    """A generation on committed data (no transaction around it), and the partitions it made
    dropped afterwards (the flush empties the tables, not the partitions)."""
    from apps.booking.partitions import APPOINTMENTS
    from apps.core.partitions import partition_names
    from apps.reconciliation.partitions import VERDICTS, VISITS

    tables = (APPOINTMENTS, partitions.SLOTS, VISITS, VERDICTS)
    before = {table.table: set(partition_names(table)) for table in tables}
    yield
    with connection.cursor() as cursor:
        for table in tables:
            for name in sorted(set(partition_names(table)) - before[table.table]):
                q = connection.ops.quote_name
                cursor.execute(f"TRUNCATE {q(name)} CASCADE")  # the flush comes after this
                cursor.execute(f"ALTER TABLE {q(table.table)} DETACH PARTITION {q(name)}")
                cursor.execute(f"DROP TABLE {q(name)}")


def test_on_committed_data_the_overlap_rules_are_built_in_the_background_and_the_schema_is_whole(
    committed_generation,
):
    """Outside a transaction (`make bench`) the partitions' overlap rules are built after the slots'
    commit, in sessions of their own, while the bookings and visits are loaded; the appointments'
    foreign key into the slots, dropped for those builds, is back, and the schema is the migrated one."""
    lines: list[str] = []
    _generate_and_compare_schema(out=lines.append)
    assert any("overlap rules built in the background" in line for line in lines)
    assert any(partitions.APPOINTMENT_FK in line for line in lines)
    # ... and the tables loaded while those builds ran are marked all-visible (index-only scans of
    # them read no heap), as on a server whose autovacuum has passed
    with connection.cursor() as cursor:
        # (a partitioned table's pages are its partitions')
        cursor.execute(
            """SELECT coalesce(p.relname, c.relname), sum(c.relallvisible), sum(c.relpages) FROM pg_class c
               LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent
               WHERE coalesce(p.relname, c.relname) = ANY(%s) AND c.relkind = 'r' GROUP BY 1""",
            [
                [
                    "booking_registration",
                    "booking_appointment",
                    "booking_liveappointment",
                    "reconciliation_visitkey",
                ]
            ],
        )
        for relname, all_visible, pages in cursor.fetchall():
            assert pages > 0 and all_visible >= 0.9 * pages, (relname, all_visible, pages)
        # ... and hold no dead index entries: counting a queue (a waiting-list place) reads no heap
        cursor.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        cursor.execute(
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT count(*) FROM booking_registration "
            "WHERE status = 'waiting' AND service_id = (SELECT min(service_id) FROM booking_registration "
            "WHERE status = 'waiting')"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan; RESET enable_bitmapscan")
    assert "Index Only Scan using waitlist_order" in plan and "Heap Fetches: 0" in plan, plan


def _generate_and_compare_schema(out: Any = None) -> None:
    from apps.booking.models import LIVE_APPOINTMENT, Appointment, LiveAppointment
    from apps.booking.partitions import APPOINTMENTS
    from apps.core.partitions import partition_names
    from apps.reconciliation.models import ReportedVisit, VisitKey
    from apps.reconciliation.partitions import VISITS

    migrated = _schema()
    before = set(partitions.partition_names())
    visits_before = set(partition_names(VISITS))
    appointments_before = set(partition_names(APPOINTMENTS))
    assert any(row[2].endswith("_no_overlap") for row in migrated)  # a partition's GiST exclusion constraint
    if out is None:
        _generate(seed=3)
    else:
        national_data_generate(scale=SCALE, seed=3, start=START, days=DAYS, out=out)
    made = set(partitions.partition_names()) - before
    visits_made = set(partition_names(VISITS)) - visits_before
    appointments_made = set(partition_names(APPOINTMENTS)) - appointments_before
    assert made and appointments_made, "the generated months have partitions of their own"
    after = _schema()
    assert {row for row in after if row[1] not in made | visits_made | appointments_made} == migrated
    now = partitions.month_of(timezone.now())

    def shape(name: str) -> list[tuple[str, ...]]:
        return sorted((row[0], row[3].replace(name, "P"), row[4]) for row in after if row[1] == name)

    for names, model in (
        (made, partitions.partition_name(now)),
        (visits_made, VISITS.partition_name(now)),
        (appointments_made, APPOINTMENTS.partition_name(now)),
    ):
        assert model in before | visits_before | appointments_before
        assert all(shape(name) == shape(model) for name in names)
    # Every live appointment has its key, written set-based with the key trigger off, and no other
    assert sorted(
        LiveAppointment.objects.values_list("appointment_id", "registration_id", "patient_id", "service_id")
    ) == sorted(
        Appointment.objects.filter(status__in=LIVE_APPOINTMENT).values_list(
            "id", "registration_id", "patient_id", "service_id"
        )
    )
    assert LiveAppointment.objects.exists()
    assert not partitions.partitions_missing_overlap_rule()
    assert sorted(
        VisitKey.objects.values_list("visit_id", "facility_id", "facility_visit_id", "visit_at")
    ) == sorted(ReportedVisit.objects.values_list("id", "facility_id", "facility_visit_id", "visit_at"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT tableoid::regclass::text FROM reconciliation_reportedvisit")
        assert cursor.fetchall() == [(VISITS.partition_name(dt.date(2026, 10, 1)),)]


def test_inside_a_bulk_load_the_table_has_no_secondary_indexes_and_they_come_back(db):
    before = table_schema_objects("scheduling_slot")
    names = {name for _what, name, *_ in before}
    assert "slot_free_by_service" in names and f"{partitions.DEFAULT_PARTITION}_no_overlap" in names
    with BulkLoad("scheduling_slot"):
        assert table_schema_objects("scheduling_slot") == []
    assert sorted(table_schema_objects("scheduling_slot")) == sorted(before)


def test_a_row_that_breaks_a_constraint_fails_the_bulk_load_and_the_schema_is_left_intact(generated):
    """Recreating a constraint checks every row: an overlapping slot inserted while the exclusion
    constraint is dropped makes the load fail, and the rollback brings the dropped objects back."""
    from django.db import IntegrityError

    before = _schema()
    slot = Slot.objects.filter(status="free").first()
    with pytest.raises(IntegrityError), BulkLoad("scheduling_slot"), connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO scheduling_slot (schedule_id, facility_id, service_id, voivodeship_id,
                       locality_id, lat, lon, start, "end", kind, status, from_template, updated_at)
                   SELECT schedule_id, facility_id, service_id, voivodeship_id, locality_id, lat, lon,
                          start + interval '1 minute', "end" + interval '1 minute', kind, status,
                          false, now()
                   FROM scheduling_slot WHERE id = %s""",
            [slot.pk],
        )
    assert _schema() == before


def test_the_visit_factor_adds_past_only_schedules_for_a_bigger_reconciliation_month(generated):
    """GIVEN the default month WHEN generated again with --visit-factor 2 THEN the extra sessions come
    from inactive past-only schedules (one more room of the same facility and service) that have
    slots in the reconciliation month only, and the month has about twice the reported visits."""
    from apps.reconciliation.models import ReportedVisit

    plain_visits = ReportedVisit.objects.count()
    plain_future = Slot.objects.filter(
        start__gte=dt.datetime.combine(START, dt.time(), tzinfo=dt.UTC)
    ).count()
    _wipe()
    result = national_data_generate(scale=SCALE, seed=3, start=START, days=DAYS, visit_factor=2.0)
    extra = Schedule.objects.filter(external_id__startswith="GEN-P-")
    assert extra.count() == result["plan"]["past_schedules"] == plan_for(SCALE)["schedules"]
    assert not extra.filter(active=True).exists()
    month_start = dt.datetime.combine(dt.date(2026, 10, 1), dt.time(), tzinfo=dt.UTC)
    assert not Slot.objects.filter(
        schedule__in=extra, start__gte=dt.datetime.combine(START, dt.time(), tzinfo=dt.UTC)
    ).exists()
    assert Slot.objects.filter(schedule__in=extra, start__gte=month_start).exists()
    future = Slot.objects.filter(start__gte=dt.datetime.combine(START, dt.time(), tzinfo=dt.UTC)).count()
    assert future == plain_future  # the schedule ahead, search and waiting list are unchanged
    assert 1.7 < ReportedVisit.objects.count() / plain_visits < 2.3


def test_the_generator_leaves_the_connection_with_the_default_session_settings(db):
    """The benchmarks run in the same connection after the generator: no asynchronous commit or
    large work_mem may leak into what they measure."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('synchronous_commit'), current_setting('work_mem')")
        defaults = cursor.fetchone()
        _generate(seed=3)
        cursor.execute("SELECT current_setting('synchronous_commit'), current_setting('work_mem')")
        assert cursor.fetchone() == defaults


def test_every_waiting_entry_of_a_referral_service_holds_its_patients_referral(generated):
    """The booking rules on the waiting list's allocation need what the real system would hold: an
    e-referral of the entry's patient for its service, registered by that entry alone."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE f.id IS NULL OR f.patient_id <> r.patient_id
                                    OR f.service_id <> r.service_id OR f.status <> 'registered')
            FROM booking_registration r
            JOIN catalog_service svc ON svc.id = r.service_id
            LEFT JOIN patients_referral f ON f.id = r.referral_id
            WHERE r.status = 'waiting' AND svc.referral_required
            """
        )
        entries, wrong = cur.fetchone()
    assert entries > 0 and wrong == 0


def test_the_waiting_list_holds_the_patients_waitlist_join_would_take(generated):
    """Every entry of a queue could have been made by `waitlist_join` on the start date: the booking
    rules (the programme's sex and age, the interval since last month's screening) allow its patient
    then, so the allocation does not walk past queues of people it may never book."""
    from apps.booking import rules, sql

    waiting = list(Registration.objects.filter(status="waiting").select_related("patient", "service"))
    assert waiting
    refused = []
    for entry in waiting:
        last = sql.last_screening(patient_id=entry.patient_id, service_id=entry.service_id)
        facts = rules.Facts(
            patient=entry.patient, service=entry.service, day=START, last_screening=last, referral_known=False
        )
        if not rules.allows(facts):
            refused.append((entry.service.code, entry.patient.sex, entry.patient.birth_date, last))
    assert refused == []
    assert {e.service.code for e in waiting} >= {"MAMMO_SCR", "CYTO_SCR", "HPV_SCR"}
