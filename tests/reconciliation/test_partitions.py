"""Month partitions of the reported visits and verdicts (apps/reconciliation/partitions.py) on real
PostgreSQL: a month's run planned on its month's partitions alone, "a facility reports a visit id
once" across months and under concurrency, a correction that moves a visit to another month, the
maintenance job where it differs from the generic one, and the migration on populated data."""

from __future__ import annotations

import ast
import datetime as dt
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.utils import timezone

from apps.core import partitions as core
from apps.reconciliation import engine, partitions
from apps.reconciliation.imports import VisitRow
from apps.reconciliation.models import (
    ImportBatch,
    Override,
    ReconciliationRun,
    ReportedVisit,
    Verdict,
    VisitKey,
    VisitVersion,
)
from apps.reconciliation.selectors import visit_verdicts
from apps.reconciliation.services import run_create, run_execute, verdict_override, visits_import
from tests.core.partitions import at_once
from tests.factories import FacilityFactory, PatientFactory, ServiceFactory
from tests.factories.reconciliation import ReportedVisitFactory, warsaw
from tests.reconciliation.conftest import reconcile

JULY, AUGUST = dt.date(2026, 7, 1), dt.date(2026, 8, 1)
VISITS, VERDICTS = partitions.VISITS, partitions.VERDICTS
HEADER = "pesel,facility_code,service_code,visit_at,emergency,visit_id,correction_reason\n"


def _partition_of(table: str, pk: int) -> str:
    with connection.cursor() as cur:
        cur.execute(f"SELECT tableoid::regclass::text FROM {table} WHERE id = %s", [pk])
        return cur.fetchone()[0]


def _check_deferred_keys() -> None:
    """The composite foreign keys are checked at commit; a test that never commits asks for it now."""
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("SET CONSTRAINTS ALL DEFERRED")


def _line(patient, facility, service, at: dt.datetime, visit_id: str, reason: str = "") -> str:
    local = at.astimezone(core.WARSAW).strftime("%Y-%m-%dT%H:%M")
    return f"{patient.pesel},{facility.nfz_code},{service.code},{local},0,{visit_id},{reason}\n"


@pytest.fixture
def months(db):
    """July and August 2026 partitions of both tables (made in the test's transaction, rolled back)."""
    for table in (VISITS, VERDICTS):
        core.partitions_ensure(table, JULY, AUGUST)


@pytest.fixture
def analyst(db):
    return User.objects.create_user("partition-analyst", password="not-used-here-1")


# --- a month's run reads one partition -------------------------------------------------------------


def _partitions_in_plan(sql: str, params: dict) -> set[str]:
    """The partitions of the two tables an EXPLAIN of the statement scans (planned, not run)."""
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cur.fetchone()[0]
    found: set[str] = set()

    def walk(node: dict) -> None:
        name = node.get("Relation Name", "")
        if name.startswith((f"{VISITS.table}_", f"{VERDICTS.table}_")):
            found.add(name)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def test_a_months_run_is_planned_on_that_months_partitions_alone(months, patient, cardiology, facility_a):
    """GIVEN visits in July and in August, each in its month's partition WHEN July is reconciled (and a
    day of July) THEN every statement of the run is planned on July's partition of the visits and of the
    verdicts only (EXPLAIN, partitions pruned when planned), and the verdicts are written there."""
    july = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)
    august = ReportedVisitFactory(
        patient=patient, service=cardiology, facility=facility_a, visit_at=warsaw(2026, 8, 3)
    )
    assert _partition_of(VISITS.table, july.pk) == VISITS.partition_name(JULY)
    assert _partition_of(VISITS.table, august.pk) == VISITS.partition_name(AUGUST)

    run = reconcile()
    day = run_execute(run_id=run_create(scope="day", period_start=dt.date(2026, 7, 14)).pk)

    july_visits, july_verdicts = VISITS.partition_name(JULY), VERDICTS.partition_name(JULY)
    verdicts = Verdict.objects.filter(visit=july)
    assert [_partition_of(VERDICTS.table, v.pk) for v in verdicts] == [july_verdicts, july_verdicts]
    assert {v.period_start for v in verdicts} == {JULY, dt.date(2026, 7, 14)} and day.visits_done == 1
    assert not Verdict.objects.filter(visit=august).exists()
    params = engine._params(
        run=run.pk, lo=0, hi=august.pk, start=warsaw(2026, 7, 1, 0), end=warsaw(2026, 8, 1, 0), facility=None
    )
    expected = {
        "BOUNDS_SQL": {july_visits},
        "RESOLVE_SQL": {july_visits},
        "CLEAR_SQL": {july_verdicts},
        "CHUNK_SQL": {july_visits},  # and its INSERT routes every verdict to July's (above)
        "DUPLICATES_SQL": {july_verdicts, july_visits},
        "OVERRIDES_SQL": {july_verdicts},
    }
    assert {name: _partitions_in_plan(getattr(engine, name), params) for name in expected} == expected


