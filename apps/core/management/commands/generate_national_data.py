"""Generate a national-size data set for the benchmarks (`bench/`), set-based, in the real tables.

    python manage.py generate_national_data --scale 1.0 --seed 7      # about 10,000 schedules
    python manage.py generate_national_data --scale 0.01               # a quick 1 % sample

At scale 1.0: ~10,000 facility-service schedules over all 16 voivodeships (facilities spread over
the catalogue's localities by population), 90 days of weekday slots (~15 million, most free, the
next two weeks mostly booked), 2 million patients with valid PESELs, 200,000 waiting-list
registrations, and the previous calendar month's attended visits with the visits facilities report for
settlement (`reconciliation.ReportedVisit`, with the usual share of problem cases): ~4.5 million, or
~10 million with `--visit-factor 2.25` (past-only schedules add sessions to that month only).

Everything is `INSERT ... SELECT` over `generate_series` inside PostgreSQL: no row passes through
Python. Randomness is `hashint8extended(key, seed)` of each row's own ordinal rather than
`random()`, so a row's values depend only on (seed, start date, ordinal): the same arguments give
the same data whatever the plan, the parallelism or the order PostgreSQL evaluates rows in. Ids
come from the tables' own sequences (`nextval`), so the rows coexist with anything else.

The big tables are bulk-loaded (`BulkLoad`): their secondary indexes and unique, exclusion and
foreign-key constraints are dropped for the insert and recreated exactly afterwards, in the same
transaction, so every row is checked against every constraint of the real schema (slot exclusion
constraint, one live registration per patient and service, one live appointment per slot, per
registration and per patient and service) and the benchmarks measure the real schema.
Generated facilities are recognisable by the `GEN-` prefix of their NFZ code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from apps.booking import partitions as appointment_partitions
from apps.scheduling import partitions

FACILITY_PREFIX = "GEN-"
FULL = {
    "schedules": 10_000,
    "patients": 2_000_000,
    "waiting": 200_000,
}
DAYS = 90
# The partitions' overlap rules (one GiST build each) are built this many at a time after the slot
# load, one session and one core each (2 on this 2-core box).
PARALLEL_BUILDS = max(1, min(8, os.cpu_count() or 1))
SLOT_CHUNK_SCHEDULES = 500  # ~750,000 slots per INSERT (one sort in work_mem), all in one transaction
# Index builds and foreign-key validation after the bulk inserts: the sorts of 19 M-row indexes.
BULK_MAINTENANCE_WORK_MEM = "1GB"
# Relative share of schedules per service code (cardiology and screening dominate CeR today).
SERVICE_WEIGHTS = {"KARDIO_1": 5, "MAMMO_SCR": 4, "CYTO_SCR": 3, "HPV_SCR": 2, "NADCISN_1": 2, "ENDO_1": 2}
FIRST_NAMES_F = ["Anna", "Maria", "Katarzyna", "Małgorzata", "Agnieszka", "Barbara", "Ewa", "Zofia", "Julia"]
FIRST_NAMES_M = ["Piotr", "Krzysztof", "Andrzej", "Tomasz", "Jan", "Paweł", "Michał", "Marcin", "Jakub"]
LAST_NAMES = [
    ("Nowak", "Nowak"),
    ("Kowalski", "Kowalska"),
    ("Wiśniewski", "Wiśniewska"),
    ("Wójcik", "Wójcik"),
    ("Kowalczyk", "Kowalczyk"),
    ("Kamiński", "Kamińska"),
    ("Lewandowski", "Lewandowska"),
    ("Zieliński", "Zielińska"),
    ("Szymański", "Szymańska"),
    ("Woźniak", "Woźniak"),
    ("Dąbrowski", "Dąbrowska"),
    ("Kozłowski", "Kozłowska"),
]
# Multipliers for the patient permutation k -> (k * A + offset) mod N; the first coprime to N is used.
PRIMES = [1_000_003, 1_000_033, 1_000_037, 1_000_039, 999_983]


def plan_for(scale: float) -> dict[str, int]:
    """Row counts for a scale; floors keep every voivodeship and service present at tiny scales."""
    schedules = max(16, round(FULL["schedules"] * scale))
    return {
        "schedules": schedules,
        "facilities": max(16, math.ceil(schedules / 4)),
        "patients": max(2_000, round(FULL["patients"] * scale)),
        "waiting": max(16, round(FULL["waiting"] * scale)),
    }


# The secondary indexes and the unique, exclusion and foreign-key constraints of one table, as
# PostgreSQL itself prints them (pg_get_indexdef / pg_get_constraintdef): what a bulk load drops and
# recreates, with the relation each belongs to. The primary key and CHECK constraints stay (cheap per
# row); so do indexes that back a constraint (they go with it). A partitioned table's own objects
# carry its partitions' copies with them; what a partition has of its own (the slot table's overlap
# rule, one exclusion constraint per partition) is listed with the partition.
SCHEMA_OBJECTS_SQL = """
WITH rel AS (
    SELECT %(table)s::regclass AS oid
    UNION ALL
    SELECT inhrelid FROM pg_inherits WHERE inhparent = %(table)s::regclass
)
SELECT 'constraint' AS what, c.conname AS name, pg_get_constraintdef(c.oid) AS definition, c.contype::text,
       c.conrelid::regclass::text AS relation
