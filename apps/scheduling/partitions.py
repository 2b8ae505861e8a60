"""Month partitions of the slot table: every piece of partition DDL lives here (issue 19).

`scheduling_slot` is range-partitioned on `start`, one partition per month, the months bounded at
**midnight of the 1st in Europe/Warsaw** (where every report, template and staff page counts its
months; a template session never crosses local midnight, so no generated slot crosses a boundary).
A DEFAULT partition takes whatever falls outside the month partitions (a slot published beyond the
partitions made ahead, tests' slots in far years, history older than the first partition).

What PostgreSQL 15 cannot declare on a partitioned parent, and how it still holds:

- **The primary key** must contain the partition key: the table's real key is `(id, start)`; Django
  keeps `id` as the model's primary key, and `id` stays unique because only the identity sequence
  writes it. The one foreign key into the table, `booking_appointment (slot_id, start)`, is declared
  here in SQL (`APPOINTMENT_FK`; the model's ForeignKey has `db_constraint=False`): an appointment's
  `start` is its slot's (`booking.services._transitions.appointment_new`), and no path moves a slot.
- **The overlap rule** (no two live slots of one schedule overlap, the GiST exclusion constraint
  over `cer_slot_span`, scheduling migration 0003) is declared on **every partition**, DEFAULT
  included (`overlap_rule_sql`). A partition's constraint cannot see its neighbour, so two slots
  in different partitions are checked by a trigger on the parent (`OVERLAP_TRIGGER_SQL`): a slot is
  at most `SLOT_MAX_MINUTES` long (a CHECK on the table, and the catalogue's `max_slot_minutes`
  is bounded by the same number), so two slots of different partitions can only overlap if one
  crosses a month boundary and the other starts less than that length after it. The trigger's WHEN
  clause selects exactly those live slots (both slots of such a pair satisfy it; evaluated in C, so
  the other 29 days of a month pay nothing); for them it takes a transaction-level advisory lock on
  the schedule, so the second of two concurrent writers waits for the first to commit and then sees
  its row (READ COMMITTED: each statement of the trigger takes a new snapshot), and refuses an
  overlap with SQLSTATE 23P01 `exclusion_violation`, as the constraint itself would.

Maintenance (`partitions_maintain`, the periodic task `scheduling: slot partitions`): partitions are
made `CER_SLOT_PARTITIONS_AHEAD` months ahead of the current one, and at least as far as the
catalogue's longest publish horizon, so published slots do not pile up in DEFAULT; rows already in
DEFAULT for a new month are moved into it (PostgreSQL refuses to attach a partition whose range has
rows in DEFAULT). Partitions that ended more than `CER_SLOT_PARTITIONS_KEEP_MONTHS` months ago are
detached (plain DETACH: CONCURRENTLY cannot run with a DEFAULT partition, nor in a transaction) and
left as standalone tables for archiving; PostgreSQL refuses to detach one that appointments still
refer to, and such a partition is kept and reported. Each step is its own short transaction under an
advisory lock, with a lock timeout: the task is idempotent and two runs at once do each step once.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from apps.catalog.models import SLOT_MAX_MINUTES

log = logging.getLogger(__name__)

WARSAW = ZoneInfo("Europe/Warsaw")
TABLE = "scheduling_slot"
DEFAULT_PARTITION = "scheduling_slot_default"
PARTITION_NAME = re.compile(r"^scheduling_slot_p(\d{4})_(\d{2})$")
# pg_advisory_xact_lock(int, int): the first key names the use (booking's core uses 19_000).
LOCK_CLASS_MAINTENANCE = 19_019
LOCK_CLASS_SCHEDULE = 19_020
LOCK_TIMEOUT = "5s"  # a DDL lock request never queues long behind readers (and everyone behind it)

APPOINTMENT_TABLE = "booking_appointment"
APPOINTMENT_FK = "booking_appointment_slot_start_fk"
APPOINTMENT_FK_SQL = (
    f"ALTER TABLE {APPOINTMENT_TABLE} ADD CONSTRAINT {APPOINTMENT_FK} FOREIGN KEY (slot_id, start) "
    f"REFERENCES {TABLE} (id, start) DEFERRABLE INITIALLY DEFERRED"
)

# The same span and condition as the constraint of migration 0003 (Django's SQL for it).
OVERLAP_RULE = """EXCLUDE USING gist (cer_slot_span(schedule_id, start, "end") WITH &&)
    WHERE (NOT (status = 'cancelled'))"""

OVERLAP_FUNCTION = "cer_slot_overlap_across_months"
OVERLAP_TRIGGER_INSERT = "slot_overlap_across_months_insert"
OVERLAP_TRIGGER_UPDATE = "slot_overlap_across_months_update"
# A boundary lies in (start - max length, end]: the slot crosses one, or starts within the longest
# slot after one. Month of Warsaw wall-clock time, as the partitions.
NEAR_BOUNDARY = f"""date_trunc('month', (NEW.start - interval '{SLOT_MAX_MINUTES} minutes')
                       AT TIME ZONE 'Europe/Warsaw')
         <> date_trunc('month', NEW."end" AT TIME ZONE 'Europe/Warsaw')"""
OVERLAP_TRIGGER_SQL = f"""
CREATE OR REPLACE FUNCTION {OVERLAP_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One schedule's boundary slots are written one at a time: a concurrent writer waits here until
    -- this transaction ends, and its own check then sees this row.
    PERFORM pg_advisory_xact_lock({LOCK_CLASS_SCHEDULE}, hashint8(NEW.schedule_id));
    IF EXISTS (
        SELECT 1 FROM {TABLE} s
        WHERE s.schedule_id = NEW.schedule_id AND s.id <> NEW.id AND s.status <> 'cancelled'
          AND s.start < NEW."end" AND s.start > NEW.start - interval '{SLOT_MAX_MINUTES} minutes'
          AND cer_slot_span(s.schedule_id, s.start, s."end")
              && cer_slot_span(NEW.schedule_id, NEW.start, NEW."end")
    ) THEN
        RAISE EXCEPTION 'conflicting key value violates exclusion constraint "slot_no_overlap"'
            USING ERRCODE = 'exclusion_violation', CONSTRAINT = 'slot_no_overlap', TABLE = '{TABLE}',
                  DETAIL = format('A live slot of schedule %s overlaps %s - %s across a month boundary.',
                                  NEW.schedule_id, NEW.start, NEW."end");
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER {OVERLAP_TRIGGER_INSERT} BEFORE INSERT ON {TABLE} FOR EACH ROW
    WHEN (NEW.status <> 'cancelled' AND {NEAR_BOUNDARY})
    EXECUTE FUNCTION {OVERLAP_FUNCTION}();
CREATE TRIGGER {OVERLAP_TRIGGER_UPDATE} BEFORE UPDATE OF start, "end", status, schedule_id ON {TABLE}
    FOR EACH ROW
    WHEN (NEW.status <> 'cancelled'
          AND (OLD.status = 'cancelled' OR OLD.start <> NEW.start OR OLD."end" <> NEW."end"
               OR OLD.schedule_id <> NEW.schedule_id)
          AND {NEAR_BOUNDARY})
    EXECUTE FUNCTION {OVERLAP_FUNCTION}();
"""
OVERLAP_TRIGGER_DROP_SQL = f"""
DROP TRIGGER IF EXISTS {OVERLAP_TRIGGER_INSERT} ON {TABLE};
DROP TRIGGER IF EXISTS {OVERLAP_TRIGGER_UPDATE} ON {TABLE};
DROP FUNCTION IF EXISTS {OVERLAP_FUNCTION}();
"""

# Live slots of one schedule in different partitions that overlap (what the trigger refuses one by
# one), set-based: after a bulk load with the trigger disabled. Every such pair has a slot crossing
# a month boundary, so the outer side is only those.
CROSS_MONTH_OVERLAPS_SQL = f"""
SELECT a.id, b.id FROM {TABLE} a
JOIN {TABLE} b ON b.schedule_id = a.schedule_id AND b.id <> a.id AND b.status <> 'cancelled'
               AND b.start >= a.start AND b.start < a."end"
               AND cer_slot_span(a.schedule_id, a.start, a."end")
                   && cer_slot_span(b.schedule_id, b.start, b."end")
WHERE a.status <> 'cancelled'
  AND date_trunc('month', a.start AT TIME ZONE 'Europe/Warsaw')
      <> date_trunc('month', a."end" AT TIME ZONE 'Europe/Warsaw')
LIMIT 1
"""


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


# --- months and names ---------------------------------------------------------------------------------


def month_of(instant: dt.datetime | dt.date) -> dt.date:
    """The first day of the Warsaw month holding an instant (or of a date's month)."""
    if isinstance(instant, dt.datetime):
        instant = instant.astimezone(WARSAW).date()
    return instant.replace(day=1)


def add_months(month: dt.date, months: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[midnight of the 1st, midnight of the next 1st) in Warsaw, as aware instants."""
    lower = dt.datetime.combine(month.replace(day=1), dt.time(), tzinfo=WARSAW)
    return lower, dt.datetime.combine(add_months(month, 1), dt.time(), tzinfo=WARSAW)


def partition_name(month: dt.date) -> str:
    return f"{TABLE}_p{month:%Y_%m}"


def overlap_rule_name(partition: str) -> str:
    return f"{partition}_no_overlap"


def overlap_rule_sql(partition: str) -> str:
    """The overlap rule on one partition (its GiST index is built with it)."""
    return f"ALTER TABLE {_q(partition)} ADD CONSTRAINT {_q(overlap_rule_name(partition))} {OVERLAP_RULE}"


def _literal(instant: dt.datetime) -> str:
    return f"'{instant.isoformat()}'"


# --- what exists ------------------------------------------------------------------------------------


def is_partitioned() -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cur.fetchone()
    return bool(row and row[0] == "p")


def partition_names() -> list[str]:
    """Every partition of the slot table (month partitions in month order, then DEFAULT)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [TABLE],
        )
        names = [row[0] for row in cur.fetchall()]
    return sorted(names, key=lambda n: (n == DEFAULT_PARTITION, n))


def partition_months() -> list[dt.date]:
    months = []
    for name in partition_names():
        match = PARTITION_NAME.match(name)
        if match:
            months.append(dt.date(int(match[1]), int(match[2]), 1))
    return months


def partitions_missing_overlap_rule() -> list[str]:
    """Partitions without their exclusion constraint (none, unless a bulk load is under way)."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass(%s)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'x')
            ORDER BY 1
            """,
            [TABLE],
        )
        return [row[0] for row in cur.fetchall()]


# --- creating partitions --------------------------------------------------------------------------


def create_month_partition(month: dt.date, *, overlap_rule: bool = True) -> bool:
    """Create the month's partition if it does not exist, moving its rows out of DEFAULT. In the
    caller's transaction. Returns whether it was created.

    The table is made standalone and then attached: ATTACH takes SHARE UPDATE EXCLUSIVE on the parent
    (bookings go on), where CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE until commit.
    The parent's indexes, foreign keys and triggers are added to it by the ATTACH (on an empty or
    small table: instant); the overlap rule is added before, unless a bulk load builds it later.
    """
    name = partition_name(month)
    lower, upper = month_bounds(month)
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cur.fetchone()[0]:
            return False
        cur.execute(
            f"CREATE TABLE {_q(name)} (LIKE {_q(TABLE)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING STORAGE)"
        )
        moved = _move_out_of_default(cur, name, lower, upper)
        if overlap_rule:
            cur.execute(overlap_rule_sql(name))
        cur.execute(
            f"ALTER TABLE {_q(TABLE)} ATTACH PARTITION {_q(name)} "
            f"FOR VALUES FROM ({_literal(lower)}) TO ({_literal(upper)})"
        )
        if moved:
            _restore_appointment_fk(cur)
    return True


def _move_out_of_default(cur, name: str, lower: dt.datetime, upper: dt.datetime) -> bool:
    """Move DEFAULT's rows of [lower, upper) into the new table. Returns whether the appointments'
    foreign key had to be dropped for it (re-added by the caller after the ATTACH).

    PostgreSQL checks a row deleted from a referenced partition against the referencing rows with
    that partition alone in view, even when the same key is inserted elsewhere in the transaction:
    moving a slot that an appointment refers to fails the deferred check at commit. So when such a
    slot is among the moved rows, the foreign key is dropped for the move and added back NOT VALID
    (enforced for every new write at once) and validated afterwards without blocking writes.
    """
    if not _exists(DEFAULT_PARTITION):
        return False
    params = {"lower": lower, "upper": upper}
    cur.execute(
        f"SELECT EXISTS (SELECT 1 FROM {_q(DEFAULT_PARTITION)} "
        "WHERE start >= %(lower)s AND start < %(upper)s)",
        params,
    )
    if not cur.fetchone()[0]:
        return False
    cur.execute(
        f"""SELECT EXISTS (SELECT 1 FROM {_q(DEFAULT_PARTITION)} d
                           JOIN {APPOINTMENT_TABLE} a ON a.slot_id = d.id AND a.start = d.start
                           WHERE d.start >= %(lower)s AND d.start < %(upper)s)""",
        params,
    )
    referenced = bool(cur.fetchone()[0])
    if referenced:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending trigger events
        cur.execute(f"ALTER TABLE {APPOINTMENT_TABLE} DROP CONSTRAINT {APPOINTMENT_FK}")
    cur.execute(
        f"""WITH moved AS (DELETE FROM {_q(DEFAULT_PARTITION)}
                           WHERE start >= %(lower)s AND start < %(upper)s RETURNING *)
            INSERT INTO {_q(name)} SELECT * FROM moved""",
        params,
    )
    log.info("slot partition %s: %s rows moved out of the DEFAULT partition", name, cur.rowcount)
    return referenced


def _restore_appointment_fk(cur) -> None:
    cur.execute(f"{APPOINTMENT_FK_SQL} NOT VALID")
    cur.execute(f"ALTER TABLE {APPOINTMENT_TABLE} VALIDATE CONSTRAINT {APPOINTMENT_FK}")


def _exists(relation: str) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [relation])
        return bool(cur.fetchone()[0])