# --- a visit id once, across months ----------------------------------------------------------------


def test_a_visit_id_is_reported_once_across_months_whoever_writes_it(months, facility_a, facility_b):
    """The ORM (no import statement) writes a visit: the trigger writes its key, and a second visit of
    the key in another month's partition is refused with the old constraint's name; a visit renamed to a
    taken id is refused, renamed to a free one takes its key along."""
    first = ReportedVisitFactory(facility=facility_a, facility_visit_id="K-1")
    key = VisitKey.objects.get(visit=first)
    assert (key.facility_id, key.facility_visit_id, key.visit_at) == (facility_a.pk, "K-1", first.visit_at)

    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        ReportedVisitFactory(facility=facility_a, facility_visit_id="K-1", visit_at=warsaw(2026, 8, 3))
    assert "visit_once_per_facility" in str(refused.value)

    ReportedVisitFactory(facility=facility_b, facility_visit_id="K-1", visit_at=warsaw(2026, 8, 3))
    second = ReportedVisitFactory(facility=facility_a, facility_visit_id="K-2", visit_at=warsaw(2026, 8, 4))
    with pytest.raises(IntegrityError), transaction.atomic():
        ReportedVisit.objects.filter(pk=second.pk).update(facility_visit_id="K-1")
    ReportedVisit.objects.filter(pk=second.pk).update(facility_visit_id="K-3")
    assert VisitKey.objects.get(visit=second).facility_visit_id == "K-3"
    assert ReportedVisit.objects.count() == VisitKey.objects.count() == 3
    _check_deferred_keys()


@pytest.fixture
def own_partitions(transactional_db):
    """Partitions a test makes (or a migration remakes) are detached and dropped afterwards."""
    before = {table.table: set(core.partition_names(table)) for table in (VISITS, VERDICTS)}
    yield
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE reconciliation_override, reconciliation_visitversion, reconciliation_visitkey,"
            " reconciliation_verdict, reconciliation_reportedvisit CASCADE"
        )
        for table in (VISITS, VERDICTS):
            for name in set(core.partition_names(table)) - before[table.table]:
                cur.execute(f"ALTER TABLE {table.table} DETACH PARTITION {name}")
                cur.execute(f"DROP TABLE {name}")
            cur.execute(
                "SELECT relname FROM pg_class WHERE relname LIKE %s AND relkind = 'r' AND NOT relispartition",
                [f"{table.table}_p%"],
            )
            for (name,) in cur.fetchall():
                cur.execute(f"DROP TABLE {name}")  # detached by the test