FROM pg_constraint c JOIN rel ON rel.oid = c.conrelid
WHERE c.contype IN ('f', 'u', 'x') AND c.conparentid = 0
UNION ALL
SELECT 'index', i.relname, pg_get_indexdef(i.oid), '', x.indrelid::regclass::text
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN rel ON rel.oid = x.indrelid
WHERE NOT x.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid
                  AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x'))
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = x.indexrelid)
"""


def table_schema_objects(table: str) -> list[tuple[str, str, str, str, str]]:
    """(what, name, definition, constraint type, relation) of the objects `BulkLoad` drops and
    recreates."""
    with connection.cursor() as cur:
        cur.execute(SCHEMA_OBJECTS_SQL, {"table": table})
        return [tuple(row) for row in cur.fetchall()]  # type: ignore[misc]


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _meta_sql(table: str) -> dict[str, str]:
    """The CREATE statements of the model's Meta.indexes and Meta.constraints, exactly as the
    migrations ran them. pg_get_indexdef() of a condition like `status IN (...)` does not parse back
    to the same expression (the casts move), so these are rebuilt from the model; plain column
    indexes and foreign keys round-trip through the catalogue unchanged."""
    models = [m for m in apps.get_models() if m._meta.db_table == table]
    if not models:
        return {}
    model = models[0]
    out: dict[str, str] = {}
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        for obj in [*model._meta.indexes, *model._meta.constraints]:
            if obj.name:
                out[obj.name] = str(obj.create_sql(model, editor))
    return out


class BulkLoad:
    """Fill tables without their secondary indexes and constraints, then recreate them exactly.

    The standard bulk-load recipe (PostgreSQL manual, "Populating a Database"): every row inserted
    into a table with 12 indexes (one of them the GiST exclusion constraint) and 7 deferred foreign
    keys costs random index I/O and a queued trigger event, once the indexes outgrow shared_buffers;
    building each index once with one sort, and validating each foreign key with one join, is an
    order of magnitude faster. The definitions are read from the catalogue just before the drop and
    replayed verbatim (same names, same DEFERRABLE INITIALLY DEFERRED), so the schema afterwards is
    the migrated one; recreating a constraint checks every row against it, so the data is as
    constrained as if it had been inserted with them in place.

    Everything happens in one transaction (DDL is transactional in PostgreSQL): if anything fails,
    the drop is rolled back with the rows. Meant for the generator's empty data set only: the
    ACCESS EXCLUSIVE locks block every other use of the tables until commit.

    The month-partitioned slot table: a parent's index or constraint is rebuilt once per partition
    by PostgreSQL; the overlap rule is one exclusion constraint per partition, and its cross-month
    trigger is switched off for the load and replaced by one set-based check
    (apps/scheduling/partitions.py). The reported visits' key table is loaded with them, its keys
    written in one statement with the visits' key trigger switched off (apps/reconciliation/partitions.py).
    With `parallel` > 1 and no transaction around the load, the
    partitions' overlap rules (GiST builds, single-threaded in PostgreSQL: most of a national load)
    are built after the commit, `parallel` partitions at a time in sessions of their own; a row that
    breaks one then fails the load after its rows were committed (the error says which partition).
    With `background` too, those builds run while the caller goes on (`builds_wait` waits for them
    and re-raises a failure): each holds its partition's ACCESS EXCLUSIVE lock, so what the caller
    does meanwhile must not touch the table, and the foreign keys into it are dropped with the load
    and added back by `builds_wait` (adding or dropping one locks the table it refers to).
    """

    def __init__(
        self,
        *tables: str,
        out: Callable[[str], None] = lambda _line: None,
        parallel: int = 1,
        background: bool = False,
    ) -> None:
        self.tables = tables
        self.out = out
        self.parallel = parallel
        self.background = background
        self.saved: list[tuple[str, str, str, str]] = []  # (relation, kind, name, CREATE/ALTER statement)
        self.after_commit: list[str] = []  # partitions whose overlap rule is built in parallel sessions
        self.after_builds: list[tuple[str, str]] = []  # (name, ALTER) of the foreign keys into the table
        self.builds: Future[float] | None = None
        self.atomic = transaction.atomic()
        self.rebuild_seconds = 0.0
        self.slot_table = False

    def __enter__(self) -> BulkLoad:
        deferrable = self.parallel > 1 and not connection.in_atomic_block
        self.atomic.__enter__()
        with connection.cursor() as cur:
            # Fire the checks still queued in this transaction (ALTER TABLE refuses a table with
            # pending trigger events); they are due anyway.
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in self.tables:
                objects = table_schema_objects(table)
                from_meta = _meta_sql(table)
                for what, name, definition, contype, relation in objects:
                    if name in from_meta:
                        statement = from_meta[name]
                    elif what == "index":
                        # A partitioned table's index prints as ON ONLY (the parent alone): rebuilt
                        # with its partitions.
                        statement = definition.replace(" ON ONLY ", " ON ", 1)
                    else:
                        statement = (
                            f"ALTER TABLE {_quote(relation)} ADD CONSTRAINT {_quote(name)} {definition}"
                        )
                    if deferrable and contype == "x" and relation != table:
                        self.after_commit.append(relation)
                    else:
                        self.saved.append(
                            (relation, "index" if what == "index" else contype, name, statement)
                        )
                # Foreign keys first, then unique/exclusion constraints (with their indexes), then indexes.
                for what, name, _definition, _contype, relation in sorted(
                    objects, key=lambda o: (o[0] != "constraint", o[3] != "f")
                ):
                    if what == "constraint":
                        cur.execute(f"ALTER TABLE {_quote(relation)} DROP CONSTRAINT {_quote(name)}")
                    else:
                        cur.execute(f"DROP INDEX {_quote(name)}")
                if table == partitions.TABLE and partitions.is_partitioned():
                    self.slot_table = True
                    partitions.overlap_trigger_set(enabled=False)
            if self.background and self.after_commit:
                self._references_drop(cur)
        return self

    def _references_drop(self, cur: Any) -> None:
        """Drop the other tables' foreign keys into the loaded ones (kept for `builds_wait`)."""
        cur.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conparentid = 0 AND confrelid = ANY(%s::regclass[]) "
            "AND NOT conrelid = ANY(%s::regclass[]) ORDER BY conname",
            [list(self.tables), list(self.tables)],
        )
        for relation, name, definition in cur.fetchall():
            cur.execute(f"ALTER TABLE {_quote(relation)} DROP CONSTRAINT {_quote(name)}")
            self.after_builds.append(
                (name, f"ALTER TABLE {_quote(relation)} ADD CONSTRAINT {_quote(name)} {definition}")
            )

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self._recreate()  # a row that breaks a recreated constraint fails here
            except BaseException as error:
                self.atomic.__exit__(type(error), error, error.__traceback__)  # rolls the drop back too
                raise
        self.atomic.__exit__(exc_type, exc, tb)
        if exc_type is None and self.after_commit:
            self.out(f"    overlap rules of {len(self.after_commit)} partitions, {self.parallel} at a time")
            if self.background:
                pool = ThreadPoolExecutor(max_workers=1)
                self.builds = pool.submit(self._build)
                pool.shutdown(wait=False)
            else:
                self.rebuild_seconds += self._build()

    def _build(self) -> float:
        began = time.perf_counter()
        partitions.overlap_rules_build(
            self.after_commit,
            workers=self.parallel,
            setup=[f"SET maintenance_work_mem = '{BULK_MAINTENANCE_WORK_MEM}'"],
            out=self.out,
        )
        return time.perf_counter() - began

    def builds_wait(self) -> float:
        """Wait for the overlap rules built in the background (re-raising a failure), then add back
        the foreign keys into the table; the seconds this took."""
        began = time.perf_counter()
        if self.builds is not None:
            took = self.builds.result()
            self.out(f"    {'overlap rules built in the background':<60} {took:6.1f} s")
            self.builds = None
        with connection.cursor() as cur:
            cur.execute("SET maintenance_work_mem = %s", [BULK_MAINTENANCE_WORK_MEM])
            for name, statement in self.after_builds:
                t0 = time.perf_counter()
                cur.execute(statement)
                self.out(f"    {name:<60} {time.perf_counter() - t0:6.1f} s")
        self.after_builds = []
        return time.perf_counter() - began

    def _recreate(self) -> None:
        began = time.perf_counter()
        with connection.cursor() as cur:
            cur.execute("SET LOCAL maintenance_work_mem = %s", [BULK_MAINTENANCE_WORK_MEM])
            # Plain indexes, then unique/exclusion constraints, then foreign keys (which need the
            # referenced keys and, for the table's own references, nothing else).
            order = {"index": 0, "u": 1, "x": 1, "f": 2}
            for _relation, _kind, name, statement in sorted(self.saved, key=lambda o: order[o[1]]):
                t0 = time.perf_counter()
                cur.execute(statement)
                self.out(f"    {name:<60} {time.perf_counter() - t0:6.1f} s")
        if self.slot_table:
            t0 = time.perf_counter()
            partitions.overlap_trigger_set(enabled=True)
            partitions.cross_month_overlaps_check()
            self.out(f"    {'overlaps across month boundaries':<60} {time.perf_counter() - t0:6.1f} s")
        self.rebuild_seconds = time.perf_counter() - began


