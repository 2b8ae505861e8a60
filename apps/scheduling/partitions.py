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

Maintenance is `apps.core.partitions` (the periodic task `core: month partitions`, for every
partitioned table): partitions are made `CER_SLOT_PARTITIONS_AHEAD` months ahead of the current one
(not as far as the catalogue's publish horizon: `months_ahead`), the rare slot published further
waiting in DEFAULT until its month is made; partitions that ended more than
`CER_SLOT_PARTITIONS_KEEP_MONTHS` months ago are detached, unless appointments still refer to them.
This module declares the table (`SLOTS`) and what is the slot table's own: the overlap rule on each
partition and across months, and its bulk-load helpers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

from apps.catalog.models import SLOT_MAX_MINUTES
from apps.core import partitions as core
from apps.core.partitions import MaintenanceReport, Reference, add_months, month_bounds, month_of

__all__ = ["MaintenanceReport", "add_months", "month_bounds", "month_of"]

TABLE = "scheduling_slot"
DEFAULT_PARTITION = "scheduling_slot_default"
LOCK_CLASS_SCHEDULE = 19_020

APPOINTMENT_TABLE = "booking_appointment"
APPOINTMENT_FK = "booking_appointment_slot_start_fk"

# The same span and condition as the constraint of migration 0003 (Django's SQL for it).
OVERLAP_RULE = """EXCLUDE USING gist (cer_slot_span(schedule_id, start, "end") WITH &&)
    WHERE (NOT (status = 'cancelled'))"""


def overlap_rule_name(partition: str) -> str:
    return f"{partition}_no_overlap"


def overlap_rule_sql(partition: str) -> str:
    """The overlap rule on one partition (its GiST index is built with it)."""
    q = connection.ops.quote_name
    return f"ALTER TABLE {q(partition)} ADD CONSTRAINT {q(overlap_rule_name(partition))} {OVERLAP_RULE}"


def months_ahead() -> int:
    """`CER_SLOT_PARTITIONS_AHEAD`, whatever the catalogue's publish horizon (730 days): every attached
    partition costs each booking statement a lock per index, because a slot named by id cannot be
    pruned (docs/scaling.md, "What each attached partition costs a booking"). Schedules are published
    1-3 months ahead (the catalogue's minimum horizons are 30-60 days); a slot published further waits
    in DEFAULT and moves into its month when the month is made."""
    return int(settings.CER_SLOT_PARTITIONS_AHEAD)


SLOTS = core.register(
    core.MonthPartitioned(
        table=TABLE,
        column="start",
        lock=0,
        ahead=months_ahead,
        keep=lambda: settings.CER_SLOT_PARTITIONS_KEEP_MONTHS,
        # An appointment's `start` is its slot's (booking.services._transitions.appointment_new), and
        # no path moves a slot.
        references=(Reference(APPOINTMENT_TABLE, APPOINTMENT_FK, ("slot_id", "start")),),
        own_constraints=lambda partition: [overlap_rule_sql(partition)],
    )
)
APPOINTMENT_FK_SQL = SLOTS.references[0].sql(SLOTS)

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


def partition_name(month: dt.date) -> str:
    return SLOTS.partition_name(month)


def is_partitioned() -> bool:
    return core.is_partitioned(SLOTS)


def partition_names() -> list[str]:
    """Every partition of the slot table (month partitions in month order, then DEFAULT)."""
    return core.partition_names(SLOTS)


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


def partitions_ensure(first: dt.date, last: dt.date, *, overlap_rule: bool = True) -> list[str]:
    """Month partitions of the slot table for every month from `first`'s to `last`'s (a bulk load
    builds their overlap rules afterwards: `overlap_rule=False`)."""
    return core.partitions_ensure(SLOTS, first, last, own_constraints=overlap_rule)


def partitions_maintain(
    *, now: dt.datetime, ahead: int | None = None, keep: int | None = None
) -> MaintenanceReport:
    return core.partitions_maintain(SLOTS, now=now, ahead=ahead, keep=keep)


# --- bulk loads (the data generator) -----------------------------------------------------------------


def overlap_trigger_set(*, enabled: bool) -> None:
    """Switch the cross-month check off for a bulk load (it would probe each boundary row without the
    indexes the load dropped) and on again; `cross_month_overlaps_check` then does it set-based."""
    core.triggers_set(TABLE, (OVERLAP_TRIGGER_INSERT, OVERLAP_TRIGGER_UPDATE), enabled=enabled)


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

# The constraint of migration 0003 on the unpartitioned table.
WHOLE_TABLE_OVERLAP_RULE_SQL = f"ALTER TABLE {TABLE} ADD CONSTRAINT slot_no_overlap {OVERLAP_RULE}"


def table_partition(*, now: dt.datetime, ahead: int, keep: int) -> None:
    """Turn the slot table into month partitions, rows, ids and sequence kept (scheduling 0004): the
    overlap rule on each partition, the cross-month trigger, and the appointments' foreign key on
    (slot_id, start)."""
    core.table_partition(SLOTS, now=now, ahead=ahead, keep=keep, after=[OVERLAP_TRIGGER_SQL])


def table_unpartition() -> None:
    """Back to one table with the whole-table overlap constraint (scheduling 0004 reversed). The
    appointments' plain foreign key is Django's, added back by reversing booking 0005."""
    core.table_unpartition(SLOTS, before=[OVERLAP_TRIGGER_DROP_SQL], after=[WHOLE_TABLE_OVERLAP_RULE_SQL])