def partitions_ensure(first: dt.date, last: dt.date, *, overlap_rule: bool = True) -> list[str]:
    """Month partitions for every month from `first`'s to `last`'s, each in its own transaction (or in
    the caller's). Returns the names created."""
    created = []
    month = month_of(first)
    while month <= month_of(last):
        with transaction.atomic():
            _lock_maintenance()
            if create_month_partition(month, overlap_rule=overlap_rule):
                created.append(partition_name(month))
        month = add_months(month, 1)
    return created


def _lock_maintenance() -> None:
    with connection.cursor() as cur:
        cur.execute("SET LOCAL lock_timeout = %s", [LOCK_TIMEOUT])
        cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", [LOCK_CLASS_MAINTENANCE])


# --- maintenance ------------------------------------------------------------------------------------


@dataclass
class MaintenanceReport:
    created: list[str] = field(default_factory=list)
    detached: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # partition -> why it was not detached


def months_ahead() -> int:
    """The setting, and at least the catalogue's longest publish horizon (slots may be published
    that far ahead: without a partition they would all land in DEFAULT)."""
    from apps.catalog.models import Service

    days = max(Service.objects.values_list("publish_horizon_days", flat=True), default=0)
    return max(settings.CER_SLOT_PARTITIONS_AHEAD, -(-days // 28))


def partitions_maintain(
    *, now: dt.datetime, ahead: int | None = None, keep: int | None = None
) -> MaintenanceReport:
    """Create the partitions up to `ahead` months after the current one and detach those that ended
    more than `keep` months before it (0: never). Idempotent; concurrent runs do each step once."""
    ahead = months_ahead() if ahead is None else ahead
    keep = settings.CER_SLOT_PARTITIONS_KEEP_MONTHS if keep is None else keep
    current = month_of(now)
    report = MaintenanceReport(created=partitions_ensure(current, add_months(current, ahead)))
    if keep > 0:
        oldest_kept = add_months(current, -keep)
        for month in partition_months():
            if month < oldest_kept:
                _detach(partition_name(month), report)
    return report


def _detach(name: str, report: MaintenanceReport) -> None:
    try:
        with transaction.atomic():
            _lock_maintenance()
            if name not in partition_names():
                return  # a concurrent run detached it
            with connection.cursor() as cur:
                cur.execute(f"ALTER TABLE {_q(TABLE)} DETACH PARTITION {_q(name)}")
        report.detached.append(name)
        log.info("slot partition %s detached (archive and drop it)", name)
    except DatabaseError as exc:
        # Appointments still refer to its slots (or the lock timed out): kept, tried again next run.
        report.kept[name] = str(exc).splitlines()[0]
        log.warning("slot partition %s kept: %s", name, report.kept[name])


# --- bulk loads (the data generator) -----------------------------------------------------------------


def overlap_trigger_set(*, enabled: bool) -> None:
    """Switch the cross-month check off for a bulk load (it would probe each boundary row without the
    indexes the load dropped) and on again; `cross_month_overlaps_check` then does it set-based."""
    action = "ENABLE" if enabled else "DISABLE"
    with connection.cursor() as cur:
        for trigger in (OVERLAP_TRIGGER_INSERT, OVERLAP_TRIGGER_UPDATE):
            cur.execute(f"ALTER TABLE {_q(TABLE)} {action} TRIGGER {_q(trigger)}")


def cross_month_overlaps_check() -> None:
    """Raise IntegrityError (as the trigger would) if two live slots of a schedule in different
    partitions overlap."""
    from django.db import IntegrityError

    with connection.cursor() as cur:
        cur.execute(CROSS_MONTH_OVERLAPS_SQL)
        pair = cur.fetchone()
    if pair:
        raise IntegrityError(
            f'slots {pair[0]} and {pair[1]} overlap across a month boundary ("slot_no_overlap")'
        )


def overlap_rules_build(
    partitions: Iterable[str],
    *,
    workers: int,
    setup: Iterable[str] = (),
    out: Callable[[str], None] = lambda _line: None,
) -> None:
    """Add the overlap rule to each partition, `workers` partitions at a time, each in its own
    session and transaction (a GiST build runs in one backend: separate partitions use separate
    cores). The rows must be committed. The largest partitions go first."""
    names = list(partitions)
    if not names:
        return
    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r' "
            "ORDER BY pg_relation_size(oid) DESC, relname",
            [names],
        )
        names = [row[0] for row in cur.fetchall()]

    def build(name: str) -> None:
        from django.db import connections

        own: BaseDatabaseWrapper = connections.create_connection("default")
        try:
            with own.cursor() as cur:
                for statement in setup:
                    cur.execute(statement)
                began = dt.datetime.now()
                cur.execute(overlap_rule_sql(name))
                out(f"    {overlap_rule_name(name):<60} {(dt.datetime.now() - began).total_seconds():6.1f} s")
        finally:
            own.close()

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(build, name) for name in names]:
            future.result()