def _sql_text_array(values: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]::text[]"


class Generator:
    def __init__(
        self,
        *,
        scale: float,
        seed: int,
        start: dt.date,
        out: Callable[[str], None],
        days: int = DAYS,
        visit_factor: float = 1.0,
    ) -> None:
        self.days = days
        self.scale = scale
        self.seed = seed
        self.start = start
        self.plan = plan_for(scale)
        # The reconciliation month has visit_factor times the sessions of the weekly schedules: the
        # extra ones come from past-only schedules (another room of the same facility and service,
        # inactive now), so the future schedule, the search and the waiting list do not change.
        self.plan["past_schedules"] = round((visit_factor - 1) * self.plan["schedules"])
        self.visit_factor = visit_factor
        # The reconciliation month: the whole calendar month before the start date.
        self.month_end = start.replace(day=1)
        self.month_first = (self.month_end - dt.timedelta(days=1)).replace(day=1)
        self.out = out
        self.timings: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    # -- helpers -------------------------------------------------------------------------------
    def _exec(self, sql: str, params: dict[str, Any] | None = None) -> int:
        with connection.cursor() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def _scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        with connection.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None

    def _step(self, name: str, fn: Callable[[], int | None], *, atomic: bool = True) -> None:
        began = time.perf_counter()
        if atomic:
            with transaction.atomic():
                rows = fn()
        else:
            rows = fn()
        took = time.perf_counter() - began
        self.timings[name] = round(took, 3)
        if rows is not None:
            self.counts[name] = rows
        self.out(f"  {name:<28} {rows if rows is not None else '':>12} rows {took:8.1f} s")

    def _session_setup(self) -> None:
        seed = int(self.seed)
        # u(key, salt): a uniform [0, 1) number fixed by (seed, salt, key). Inlined by the planner.
        self._exec(
            f"""
            CREATE OR REPLACE FUNCTION pg_temp.u(k bigint, salt int) RETURNS float8
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
            $$ SELECT (hashint8extended(k, {seed}::bigint * 1000 + salt) & 2147483647)::float8
                      / 2147483648.0 $$
            """
        )
        self._exec("SET synchronous_commit = off")
        self._exec("SET work_mem = '256MB'")
        self._exec("SET jit = off")  # compiling each step's expressions costs more than it saves
        self._exec("SET maintenance_work_mem = '512MB'")

    # -- steps ---------------------------------------------------------------------------------
    def reference(self) -> int:
        from apps.catalog.services import reference_load

        counts = reference_load()
        return counts["localities"]

    def facilities(self) -> int:
        n = self.plan["facilities"]
        self._exec(
            """
            DROP TABLE IF EXISTS gen_loc;
            CREATE TEMP TABLE gen_loc AS
            SELECT id, voivodeship_id, lat, lon, name,
                   ((sum(population) OVER w) - population)::float8 / (sum(population) OVER ()) AS lo,
                   (sum(population) OVER w)::float8 / (sum(population) OVER ()) AS hi,
                   row_number() OVER (PARTITION BY voivodeship_id ORDER BY population DESC, simc)
                       AS rank_in_voiv
            FROM catalog_locality
            WINDOW w AS (ORDER BY simc ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
            """
        )
        # The first 16 facilities sit in each voivodeship's largest locality; the rest follow population.
        self._exec(
            """
            DROP TABLE IF EXISTS gen_fac;
            CREATE TEMP TABLE gen_fac AS
            WITH f AS (
                SELECT i, pg_temp.u(i, 1) AS r FROM generate_series(0, %(n)s - 1) AS i
            ), firsts AS (
                SELECT (row_number() OVER (ORDER BY voivodeship_id) - 1)::int AS i, id
                FROM gen_loc WHERE rank_in_voiv = 1
            )
            SELECT f.i, nextval(pg_get_serial_sequence('catalog_facility', 'id')) AS id,
                   l.id AS locality_id, l.voivodeship_id, l.name AS city,
                   l.lat + (pg_temp.u(f.i, 2) - 0.5) * 0.08 AS lat,
                   l.lon + (pg_temp.u(f.i, 3) - 0.5) * 0.12 AS lon
            FROM f
            LEFT JOIN firsts ON firsts.i = f.i
            JOIN gen_loc l ON l.id = firsts.id OR (firsts.id IS NULL AND f.r >= l.lo AND f.r < l.hi)
            ORDER BY f.i;
            CREATE UNIQUE INDEX ON gen_fac (i);
            INSERT INTO catalog_facility
                (id, created_at, updated_at, nfz_code, name, address, lat, lon, phone,
                 obligatory_from, active, locality_id, voivodeship_id)
            SELECT id, now(), now(), %(prefix)s || lpad(i::text, 6, '0'),
                   'Poradnia specjalistyczna nr ' || (i + 1) || ' ' || city,
                   'ul. Zdrowa ' || (i %% 200 + 1) || ', ' || city,
                   lat, lon, '+48 22 ' || lpad((i %% 10000000)::text, 7, '0'),
                   NULL, true, locality_id, voivodeship_id
            FROM gen_fac ORDER BY i;
            """,
            {"n": n, "prefix": FACILITY_PREFIX},
        )
        return n

    def schedules(self) -> int:
        n = self.plan["schedules"]
        codes: list[tuple[int, str, int]] = []
        with connection.cursor() as cur:
            cur.execute("SELECT id, code FROM catalog_service ORDER BY code")
            codes = [(sid, code, SERVICE_WEIGHTS.get(code, 1)) for sid, code in cur.fetchall()]
        if len(codes) < 1:
            raise CommandError("no services in the catalogue: reference data did not load")
        # Service pool: the first len(codes) schedules get one service each, then weighted picks.
        pool = [sid for sid, _code, weight in codes for _ in range(weight)]
        ordered = [sid for sid, _code, _w in codes]
        self._exec(
            """
            DROP TABLE IF EXISTS gen_sched;
            CREATE TEMP TABLE gen_sched AS
            WITH s AS (
                SELECT j,
                       CASE WHEN j < cardinality(%(ordered)s::bigint[]) THEN (%(ordered)s::bigint[])[j + 1]
                            ELSE (%(pool)s::bigint[])[1 + floor(pg_temp.u(j, 10)
                                 * cardinality(%(pool)s::bigint[]))::int] END AS service_id,
                       (j %% %(nfac)s) AS fac_i
                FROM generate_series(0, %(n)s - 1) AS j
            )
            SELECT s.j, nextval(pg_get_serial_sequence('scheduling_schedule', 'id')) AS id,
                   s.service_id, f.id AS facility_id, f.locality_id, f.voivodeship_id, f.lat, f.lon,
                   sv.slot_minutes, sv.confirmation_required, sv.confirm_deadline_hours,
                   -- sessions start 07:00..10:30 and end by 19:00 at the latest
                   (420 + 30 * floor(pg_temp.u(s.j, 11) * 8))::int AS start_min,
                   0 AS n_per_day, false AS past_only
            FROM s JOIN gen_fac f ON f.i = s.fac_i JOIN catalog_service sv ON sv.id = s.service_id
            ORDER BY s.j;
            -- Past-only schedules (visit_factor > 1): another room of schedule (j - n) %% n's facility
            -- and service, with sessions in the reconciliation month only.
            INSERT INTO gen_sched
            SELECT %(n)s + e, nextval(pg_get_serial_sequence('scheduling_schedule', 'id')),
                   b.service_id, b.facility_id, b.locality_id, b.voivodeship_id, b.lat, b.lon,
                   b.slot_minutes, b.confirmation_required, b.confirm_deadline_hours,
                   (420 + 30 * floor(pg_temp.u(%(n)s + e, 11) * 8))::int, 0, true
            FROM generate_series(0, %(extra)s - 1) AS e JOIN gen_sched b ON b.j = e %% %(n)s
            ORDER BY e;
            UPDATE gen_sched SET n_per_day = LEAST(
                18 + floor(pg_temp.u(j, 12) * 12)::int, (1140 - start_min) / slot_minutes);
            CREATE UNIQUE INDEX ON gen_sched (j);
            INSERT INTO catalog_contract
                (created_at, updated_at, valid_from, valid_to, facility_id, service_id)
            SELECT DISTINCT now(), now(), DATE '2026-01-01', NULL::date, facility_id, service_id
            FROM gen_sched;
            INSERT INTO scheduling_schedule
                (id, created_at, updated_at, place, external_id, active, generated_until, version,
                 facility_id, practitioner_id, service_id)
            SELECT id, now(), now(), 'Gabinet ' || (j %% 20 + 1),
                   CASE WHEN past_only THEN 'GEN-P-' ELSE 'GEN-S-' END || j, NOT past_only,
                   CASE WHEN past_only THEN %(month_last)s::date ELSE %(until)s::date END, 1,
                   facility_id, NULL, service_id
            FROM gen_sched ORDER BY j;
            INSERT INTO scheduling_weeklytemplate
                (weekday, start_time, end_time, slot_minutes, valid_from, valid_to, kind, schedule_id)
            SELECT wd, make_time(start_min / 60, start_min %% 60, 0),
                   make_time((start_min + n_per_day * slot_minutes) / 60,
                             (start_min + n_per_day * slot_minutes) %% 60, 0),
                   slot_minutes, %(past)s::date, CASE WHEN past_only THEN %(month_last)s::date END,
                   'first', id
            FROM gen_sched CROSS JOIN generate_series(0, 4) AS wd;
            """,
            {
                "n": n,
                "extra": self.plan["past_schedules"],
                "month_last": self.month_end - dt.timedelta(days=1),
                "nfac": self.plan["facilities"],
                "ordered": ordered,
                "pool": pool,
                "until": self.start + dt.timedelta(days=self.days - 1),
                "past": self.month_first,
            },
        )
        return n + self.plan["past_schedules"]

    def patients(self) -> int:
        n = self.plan["patients"]
        last_m = _sql_text_array([m for m, _f in LAST_NAMES])
        last_f = _sql_text_array([f for _m, f in LAST_NAMES])
        first_m = _sql_text_array(FIRST_NAMES_M)
        first_f = _sql_text_array(FIRST_NAMES_F)
        # The interpolated name arrays are constants of this module, quoted by _sql_text_array.
        self._exec(
            f"""
            DROP TABLE IF EXISTS gen_pat;
            CREATE TEMP TABLE gen_pat AS
            WITH p AS (
                SELECT k, CASE WHEN pg_temp.u(k, 20) < 0.52 THEN 'F' ELSE 'M' END AS sex,
                       DATE '1930-01-01' + floor(pg_temp.u(k, 21) * 32500)::int AS birth_date
                FROM generate_series(0, %(n)s - 1) AS k
            ), numbered AS (
                SELECT p.*, (row_number() OVER (PARTITION BY birth_date, sex ORDER BY k) - 1)::int AS serial
                FROM p
            ), ten AS (
                SELECT numbered.*,
                       to_char(birth_date, 'YY')
                       || lpad((extract(month FROM birth_date)::int
                                + CASE WHEN birth_date >= DATE '2000-01-01' THEN 20 ELSE 0 END)::text, 2, '0')
                       || to_char(birth_date, 'DD')
                       || lpad((serial %% 1000)::text, 3, '0')
                       || ((serial / 1000) * 2 + CASE WHEN sex = 'M' THEN 1 ELSE 0 END)::text AS t
                FROM numbered
            )
            SELECT k, nextval(pg_get_serial_sequence('patients_patient', 'id')) AS id, sex, birth_date,
                   t || ((10 - (substr(t,1,1)::int + 3*substr(t,2,1)::int + 7*substr(t,3,1)::int
                                + 9*substr(t,4,1)::int + substr(t,5,1)::int + 3*substr(t,6,1)::int
                                + 7*substr(t,7,1)::int + 9*substr(t,8,1)::int + substr(t,9,1)::int
                                + 3*substr(t,10,1)::int) %% 10) %% 10)::text AS pesel
            FROM ten ORDER BY k;
            CREATE UNIQUE INDEX ON gen_pat (k);
            INSERT INTO patients_patient
                (id, created_at, updated_at, pesel, first_name, last_name, birth_date, sex, email, phone,
                 language, screening_risk_group, user_id)
            SELECT id, now(), now(), pesel,
                   CASE WHEN sex = 'F'
                        THEN ({first_f})[1 + floor(pg_temp.u(k, 22) * cardinality({first_f}))::int]
                        ELSE ({first_m})[1 + floor(pg_temp.u(k, 22) * cardinality({first_m}))::int] END,
                   CASE WHEN sex = 'F'
                        THEN ({last_f})[1 + floor(pg_temp.u(k, 23) * cardinality({last_f}))::int]
                        ELSE ({last_m})[1 + floor(pg_temp.u(k, 23) * cardinality({last_m}))::int] END,
                   birth_date, sex, '',
                   CASE WHEN pg_temp.u(k, 24) < 0.8
                        THEN '+48' || (500000000 + floor(pg_temp.u(k, 25) * 299999999))::bigint ELSE '' END,
                   CASE WHEN pg_temp.u(k, 26) < 0.03 THEN 'en' ELSE 'pl' END,
                   pg_temp.u(k, 27) < 0.05, NULL
            FROM gen_pat ORDER BY k;
            """,  # noqa: S608
            {"n": n},
        )
        return n

    def slots(self) -> int:
        # Future: 90 days from the start date; most slots free, the nearest weeks mostly booked.
        # Past: the previous month, nearly all booked (attended or no-show): the reconciliation month.
        self._exec(
            """
            DROP TABLE IF EXISTS gen_day;
            CREATE TEMP TABLE gen_day AS
            SELECT di, %(start)s::date + di AS day
            FROM generate_series(%(month_first)s::date - %(start)s::date, %(days)s - 1) AS di
            WHERE extract(isodow FROM %(start)s::date + di) <= 5
              AND (di >= 0 OR %(start)s::date + di < %(month_end)s::date)
              AND NOT EXISTS (SELECT 1 FROM catalog_holiday h WHERE h.date = %(start)s::date + di);
            """,
            {
                "start": self.start,
                "days": self.days,
                "month_first": self.month_first,
                "month_end": self.month_end,
            },
        )
        # Without indexes and foreign keys (BulkLoad), one transaction is fine; chunks of schedules
        # keep each INSERT's sort in work_mem.
        total = self.plan["schedules"] + self.plan["past_schedules"]
        for lo in range(0, total, SLOT_CHUNK_SCHEDULES):
            self._slots_chunk(lo, lo + SLOT_CHUNK_SCHEDULES)
        return int(
            self._scalar("SELECT count(*) FROM scheduling_slot sl JOIN gen_sched s ON s.id = sl.schedule_id")
        )

    def _slots_chunk(self, lo: int, hi: int) -> None:
        self._exec(
            """
            INSERT INTO scheduling_slot
                (schedule_id, facility_id, service_id, practitioner_id, voivodeship_id, locality_id, lat, lon,
                 start, "end", kind, status, hold_until, held_by_id, from_template, updated_at)
            SELECT s.id, s.facility_id, s.service_id, NULL, s.voivodeship_id, s.locality_id, s.lat, s.lon,
                   (d.day + make_interval(mins => s.start_min + i * s.slot_minutes))
                       AT TIME ZONE 'Europe/Warsaw',
                   (d.day + make_interval(mins => s.start_min + (i + 1) * s.slot_minutes))
                       AT TIME ZONE 'Europe/Warsaw',
                   CASE WHEN pg_temp.u(key, 30) < 0.1 THEN 'follow_up' ELSE 'first' END,
                   CASE WHEN pg_temp.u(key, 31) < 0.01 THEN 'blocked'
                        WHEN pg_temp.u(key, 32) < CASE WHEN d.di < 0 THEN 0.9
                                                       WHEN d.di < 14 THEN 0.55
                                                       WHEN d.di < 30 THEN 0.25
                                                       WHEN d.di < 60 THEN 0.08
                                                       ELSE 0.03 END THEN 'booked'
                        ELSE 'free' END,
                   NULL, NULL, true, now()
            FROM gen_sched s
            CROSS JOIN gen_day d
            CROSS JOIN LATERAL generate_series(0, s.n_per_day - 1) AS i
            CROSS JOIN LATERAL (SELECT (s.j::bigint * 1000 + d.di + 500) * 100 + i AS key) AS kk
            WHERE s.j >= %(lo)s AND s.j < %(hi)s AND (NOT s.past_only OR d.di < 0)
            ORDER BY s.id, d.day, i
            """,
            {"lo": lo, "hi": hi},
        )

    def _multiplier(self) -> int:
        n = self.plan["patients"]
        return next(p for p in PRIMES if math.gcd(p, n) == 1)

    def booked_slots(self) -> int:
        """The booked slots and the patient each goes to (`gen_book`, read by the steps after it; the
        last read of the slot table before its overlap rules are built). Live ones (future) use
        distinct (patient, service) pairs: the k-th booked slot of a service goes to patient
        (k*A + off) mod N, a bijection on 0..N-1, so no pair repeats; waiting-list entries continue
        the same permutation after them (`waiting`)."""
        n = self.plan["patients"]
        self._exec(
            """
            DROP TABLE IF EXISTS gen_book;
            CREATE TEMP TABLE gen_book AS
            SELECT sl.id AS slot_id, sl.service_id, sl.facility_id, sl.start, sl.start < %(start)s AS past,
                   (row_number() OVER (PARTITION BY sl.service_id, sl.start < %(start)s
                                       ORDER BY s.j, sl.start) - 1) AS k,
                   s.j AS sched_j,
                   -- a stable key for the random draws: slot ids depend on what the database held before
                   s.j::bigint * 100000000 + (extract(epoch FROM sl.start)::bigint / 60) %% 100000000 AS key,
                   s.confirmation_required, s.confirm_deadline_hours,
                   nextval(pg_get_serial_sequence('booking_registration', 'id')) AS reg_id
            FROM scheduling_slot sl JOIN gen_sched s ON s.id = sl.schedule_id
            WHERE sl.status = 'booked';
            ALTER TABLE gen_book ADD COLUMN patient_id bigint;
            UPDATE gen_book b SET patient_id = p.id
            FROM gen_pat p WHERE p.k = (b.k * %(mult)s + b.service_id * 7919) %% %(n)s;
            """,
            {"start": self._start_instant(), "mult": self._multiplier(), "n": n},
        )
        return int(self._scalar("SELECT count(*) FROM gen_book"))

    def bookings(self) -> int:
        """One registration + appointment per booked slot (`gen_book`). The live appointments' keys (the
        rules "one live appointment per registration, and per patient and service":
        apps/booking/partitions.py) are written afterwards in one statement, with the trigger that
        writes them one row at a time switched off."""
        keyed = appointment_partitions.is_partitioned()
        if keyed:
            appointment_partitions.live_key_trigger_set(enabled=False)
        rows = self._bookings()
        if keyed:
            appointment_partitions.live_keys_fill()
            appointment_partitions.live_key_trigger_set(enabled=True)
        return rows

    def _bookings(self) -> int:
        n = self.plan["patients"]
        over = self._scalar(
            "SELECT max(c) FROM (SELECT count(*) AS c FROM gen_book WHERE NOT past GROUP BY service_id) x"
        )
        if over and over + self.plan["waiting"] > n:
            raise CommandError("not enough patients for the booked slots: raise --scale")
        self._exec(
            """
            INSERT INTO booking_registration
                (id, created_at, updated_at, status, priority, urgent, joined_at, date_from, date_to,
                 max_distance_km, declined_slot_ids, closed_at, closed_reason, entitlement_id, facility_id,
                 locality_id, patient_id, practitioner_id, referral_id, service_id, voivodeship_id)
            SELECT reg_id, joined, joined,
                   CASE WHEN past THEN 'closed' ELSE 'booked' END, 0, pg_temp.u(key, 40) < 0.15,
                   joined, NULL, NULL, NULL, '{}',
                   CASE WHEN past THEN start + interval '30 minutes' END,
                   CASE WHEN past THEN CASE WHEN pg_temp.u(key, 41) < 0.06 THEN 'no_show'
                                            ELSE 'attended' END ELSE '' END,
                   NULL, NULL, NULL, patient_id, NULL, NULL, service_id, NULL
            FROM gen_book
            CROSS JOIN LATERAL (SELECT LEAST(start - interval '1 day', now())
                                       - make_interval(days => floor(pg_temp.u(key, 42) * 40)::int)
                                       AS joined) AS j
            ORDER BY reg_id;
            """
        )
        return self._exec(
            """
            INSERT INTO booking_appointment
                (created_at, updated_at, start, status, channel, confirm_by, confirmed_at, ended_at,
                 allocation,
                 version, facility_id, patient_id, reason_id, rescheduled_to_id, service_id, slot_id,
                 registration_id)
            SELECT r.created_at, r.created_at, b.start,
                   CASE WHEN b.past THEN r.closed_reason
                        WHEN b.confirmation_required AND b.start > now() + interval '3 days' THEN 'booked'
                        ELSE 'confirmed' END,
                   CASE WHEN u < 0.55 THEN 'web' WHEN u < 0.75 THEN 'desk' WHEN u < 0.95 THEN 'phone'
                        ELSE 'email' END,
                   CASE WHEN NOT b.past AND b.confirmation_required AND b.start > now() + interval '3 days'
                        THEN b.start - make_interval(hours => coalesce(b.confirm_deadline_hours, 48)) END,
                   CASE WHEN b.past OR NOT b.confirmation_required OR b.start <= now() + interval '3 days'
                        THEN r.created_at END,
                   CASE WHEN b.past THEN r.closed_at END,
                   '{}'::jsonb, 1, b.facility_id, b.patient_id, NULL, NULL, b.service_id, b.slot_id, b.reg_id
            FROM gen_book b JOIN booking_registration r ON r.id = b.reg_id
            CROSS JOIN LATERAL (SELECT pg_temp.u(b.key, 43) AS u) AS uu
            ORDER BY b.reg_id;
            """
        )

    def screening_records(self) -> int:
        """The record of every attended screening, as the database writes it when a screening becomes
        attended (booking 0011: its Warsaw date, source "cer"; the appointments here are inserted
        attended, which that trigger does not see): the screening interval rules read the records alone."""
        return self._exec(
            """
            INSERT INTO patients_screeningrecord (patient_id, service_id, performed_on, source)
            SELECT b.patient_id, b.service_id, (b.start AT TIME ZONE 'Europe/Warsaw')::date, 'cer'
            FROM gen_book b
            JOIN booking_registration r ON r.id = b.reg_id
            JOIN catalog_service svc ON svc.id = b.service_id
            WHERE b.past AND r.closed_reason = 'attended'
              AND (svc.eligible_sex <> '' OR COALESCE(svc.age_min, 0) <> 0
                   OR COALESCE(svc.interval_months, 0) <> 0)
            ORDER BY b.patient_id, b.service_id
            """
        )

    def _start_instant(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(0, 0), tzinfo=dt.UTC)

    def waiting(self) -> int:
        """The central waiting list: continues each service's patient permutation after its bookings,
        with the patients `waitlist_join` would take: the programme's sex and age (by birth year) on
        the start date, and, where the patients last month's visits went to allow it, none of them (a
        screening queue does not hold the women screened last month: the interval refuses them). So
        the k-th entry is the k-th such patient of the permutation from the end of the live bookings
        (or of last month's, when the patients left after those suffice)."""
        total = self.plan["waiting"]
        return self._exec(
            """
            WITH svc AS (
                SELECT service_id, count(*) AS schedules,
                       sum(count(*)) OVER () AS all_schedules
                FROM gen_sched WHERE NOT past_only GROUP BY service_id
            ), booked AS (
                SELECT service_id, count(*) FILTER (WHERE NOT past) AS live,
                       count(*) FILTER (WHERE past) AS past
                FROM gen_book GROUP BY service_id
            ), share AS (
                SELECT svc.service_id, c.eligible_sex, c.age_min, c.age_max,
                       coalesce(booked.live, 0) AS live, coalesce(booked.past, 0) AS past,
                       GREATEST(1, round(%(total)s::numeric * svc.schedules / svc.all_schedules))::int AS n
                FROM svc JOIN catalog_service c ON c.id = svc.service_id
                LEFT JOIN booked USING (service_id)
            ), want AS (
                -- patients looked at: every one fits a queue without a sex or age rule
                SELECT share.*,
                       n * CASE WHEN eligible_sex <> '' OR age_min IS NOT NULL OR age_max IS NOT NULL
                                THEN 40 ELSE 1 END AS looked
                FROM share
            ), span AS (
                SELECT want.*, first_k, LEAST(looked, %(n)s - first_k) AS scan
                FROM want CROSS JOIN LATERAL (
                    SELECT CASE WHEN GREATEST(live, past) + looked <= %(n)s THEN GREATEST(live, past)
                                ELSE live END AS first_k
                ) AS f
            ), fit AS (
                SELECT span.service_id, span.n, g.k,
                       (row_number() OVER (PARTITION BY span.service_id ORDER BY g.k) - 1)::int AS q
                FROM span
                CROSS JOIN LATERAL generate_series(first_k, first_k + scan - 1) AS g(k)
                JOIN gen_pat p ON p.k = (g.k * %(mult)s + span.service_id * 7919) %% %(n)s
                WHERE (span.eligible_sex = '' OR p.sex = span.eligible_sex)
                  AND (span.age_min IS NULL OR %(year)s - extract(year FROM p.birth_date) >= span.age_min)
                  AND (span.age_max IS NULL OR %(year)s - extract(year FROM p.birth_date) <= span.age_max)
            ), w AS (
                SELECT service_id, k, q FROM fit WHERE q < n
            ), ent AS (
                SELECT array_agg(id ORDER BY code) AS ids, array_agg(priority ORDER BY code) AS prio
                FROM catalog_entitlement
            )
            INSERT INTO booking_registration
                (created_at, updated_at, status, priority, urgent, joined_at, date_from, date_to,
                 max_distance_km, declined_slot_ids, closed_at, closed_reason, entitlement_id, facility_id,
                 locality_id, patient_id, practitioner_id, referral_id, service_id, voivodeship_id)
            SELECT joined, joined, 'waiting',
                   CASE WHEN e_i IS NOT NULL THEN ent.prio[e_i] ELSE 0 END,
                   pg_temp.u(key, 51) < 0.2, joined, NULL, NULL,
                   CASE WHEN pref >= 0.6 AND pref < 0.85 THEN 50 END, '{}', NULL, '',
                   CASE WHEN e_i IS NOT NULL THEN ent.ids[e_i] END, NULL,
                   CASE WHEN pref >= 0.6 AND pref < 0.85 THEN l.id END,
                   p.id, NULL, NULL, w.service_id,
                   CASE WHEN pref < 0.85 THEN l.voivodeship_id END
            FROM w
            CROSS JOIN ent
            CROSS JOIN LATERAL (SELECT w.service_id * 10000000 + w.q AS key) AS kk
            CROSS JOIN LATERAL (
                SELECT pg_temp.u(key, 52) AS pref,
                       now() - make_interval(mins => floor(pg_temp.u(key, 53) * 60 * 24 * 60)::int) AS joined,
                       CASE WHEN pg_temp.u(key, 54) < 0.02 AND cardinality(ent.ids) > 0
                            THEN 1 + floor(pg_temp.u(key, 55) * cardinality(ent.ids))::int END AS e_i,
                       pg_temp.u(key, 56) AS lu
            ) AS r
            JOIN gen_loc l ON r.lu >= l.lo AND r.lu < l.hi
            JOIN gen_pat p ON p.k = (w.k * %(mult)s + w.service_id * 7919) %% %(n)s
            ORDER BY w.service_id, w.q;
            """,
            {"total": total, "mult": self._multiplier(), "n": self.plan["patients"], "year": self.start.year},
        )

    def waiting_referrals(self) -> int:
        """An e-referral held by each waiting entry of a service that needs one (P1: a referral holds one
        registration at a time), so the waiting list's allocation finds entries the booking rules allow."""
        return self._exec(
            """
            WITH w AS (
                SELECT r.id, r.patient_id, r.service_id, r.joined_at, r.urgent
                FROM booking_registration r JOIN catalog_service svc ON svc.id = r.service_id
                WHERE r.status = 'waiting' AND svc.referral_required AND r.referral_id IS NULL
            ), made AS (
                INSERT INTO patients_referral
                    (created_at, updated_at, number, access_code, patient_id, service_id, category,
                     issued_on, valid_until, status, status_at)
                SELECT joined_at, joined_at, 'GENW' || lpad(id::text, 12, '0'),
                       lpad(mod(id, 10000)::text, 4, '0'), patient_id, service_id,
                       CASE WHEN urgent THEN 'urgent' ELSE 'stable' END,
                       joined_at::date - 7, joined_at::date + 358, 'registered', joined_at
                FROM w
                RETURNING id, number
            )
            UPDATE booking_registration r SET referral_id = made.id
            FROM made WHERE made.number = 'GENW' || lpad(r.id::text, 12, '0')
            """
        )

    def visits(self) -> int:
        """What facilities report for the past month: every attended visit, plus the usual problems
        (claims without a registration, emergencies, the same registration claimed twice, a visit
        reported by another facility than the one booked). Their keys (the rule "a facility reports a
        visit id once": apps/reconciliation/partitions.py) are written afterwards in one statement, with
        the trigger that writes them one row at a time switched off."""
        from apps.reconciliation import partitions as reconciliation_partitions

        keyed = reconciliation_partitions.is_partitioned()
        if keyed:
            reconciliation_partitions.key_trigger_set(enabled=False)
        rows = self._exec(
            """
            WITH attended AS (
                SELECT b.slot_id, b.key, b.facility_id, b.service_id, b.start, b.patient_id, p.pesel
                FROM gen_book b JOIN gen_pat p ON p.id = b.patient_id
                JOIN booking_registration r ON r.id = b.reg_id
                WHERE b.past AND r.closed_reason = 'attended'
            ), other_fac AS (
                SELECT service_id, array_agg(DISTINCT facility_id) AS ids FROM gen_sched
                WHERE NOT past_only GROUP BY service_id
            ), extra AS (
                -- 4 %% no registration, 1 %% emergency, 1 %% duplicate claim, 1 %% other facility
                SELECT a.*, x.kind FROM attended a
                CROSS JOIN LATERAL (
                    SELECT CASE WHEN v < 0.04 THEN 'noreg' WHEN v < 0.05 THEN 'emergency'
                                WHEN v < 0.06 THEN 'duplicate' WHEN v < 0.07 THEN 'otherfac' END AS kind
                    FROM (SELECT pg_temp.u(a.key, 60) AS v) AS vv
                ) AS x
                WHERE x.kind IS NOT NULL
            ), rows AS (
                SELECT facility_id, 'V' || key AS fvid, pesel, patient_id, service_id, start, false AS em
                FROM attended
                UNION ALL
                SELECT CASE WHEN e.kind = 'otherfac'
                            THEN o.ids[1 + floor(pg_temp.u(e.key, 61) * cardinality(o.ids))::int]
                            ELSE e.facility_id END,
                       'X' || e.key,
                       CASE WHEN e.kind IN ('noreg', 'emergency') THEN p.pesel ELSE e.pesel END,
                       CASE WHEN e.kind IN ('noreg', 'emergency') THEN p.id ELSE e.patient_id END,
                       e.service_id, e.start + interval '2 hours', e.kind = 'emergency'
                FROM extra e
                JOIN other_fac o ON o.service_id = e.service_id
                JOIN gen_pat p ON p.k = floor(pg_temp.u(e.key, 62) * %(n)s)::int
            )
            INSERT INTO reconciliation_reportedvisit
                (facility_id, facility_visit_id, patient_pesel, patient_id, service_id, visit_at, emergency,
                 batch_id, source_row, created_at)
            SELECT facility_id, fvid, pesel, patient_id, service_id, start, em, NULL, NULL, now()
            FROM rows ORDER BY start, facility_id, fvid;
            """,
            {"n": self.plan["patients"]},
        )
        if keyed:
            reconciliation_partitions.keys_fill()
            reconciliation_partitions.key_trigger_set(enabled=True)
        return rows

    def analyze(self, *, slots: bool) -> None:
        """VACUUM ANALYZE the generated tables: the slot table alone (`slots`) or all the others."""
        if slots:
            self._exec(f"{self._vacuum_analyze()} {partitions.TABLE}")
            return
        tables = [
            "catalog_facility",
            "catalog_contract",
            "scheduling_schedule",
            "scheduling_weeklytemplate",
            "patients_patient",
            "patients_referral",
            "patients_screeningrecord",
            "booking_registration",
            "booking_appointment",
            "booking_liveappointment",
        ]
        if self.has_visits():
            tables.append("reconciliation_reportedvisit")
            if "reconciliation_visitkey" in connection.introspection.table_names():
                tables.append("reconciliation_visitkey")
        for table in tables:
            self._exec(f"{self._vacuum_analyze()} {table}")

    # Loaded after the slots' commit, while the background builds' transactions were open: the VACUUM
    # ANALYZE above gave them statistics but could not mark their pages all-visible (a row is visible
    # to all only once no transaction older than it is running), so index-only scans of them read the
    # heap row by row, as they never would on a server whose autovacuum has passed: the count of a
    # waiting-list place walked 27,000 entries of the cardiology queue in 23 ms instead of 4.
    # INDEX_CLEANUP ON: the waiting-list referrals step rewrote 134,000 entries (1.7 % of the pages),
    # under the 2 % below which VACUUM leaves the indexes alone; their dead entries would each still
    # send an index-only scan to the heap (13 ms).
    LOADED_DURING_BUILDS = (
        "patients_referral",
        "patients_screeningrecord",
        "booking_registration",
        "booking_appointment",
        "booking_liveappointment",
        "reconciliation_reportedvisit",
        "reconciliation_visitkey",
    )

    def visibility_map(self, tables: tuple[str, ...]) -> None:
        """VACUUM the tables (their visibility maps), once the background builds have ended."""
        if connection.in_atomic_block:
            return
        # The load committed asynchronously (`synchronous_commit = off`), and VACUUM marks a page
        # all-visible only once its rows carry the inserter's commit hint, which waits until the WAL of
        # that commit is on disk: one transaction that writes WAL and commits synchronously flushes it.
        self._exec("SET synchronous_commit = on")
        self._exec("CREATE TEMP TABLE gen_wal_flush (x int); DROP TABLE gen_wal_flush")
        self._exec("SET synchronous_commit = off")
        present = set(connection.introspection.table_names())
        for table in tables:
            if table in present:
                self._exec(f"VACUUM (INDEX_CLEANUP ON) {table}")

    @staticmethod
    def _vacuum_analyze() -> str:
        # VACUUM (visibility map: index-only scans) cannot run inside a transaction, e.g. in tests.
        return "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"

    @staticmethod
    def has_visits() -> bool:
        """Only when the reconciliation app has its model and its table (migrated)."""
        try:
            model = apps.get_model("reconciliation", "ReportedVisit")
        except LookupError:
            return False
        return model._meta.db_table in connection.introspection.table_names()

    def slot_partitions(self) -> int:
        """The month partitions the slots go to (from the reconciliation month to the last day), made
        before the load so that it fills them without their indexes."""
        return len(partitions.partitions_ensure(self.month_first, self.start + dt.timedelta(days=self.days)))

    def appointment_partitions(self) -> int:
        """The appointments' month partitions, as the slots' (an appointment lies in its slot's month)."""
        from apps.core.partitions import partitions_ensure

        return len(
            partitions_ensure(
                appointment_partitions.APPOINTMENTS,
                self.month_first,
                self.start + dt.timedelta(days=self.days),
            )
        )

    def visit_partitions(self) -> int:
        """The reconciliation month's partitions of the reported visits (made before the load) and of
        the verdicts its runs write (normally made by the migration, or ahead by the daily job)."""
        from apps.core.partitions import partitions_ensure
        from apps.reconciliation.partitions import VERDICTS, VISITS

        return sum(len(partitions_ensure(t, self.month_first, self.month_first)) for t in (VISITS, VERDICTS))

    @contextlib.contextmanager
    def _bulk(
        self, label: str, *tables: str, parallel: int = 1, background: bool = False
    ) -> Iterator[BulkLoad]:
        """The big tables are filled without their secondary indexes and constraints (BulkLoad)."""
        with BulkLoad(*tables, out=self.out, parallel=parallel, background=background) as load:
            yield load
            self.out(f"  {label}: recreating indexes and constraints")
        self.timings[f"{label} indexes+constraints"] = round(load.rebuild_seconds, 3)
        self.out(f"  {label + ' indexes+constraints':<41} {load.rebuild_seconds:8.1f} s")

    def run(self, *, with_visits: bool = True) -> dict[str, Any]:
        began = time.perf_counter()
        self._session_setup()
        try:
            self._step("reference data", self.reference)
            self._step("facilities", self.facilities)
            self._step("schedules+contracts", self.schedules)
            with self._bulk("patients", "patients_patient"):
                self._step("patients", self.patients)
            if partitions.is_partitioned():
                self._step("slot partitions", self.slot_partitions, atomic=False)
            booking_tables = ["booking_registration", "booking_appointment", "patients_screeningrecord"]
            if appointment_partitions.is_partitioned():
                # Before the slots' load: a new appointment partition gets its key into the slot
                # table, a lock the slot partitions' background builds would hold it from for minutes.
                self._step("appointment partitions", self.appointment_partitions, atomic=False)
                booking_tables.append(appointment_partitions.KEY_TABLE)
            # The partitions' overlap rules are built in the background (after the commit, outside
            # a transaction) while the steps below, which do not touch the slot table, go on.
            with self._bulk("slots", "scheduling_slot", parallel=PARALLEL_BUILDS, background=True) as slots:
                self._step("slots", self.slots, atomic=False)
                self._step("booked slots", self.booked_slots, atomic=False)
            with self._bulk("bookings", *booking_tables):
                self._step("registrations+appointments", self.bookings)
                self._step("screening records", self.screening_records)
                self._step("waiting list", self.waiting)
                self._step("waiting-list referrals", self.waiting_referrals)
            if with_visits and self.has_visits():
                from apps.reconciliation import partitions as reconciliation_partitions

                visit_tables = ["reconciliation_reportedvisit"]
                if reconciliation_partitions.is_partitioned():
                    self._step("visit partitions", self.visit_partitions, atomic=False)
                    visit_tables.append(reconciliation_partitions.KEY_TABLE)
                with self._bulk("visits", *visit_tables):
                    self._step("reported visits", self.visits)
            else:
                self.out("  reported visits              skipped: no reconciliation.ReportedVisit model")
            vacuum_began = time.perf_counter()
            self.analyze(slots=False)  # VACUUM cannot run inside a transaction block: autocommit here
            waited = slots.builds_wait()
            self.timings["slots: waiting for the overlap rules, keys into the table"] = round(waited, 3)
            self.analyze(slots=True)
            self.visibility_map(self.LOADED_DURING_BUILDS)
            self.timings["vacuum analyze"] = round(time.perf_counter() - vacuum_began - waited, 3)
        finally:
            # The connection goes on serving (the benchmarks run in the same process): no
            # asynchronous commit or large work_mem may leak into what they measure.
            self._exec("RESET synchronous_commit; RESET work_mem; RESET jit; RESET maintenance_work_mem")
        self.timings["total"] = round(time.perf_counter() - began, 3)
        return {
            "scale": self.scale,
            "seed": self.seed,
            "start": self.start.isoformat(),
            "visit_month": self.month_first.isoformat(),
            "plan": self.plan,
            "rows": self.counts,
            "seconds": self.timings,
        }