@pytest.mark.parametrize("writer", ["import", "orm"])
def test_two_writers_of_one_visit_id_in_two_months_at_once_write_one_visit(own_partitions, writer):
    """GIVEN one facility's visit id sent twice at the same moment with dates in two months (two
    partitions) WHEN both write it, each holding its transaction open a moment THEN exactly one visit
    exists: the import that came second waits for the first's key and counts its row a duplicate; a
    plain ORM insert that came second is refused (visit_once_per_facility)."""
    now = timezone.now()
    times = [now - dt.timedelta(days=45), now - dt.timedelta(days=2)]
    for at in times:
        core.partitions_ensure(VISITS, at, at)
    facility, service, patient = FacilityFactory(), ServiceFactory(), PatientFactory()

    def write(at: dt.datetime):
        with transaction.atomic():
            if writer == "import":
                made = visits_import(
                    file=(HEADER + _line(patient, facility, service, at, "SAME-1")).encode(), source="file"
                )
            else:
                made = ReportedVisit.objects.create(
                    facility=facility,
                    facility_visit_id="SAME-1",
                    patient_pesel=patient.pesel,
                    service=service,
                    visit_at=at,
                )
            time.sleep(0.5)
        return made

    results = at_once(*(lambda at=at: write(at) for at in times))

    visit = ReportedVisit.objects.get(facility=facility, facility_visit_id="SAME-1")
    assert VisitKey.objects.get(facility=facility, facility_visit_id="SAME-1").visit_id == visit.pk
    assert _partition_of(VISITS.table, visit.pk) == VISITS.partition_name(core.month_of(visit.visit_at))
    if writer == "import":
        assert all(isinstance(r, ImportBatch) for r in results), results
        assert sorted((b.rows_imported, b.rows_duplicate) for b in results) == [(0, 1), (1, 0)]
    else:
        refused = [r for r in results if isinstance(r, IntegrityError)]
        assert len(refused) == 1 and "visit_once_per_facility" in str(refused[0]), results


# --- a correction moves a visit to another month ---------------------------------------------------


def test_a_correction_to_another_month_moves_the_visit_and_every_copy_of_its_time(
    months, settlement_clock, patient, cardiology, facility_a, analyst
):
    """GIVEN a July visit reconciled in July, its verdict overridden WHEN the facility corrects its date
    to August THEN the row moves to August's partition with its id, and its key, its kept version and the
    override carry the new time (the composite keys hold); July's verdict stays in July's partition,
    July's next run leaves the visit out and August's decides it. A second correction, back to July,
    finds it through its key and moves it back."""
    visits_import(
        file=(HEADER + _line(patient, facility_a, cardiology, warsaw(2026, 7, 14, 9, 5), "M-1")).encode(),
        source="file",
    )
    visit = ReportedVisit.objects.get()
    july_run = reconcile()
    verdict = Verdict.objects.get(run=july_run, visit=visit)
    override = verdict_override(verdict=verdict, new_eligible=True, user=analyst, justification="checked")

    moved = warsaw(2026, 8, 3, 10)
    batch = visits_import(
        file=(HEADER + _line(patient, facility_a, cardiology, moved, "M-1", "wrong month")).encode(),
        source="file",
    )
    _check_deferred_keys()

    assert batch.rows_corrected == 1
    visit.refresh_from_db()
    assert (visit.visit_at, visit.version) == (moved, 2)
    assert _partition_of(VISITS.table, visit.pk) == VISITS.partition_name(AUGUST)
    assert VisitKey.objects.get(visit=visit).visit_at == moved
    assert list(VisitVersion.objects.filter(visit=visit).values_list("visit_at", "current_visit_at")) == [
        (warsaw(2026, 7, 14, 9, 5), moved)
    ]
    override.refresh_from_db()
    assert (override.visit_at, override.verdict_period_start, override.justification) == (
        moved,
        JULY,
        "checked",
    )
    assert _partition_of(VERDICTS.table, verdict.pk) == VERDICTS.partition_name(JULY)
    assert not Verdict.objects.filter(run=reconcile(), visit=visit).exists()  # July's next run
    august = Verdict.objects.get(run=reconcile(month=AUGUST), visit=visit)
    assert (august.visit_version, august.period_start) == (2, AUGUST)
    assert (august.final_eligible, august.override_id) == (True, override.pk)  # the override stands
    # Its verdicts across runs, each found in its run's partition: July's and August's.
    assert sorted(visit_verdicts(visit_ids=[visit.pk]).values_list("run_id", "period_start")) == [
        (july_run.pk, JULY),
        (august.run_id, AUGUST),
    ]

    back = warsaw(2026, 7, 20, 8)
    visits_import(
        file=(HEADER + _line(patient, facility_a, cardiology, back, "M-1", "after all")).encode(),
        source="file",
    )
    _check_deferred_keys()
    visit.refresh_from_db()
    assert (visit.visit_at, visit.version) == (back, 3)
    assert _partition_of(VISITS.table, visit.pk) == VISITS.partition_name(JULY)
    assert set(VisitVersion.objects.filter(visit=visit).values_list("current_visit_at", flat=True)) == {back}