# --- the migration: from one table to partitions and back ----------------------------------------------

# What the table carries besides columns, NOT NULL and CHECK constraints (LIKE copies those): foreign
# keys, unique constraints and indexes, as PostgreSQL prints them, to replay verbatim on the new table.
DEFINITIONS_SQL = """
SELECT 1 AS step, 'ALTER TABLE scheduling_slot ADD CONSTRAINT ' || quote_ident(c.conname) || ' '
       || pg_get_constraintdef(c.oid)
FROM pg_constraint c WHERE c.conrelid = 'scheduling_slot'::regclass AND c.contype = 'u'
UNION ALL
SELECT 0, pg_get_indexdef(x.indexrelid)
FROM pg_index x WHERE x.indrelid = 'scheduling_slot'::regclass AND NOT x.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid
                  AND c.conrelid = x.indrelid)
UNION ALL
SELECT 2, 'ALTER TABLE scheduling_slot ADD CONSTRAINT ' || quote_ident(c.conname) || ' '
       || pg_get_constraintdef(c.oid)
FROM pg_constraint c WHERE c.conrelid = 'scheduling_slot'::regclass AND c.contype = 'f'
  AND c.conparentid = 0
ORDER BY 1, 2
"""
# The constraint of migration 0003 on the unpartitioned table.
WHOLE_TABLE_OVERLAP_RULE_SQL = f"ALTER TABLE {TABLE} ADD CONSTRAINT slot_no_overlap {OVERLAP_RULE}"