def generated_facilities() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM catalog_facility WHERE nfz_code LIKE %s", [FACILITY_PREFIX + "%"])
        return int(cur.fetchone()[0])


def other_data() -> str:
    """What the database holds besides reference data and generated rows ('' when nothing): real or
    demo facilities and patients."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM catalog_facility WHERE nfz_code NOT LIKE %s),"
            " (SELECT count(*) FROM patients_patient)",
            [FACILITY_PREFIX + "%"],
        )
        facilities, patients = cur.fetchone()
    held = [f"{n} {what}" for n, what in ((facilities, "facilities"), (patients, "patients")) if n]
    return " and ".join(held)


def national_data_generate(
    *,
    scale: float,
    seed: int,
    start: dt.date,
    days: int = DAYS,
    visit_factor: float = 1.0,
    allow_existing_data: bool = False,
    out: Callable[[str], None] = lambda _line: None,
) -> dict[str, Any]:
    if scale <= 0 or scale > 10:
        raise CommandError("--scale must be in (0, 10]")
    existing = generated_facilities()
    if existing:
        raise CommandError(
            f"generated data already present ({existing} {FACILITY_PREFIX}* facilities): "
            "use an empty database"
        )
    others = other_data()
    if others and not allow_existing_data:
        raise CommandError(
            f"this database already holds {others}: the generator adds millions of rows and rebuilds "
            "the indexes of the big tables, so it only runs on an empty (migrated) database. Point "
            "DATABASE_URL at one (`make bench` uses its own, cer_bench), or pass --allow-existing-data"
        )
    if not 1 <= days <= 366:
        raise CommandError("--days must be in 1..366")
    if not 1 <= visit_factor <= 10:
        raise CommandError("--visit-factor must be in 1..10")
    return Generator(scale=scale, seed=seed, start=start, out=out, days=days, visit_factor=visit_factor).run()


class Command(BaseCommand):
    help = "Generate a national-size data set (set-based SQL, reproducible with --seed) for the benchmarks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scale", type=float, default=0.01, help="1.0 = national size (default 0.01)")
        parser.add_argument("--seed", type=int, default=1, help="same seed + start date = same rows")
        parser.add_argument("--days", type=int, default=DAYS, help="days of future slots (default 90)")
        parser.add_argument(
            "--visit-factor",
            type=float,
            default=1.0,
            help="the reconciliation month has this many times the weekly sessions (extra past-only "
            "schedules): 1.0 gives ~4.5 M reported visits at scale 1.0, 2.25 the issue's ~10 M",
        )
        parser.add_argument(
            "--start",
            type=dt.date.fromisoformat,
            default=None,
            help="first day of the schedule (default: today, UTC); the reconciliation month precedes it",
        )
        parser.add_argument(
            "--allow-existing-data",
            action="store_true",
            help="generate into a database that already holds facilities or patients (never production)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        start = options["start"] or dt.datetime.now(dt.UTC).date()
        self.stdout.write(
            f"Generating national data: scale {options['scale']}, seed {options['seed']}, start {start}"
        )
        result = national_data_generate(
            scale=options["scale"],
            seed=options["seed"],
            start=start,
            days=options["days"],
            visit_factor=options["visit_factor"],
            allow_existing_data=options["allow_existing_data"],
            out=self.stdout.write,
        )
        self.stdout.write(f"Done in {result['seconds']['total']:.1f} s: {result['rows']}")