def test_an_override_lets_only_its_visits_time_follow_and_the_keys_refuse_a_wrong_copy(
    months, patient, cardiology, facility_a, analyst
):
    ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)
    verdict = Verdict.objects.get(run=reconcile())
    override = verdict_override(verdict=verdict, new_eligible=True, user=analyst, justification="checked")
    for statement in (
        "UPDATE reconciliation_override SET verdict_period_start = '2026-08-01' WHERE id = %s",
        "UPDATE reconciliation_override SET visit_at = visit_at, justification = 'x' WHERE id = %s",
    ):
        with (
            pytest.raises(ProgrammingError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(statement, [override.pk])
    # The trigger lets the time through; the composite key then refuses a time that is not the visit's.
    with (
        pytest.raises(IntegrityError, match="reconciliation_override_visit_fk"),
        transaction.atomic(),
        connection.cursor() as cur,
    ):
        cur.execute("UPDATE reconciliation_override SET visit_at = visit_at + interval '1 minute'")
        _check_deferred_keys()


@pytest.fixture
def app_role(own_partitions):
    """The application's database role (tests/security/test_database_roles.py), which may not UPDATE
    an override."""
    from django.core.management import call_command

    name = f"{connection.settings_dict['NAME']}_app"[:60]
    call_command("db_app_role", name, stdout=io.StringIO())
    yield name
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{name}"')
        cursor.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_the_app_role_moves_an_overridden_visit_to_another_month(app_role, settings, analyst):
    """GIVEN an overridden verdict of a visit (the application's role may not UPDATE overrides) WHEN the
    facility's correction moving the visit to another month is imported as that role THEN it commits:
    the foreign key's cascade writes the override's copy of the visit's time as the table's owner."""
    now = timezone.now()
    first, moved = now - dt.timedelta(days=45), now - dt.timedelta(days=2)
    for at in (first, moved):
        core.partitions_ensure(VISITS, at, at)
    facility, service, patient = FacilityFactory(), ServiceFactory(), PatientFactory()
    visits_import(file=(HEADER + _line(patient, facility, service, first, "R-1")).encode(), source="file")
    # 45 days ago: its month has ended
    run = run_execute(run_id=run_create(scope="month", period_start=core.month_of(first)).pk)
    verdict = Verdict.objects.get(run=run)
    override = verdict_override(verdict=verdict, new_eligible=True, user=analyst, justification="checked")
    owner = settings.DATABASES["default"]["USER"]
    connection.close()
    settings.DATABASES["default"]["USER"] = app_role
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone() == (app_role,)
        correction = HEADER + _line(patient, facility, service, moved, "R-1", "wrong month")
        batch = visits_import(file=correction.encode(), source="file")
    finally:
        connection.close()
        settings.DATABASES["default"]["USER"] = owner
    assert batch.rows_corrected == 1
    override.refresh_from_db()
    assert override.visit_at == ReportedVisit.objects.get().visit_at == moved.replace(second=0, microsecond=0)


def test_a_runs_pesel_resolution_outlives_a_correction_moving_a_visit_out_of_its_month(own_partitions):
    """GIVEN an unresolved July visit of a patient CeR now knows, and a correction moving it to August
    that holds its transaction open WHEN July's run resolves PESELs (waiting on the visit's row) THEN
    once the correction commits, PostgreSQL refuses to follow the row to August's partition
    (serialization failure), the resolution is retried and finishes without it."""
    patient, facility, service = PatientFactory(), FacilityFactory(), ServiceFactory()
    visit = ReportedVisitFactory(
        patient=None,
        patient_pesel=patient.pesel,
        facility=facility,
        service=service,
        facility_visit_id="MV-1",
    )
    batch = ImportBatch.objects.create(file_name="corrections", sha256="1" * 64, source="api")
    corrected = threading.Event()

    def correct() -> int:
        with transaction.atomic():
            row = VisitRow(1, patient.pesel, facility.pk, service.pk, warsaw(2026, 8, 3), False, "MV-1")
            done = engine.visits_correct(batch_id=batch.pk, corrections=[(visit.pk, row)])
            corrected.set()
            time.sleep(1)
        return done

    def resolve() -> int:
        corrected.wait(timeout=30)
        with transaction.atomic():
            return engine.patients_resolve(
                lo=0, hi=visit.pk, start=warsaw(2026, 7, 1, 0), end=warsaw(2026, 8, 1, 0), facility_id=None
            )

    results = at_once(correct, resolve)

    assert (results.count(1), results.count(0), len(results)) == (1, 1, 2), results  # corrected; none left
    assert _partition_of(VISITS.table, visit.pk) == VISITS.partition_name(AUGUST)
    assert ReportedVisit.objects.get(pk=visit.pk).patient_id == patient.pk  # the correction resolved it


# --- maintenance -------------------------------------------------------------------------------------

KEEP = 146  # months before May 2032: March 2020


def test_maintenance_deletes_a_detached_months_keys_and_keeps_a_month_with_kept_versions(own_partitions):
    """GIVEN visits in two old months (one with a kept version) and visits in DEFAULT for months that
    get partitions (one corrected) WHEN the job runs for May 2032 THEN the months ahead
    exist, DEFAULT's visits moved into them with their keys, versions and overrides still referring to
    them; the old month without versions is detached and its keys deleted with it (the visits table and
    the keys stay one to one); the one with a version is kept, keys and all; a second run changes
    nothing."""
    now = dt.datetime(2032, 5, 10, 12, tzinfo=core.WARSAW)
    core.partitions_ensure(VISITS, dt.date(2020, 1, 1), dt.date(2020, 2, 1))
    facility, service = FacilityFactory(), ServiceFactory()

    def visit(at: dt.datetime, visit_id: str) -> ReportedVisit:
        return ReportedVisitFactory(
            facility=facility, service=service, facility_visit_id=visit_id, visit_at=at
        )

    old_plain = visit(dt.datetime(2020, 1, 5, 9, tzinfo=core.WARSAW), "OLD-1")
    old_corrected = visit(dt.datetime(2020, 2, 5, 9, tzinfo=core.WARSAW), "OLD-2")
    waiting = [visit(dt.datetime(2032, month, 2, 9, tzinfo=core.WARSAW), f"NEW-{month}") for month in (5, 6)]
    batch = ImportBatch.objects.create(file_name="corrections", sha256="0" * 64, source="api")
    for old in (old_corrected, waiting[0]):
        fixed = VisitRow(
            1, old.patient_pesel, facility.pk, service.pk, old.visit_at, True, old.facility_visit_id
        )
        engine.visits_correct(batch_id=batch.pk, corrections=[(old.pk, fixed)])
    assert {_partition_of(VISITS.table, v.pk) for v in waiting} == {VISITS.default_partition}

    report = core.partitions_maintain(VISITS, now=now, ahead=1, keep=KEEP)

    made = [VISITS.partition_name(dt.date(2032, 5, 1)), VISITS.partition_name(dt.date(2032, 6, 1))]
    assert report.created == made
    assert report.detached == [VISITS.partition_name(dt.date(2020, 1, 1))]
    assert list(report.kept) == [VISITS.partition_name(dt.date(2020, 2, 1))]
    assert [_partition_of(VISITS.table, v.pk) for v in waiting] == made
    assert not ReportedVisit.objects.filter(pk=old_plain.pk).exists()
    assert not VisitKey.objects.filter(visit_id=old_plain.pk).exists()
    assert VisitKey.objects.filter(visit_id=old_corrected.pk).exists()
    assert sorted(VisitKey.objects.values_list("visit_id", flat=True)) == sorted(
        ReportedVisit.objects.values_list("id", flat=True)
    )
    with connection.cursor() as cur:
        cur.execute(
            "SELECT conname, convalidated FROM pg_constraint WHERE conname = ANY(%s) ORDER BY 1",
            [[r.name for r in VISITS.references]],
        )
        assert cur.fetchall() == sorted((r.name, True) for r in VISITS.references)

    again = core.partitions_maintain(VISITS, now=now, ahead=1, keep=KEEP)
    assert (again.created, again.detached, list(again.kept)) == ([], [], list(report.kept))


def test_months_are_kept_for_at_least_the_settlement_window(settings, db):
    settings.CER_RECONCILIATION_PARTITIONS_KEEP_MONTHS = 3
    assert partitions.months_kept() == 28  # 730 days: 27 months of 28 days, and the month it began
    settings.CER_RECONCILIATION_PARTITIONS_KEEP_MONTHS = 96
    assert partitions.months_kept() == 96
    settings.CER_RECONCILIATION_PARTITIONS_KEEP_MONTHS = 0
    assert partitions.months_kept() == 0


def test_the_daily_task_maintains_the_tables_registered_at_start_up():
    """A fresh process (a worker) has every partitioned table registered by the apps' ready()."""
    code = "import django; django.setup(); from apps.core.partitions import REGISTRY; print(sorted(REGISTRY))"
    done = subprocess.run(  # noqa: S603 (this interpreter, a fixed program)
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        check=True,
    )
    registered = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert {"reconciliation_reportedvisit", "reconciliation_verdict", "scheduling_slot"} <= set(registered)


# --- the migration, on populated data --------------------------------------------------------------

BEFORE = [("reconciliation", "0007_choice_labels_from_the_catalogue")]


def _migrate(targets) -> None:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def _rows(table: str) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(f"SELECT * FROM {table} ORDER BY id")
        return cur.fetchall()


def _last_value(table: str) -> int:
    with connection.cursor() as cur:
        cur.execute(f"SELECT last_value FROM {table}_id_seq")
        return cur.fetchone()[0]


def _foreign_keys_into(*tables: str) -> list[tuple[str, str, bool]]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid), convalidated FROM pg_constraint"
            " WHERE confrelid = ANY(%s::regclass[]) AND conparentid = 0 ORDER BY 1, 2",
            [list(tables)],
        )
        return cur.fetchall()