def _definitions(cur) -> list[str]:
    cur.execute(DEFINITIONS_SQL)
    return [row[1] for row in cur.fetchall()]


def _sequence_state(cur) -> tuple[int, bool]:
    cur.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")
    sequence = cur.fetchone()[0]
    cur.execute(f"SELECT last_value, is_called FROM {sequence}")
    last_value, is_called = cur.fetchone()
    return int(last_value), bool(is_called)


def _rebuild(cur, *, partitioned: bool) -> tuple[list[str], str]:
    """Rename the table aside, create its replacement (partitioned or not) with the same columns,
    CHECK constraints and a fresh identity, copy the rows, drop the old one and give the sequence its
    old name and position. Returns the definitions to replay and the old table's name."""
    cur.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    definitions = _definitions(cur)
    last_value, is_called = _sequence_state(cur)
    old = f"{TABLE}_old"
    cur.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
    cur.execute(
        f"CREATE TABLE {TABLE} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY "
        "INCLUDING STORAGE)" + (" PARTITION BY RANGE (start)" if partitioned else "")
    )
    cur.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")
    sequence = cur.fetchone()[0]
    cur.execute("SELECT setval(%s, %s, %s)", [sequence, last_value, is_called])
    return definitions, old


def _finish(cur, old: str, definitions: list[str]) -> None:
    cur.execute(f"DROP TABLE {old} CASCADE")  # CASCADE: the old partitions, when going back
    cur.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")
    sequence = cur.fetchone()[0]
    cur.execute(f"ALTER SEQUENCE {sequence} RENAME TO {TABLE}_id_seq")
    for statement in definitions:
        cur.execute(statement)


def table_partition(*, now: dt.datetime, ahead: int, keep: int) -> None:
    """Turn the slot table into month partitions, rows, ids and sequence kept (scheduling 0004).

    Partitions: every month that has rows from `keep` months before the current one on (up to five
    years ahead), and the current month plus `ahead`; everything else goes to DEFAULT. The rows are
    copied into bare partitions, then each index and constraint is built once per partition.
    """
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending trigger events
        current = month_of(now)
        first, last = add_months(current, -keep if keep > 0 else -1200), add_months(current, 60)
        cur.execute(
            f"""SELECT DISTINCT date_trunc('month', start AT TIME ZONE 'Europe/Warsaw')::date FROM {TABLE}
                WHERE start >= %s AND start < %s""",
            [month_bounds(first)[0], month_bounds(last)[1]],
        )
        months = {row[0] for row in cur.fetchall()}
        months |= {add_months(current, n) for n in range(ahead + 1)}
        cur.execute(
            "SELECT c.conname FROM pg_constraint c WHERE c.confrelid = %s::regclass AND c.contype = 'f' "
            "AND c.conrelid = %s::regclass",
            [TABLE, APPOINTMENT_TABLE],
        )
        for (name,) in cur.fetchall():  # Django's FK, if booking 0005 did not drop it
            cur.execute(f"ALTER TABLE {APPOINTMENT_TABLE} DROP CONSTRAINT {_q(name)}")
        definitions, old = _rebuild(cur, partitioned=True)
    create_default_partition_bare()
    for month in sorted(months):
        create_month_partition(month, overlap_rule=False)
    with connection.cursor() as cur:
        cur.execute(f"INSERT INTO {TABLE} SELECT * FROM {old}")
        _finish(cur, old, definitions)
        cur.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, start)")
        for name in partition_names():
            cur.execute(overlap_rule_sql(name))
        cur.execute(OVERLAP_TRIGGER_SQL)
        cur.execute(APPOINTMENT_FK_SQL)


def create_default_partition_bare() -> None:
    with connection.cursor() as cur:
        cur.execute(f"CREATE TABLE {_q(DEFAULT_PARTITION)} PARTITION OF {_q(TABLE)} DEFAULT")


def table_unpartition() -> None:
    """Back to one table with the whole-table overlap constraint (scheduling 0004 reversed). The
    appointments' plain foreign key is Django's, added back by reversing booking 0005."""
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute(f"ALTER TABLE {APPOINTMENT_TABLE} DROP CONSTRAINT IF EXISTS {APPOINTMENT_FK}")
        cur.execute(OVERLAP_TRIGGER_DROP_SQL)
        definitions, old = _rebuild(cur, partitioned=False)
        cur.execute(f"INSERT INTO {TABLE} SELECT * FROM {old}")
        _finish(cur, old, definitions)
        cur.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
        cur.execute(WHOLE_TABLE_OVERLAP_RULE_SQL)