def _seed_before_0008() -> dict[str, int]:
    """Visits in July and August 2026, in 2014 (older than every partition kept) and 2099 (beyond
    those made ahead), a kept version, two runs' verdicts and an override, written as the schema
    before 0008 has them (raw SQL: the models are already the new ones)."""
    facility, service, patient = FacilityFactory(), ServiceFactory(), PatientFactory()
    times = [
        warsaw(2026, 7, 14, 9),
        warsaw(2026, 7, 31, 23, 30),  # Warsaw's July, UTC's July too, close to the boundary
        warsaw(2026, 8, 1, 0, 30),  # August in Warsaw, still 31 July in UTC
        warsaw(2014, 3, 3, 9),
        warsaw(2099, 3, 3, 9),
    ]
    ids: dict[str, int] = {}
    with connection.cursor() as cur:
        for n, at in enumerate(times):
            cur.execute(
                "INSERT INTO reconciliation_reportedvisit (facility_id, facility_visit_id, patient_pesel,"
                " patient_id, service_id, visit_at, emergency, created_at, version, withdrawn,"
                " correction_reason) VALUES (%s, %s, %s, %s, %s, %s, false, now(), 2, false, 'fix')"
                " RETURNING id",
                [facility.pk, f"MIG-{n}", patient.pesel, patient.pk, service.pk, at],
            )
            ids[f"visit{n}"] = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO reconciliation_visitversion (visit_id, version, patient_pesel, service_id, visit_at,"
            " emergency, withdrawn, correction_reason, recorded_at, superseded_at)"
            " VALUES (%s, 1, %s, %s, %s, false, false, '', now(), now())",
            [ids["visit2"], patient.pesel, service.pk, warsaw(2026, 7, 2, 9)],
        )
        for key, period in (("run_july", JULY), ("run_day", dt.date(2026, 8, 1))):
            end = dt.date(2026, 8, 1) if key == "run_july" else dt.date(2026, 8, 2)
            ids[key] = ReconciliationRun.objects.create(
                scope="month" if key == "run_july" else "day",
                period_start=period,
                period_end=end,
                rule_version="x",
                state="done",
            ).pk
        for run, visit in (("run_july", "visit0"), ("run_july", "visit1"), ("run_day", "visit2")):
            cur.execute(
                "INSERT INTO reconciliation_verdict (run_id, visit_id, facility_id, service_id, visit_at,"
                " eligible, reason, rule_version, visit_version, final_eligible)"
                " SELECT %s, id, facility_id, service_id, visit_at, false, 'no_registration', 'x', 2, false"
                " FROM reconciliation_reportedvisit WHERE id = %s RETURNING id",
                [ids[run], ids[visit]],
            )
            ids[f"verdict_{visit}"] = cur.fetchone()[0]
        user = User.objects.create_user("migration-analyst", password="not-used-here-1")
        cur.execute(
            "INSERT INTO reconciliation_override (verdict_id, visit_id, original_eligible, original_reason,"
            " new_eligible, user_id, at, justification) VALUES (%s, %s, false, 'no_registration', true, %s,"
            " now(), 'checked')",
            [ids["verdict_visit2"], ids["visit2"], user.pk],
        )
    return ids


def test_the_migration_partitions_populated_tables_and_back(own_partitions):
    """GIVEN the schema before reconciliation 0008 (plain tables, Django's single-column keys) holding
    visits in July, at both sides of the July/August boundary in Warsaw, in 2014 and 2099, a kept
    version, a month run's and a day run's verdicts and an override WHEN migrated forward THEN every
    row is kept with its id, each visit in its Warsaw month's partition (or DEFAULT), each verdict in
    its run's month's, the settlement window's months have partitions, every visit has its key, the
    sequences go on, and the composite keys hold (validated); WHEN migrated back THEN the plain
    tables, their unique rules and Django's keys are back with the same rows, and the sequences still
    go on."""
    try:
        _migrate(BEFORE)
        assert not partitions.is_partitioned()
        ids = _seed_before_0008()
        visits, verdicts = _rows(VISITS.table), _rows(VERDICTS.table)
        last = {t: _last_value(t) for t in (VISITS.table, VERDICTS.table)}

        _migrate(None)

        assert partitions.is_partitioned() and core.is_partitioned(VERDICTS)
        # Every month of the settlement window has its partitions: late visits and runs of ended months.
        current = core.month_of(timezone.now())
        window = {core.add_months(current, -n) for n in range(partitions.months_reported_late() + 1)}
        assert window <= set(core.partition_months(VISITS)) and window <= set(core.partition_months(VERDICTS))
        # The old tables' columns first, the copies Django added at the end (as ALTER TABLE puts them).
        assert [row[: len(visits[0])] for row in _rows(VISITS.table)] == visits
        assert [row[: len(verdicts[0])] for row in _rows(VERDICTS.table)] == verdicts
        july, august = VISITS.partition_name(JULY), VISITS.partition_name(AUGUST)
        assert [_partition_of(VISITS.table, ids[f"visit{n}"]) for n in range(5)] == [
            july,
            july,
            august,
            VISITS.default_partition,
            VISITS.default_partition,
        ]
        assert [_partition_of(VERDICTS.table, ids[f"verdict_visit{n}"]) for n in range(3)] == [
            VERDICTS.partition_name(JULY),
            VERDICTS.partition_name(JULY),
            VERDICTS.partition_name(AUGUST),
        ]
        assert dict(Verdict.objects.values_list("run_id", "period_start").distinct()) == {
            ids["run_july"]: JULY,
            ids["run_day"]: dt.date(2026, 8, 1),
        }
        assert sorted(VisitKey.objects.values_list("visit_id", "visit_at")) == sorted(
            ReportedVisit.objects.values_list("id", "visit_at")
        )
        assert VisitVersion.objects.get().current_visit_at == warsaw(2026, 8, 1, 0, 30)
        override = Override.objects.get()
        assert (override.visit_at, override.verdict_period_start) == (warsaw(2026, 8, 1, 0, 30), AUGUST)
        deferred = " DEFERRABLE INITIALLY DEFERRED"
        to_visit = " REFERENCES reconciliation_reportedvisit(id, visit_at) ON UPDATE CASCADE"
        assert _foreign_keys_into(VISITS.table, VERDICTS.table) == [
            (
                "reconciliation_override",
                "FOREIGN KEY (verdict_id, verdict_period_start) REFERENCES reconciliation_verdict(id,"
                " period_start)" + deferred,
                True,
            ),
            ("reconciliation_override", "FOREIGN KEY (visit_id, visit_at)" + to_visit + deferred, True),
            (
                "reconciliation_visitkey",
                "FOREIGN KEY (visit_id, visit_at)" + to_visit + " ON DELETE CASCADE" + deferred,
                True,
            ),
            (
                "reconciliation_visitversion",
                "FOREIGN KEY (visit_id, current_visit_at)" + to_visit + deferred,
                True,
            ),
        ]
        made = ReportedVisitFactory(facility_visit_id="AFTER-1")
        assert made.pk == last[VISITS.table] + 1  # the sequence went on
        with pytest.raises(IntegrityError), transaction.atomic():  # the rule, across months
            ReportedVisitFactory(
                facility=made.facility, facility_visit_id="AFTER-1", visit_at=warsaw(2014, 3, 3)
            )
        with connection.cursor() as cur:
            cur.execute("DELETE FROM reconciliation_visitkey WHERE visit_id = %s", [made.pk])
            cur.execute("DELETE FROM reconciliation_reportedvisit WHERE id = %s", [made.pk])
        visits_now = _rows(VISITS.table)

        _migrate(BEFORE)

        assert not partitions.is_partitioned() and not core.is_partitioned(VERDICTS)
        assert _rows(VISITS.table) == visits_now and _rows(VERDICTS.table) == verdicts
        assert _last_value(VISITS.table) == made.pk + 1  # the refused duplicate drew an id too
        django_visit = "FOREIGN KEY (visit_id) REFERENCES reconciliation_reportedvisit(id)" + deferred
        assert _foreign_keys_into(VISITS.table, VERDICTS.table) == [
            (
                "reconciliation_override",
                "FOREIGN KEY (verdict_id) REFERENCES reconciliation_verdict(id)" + deferred,
                True,
            ),
            ("reconciliation_override", django_visit, True),
            ("reconciliation_visitversion", django_visit, True),
        ]
        with connection.cursor() as cur:
            cur.execute(
                "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conname IN ('visit_once_per_facility', 'verdict_once_per_run') ORDER BY 1"
            )
            assert cur.fetchall() == [
                ("reconciliation_reportedvisit", "UNIQUE (facility_id, facility_visit_id)"),
                ("reconciliation_verdict", "UNIQUE (run_id, visit_id)"),
            ]
    finally:
        _migrate(None)
