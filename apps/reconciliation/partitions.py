"""Month partitions of the reported visits and the verdicts: every piece of their partition DDL (issue 19).

Both tables grow by ~10 M rows a month, and a reconciliation run reads one month of each: partitioned by
month (apps.core.partitions), a run's statements read and write one partition of each, its indexes stay
a month's size, and old months can be detached.

- **`reconciliation_reportedvisit` on `visit_at`** (timestamptz; months bounded at midnight of the 1st
  in Europe/Warsaw, the months runs settle): a run's scope is a `visit_at` range inside one month, so
  every statement of the run (and the facility API's lists, by visit time) is pruned to that month's
  partition by its own predicate. The real primary key is (id, visit_at).
- **`reconciliation_verdict` on `period_start`** (a date: a copy of the run's `period_start`, written
  by the engine's INSERT): a run's verdicts are one partition, and they never move (a run's period
  does not change). `verdict_once_per_run` becomes (run, visit, period_start): `period_start` is a
  function of the run, so it is the same rule. The primary key is (id, period_start).

What partitioned tables cannot declare, and how it still holds:

- **`visit_once_per_facility`** (facility, facility_visit_id) does not hold `visit_at`, and must hold
  across months. It is the unique constraint of an unpartitioned key table, `reconciliation_visitkey`
  (visit_id primary key, facility, facility_visit_id, a copy of visit_at). The import writes the keys
  and the visits in one statement: `INSERT ... ON CONFLICT (facility_id, facility_visit_id) DO NOTHING`
  into the key table, then the visits of the keys it wrote; a second import of the same visit id at
  the same moment waits on the first's key (the unique index) and then leaves it alone. For every
  other writer (the ORM, tests, a data fix), an AFTER INSERT trigger on the visits writes the visit's
  key when the writer did not (and so refuses a second visit of a key with `unique_violation` on
  `visit_once_per_facility`); an UPDATE of a visit's facility or visit id updates its key the same way.
  So every visit has its key and no two visits share one, in the database.
- **A correction may change a visit's time, and with it its month**: the row moves to the other
  partition (a cross-partition UPDATE). Every table that refers to a visit carries a copy of its
  `visit_at` with a composite foreign key `ON UPDATE CASCADE` (`Reference`), so the copies follow in
  the same statement: the key table, the kept versions (`current_visit_at`) and the overrides
  (`visit_at`; the overrides' append-only trigger lets exactly this change through:
  `OVERRIDE_APPEND_ONLY_SQL`).
  The import locks a visit through its key row (`engine.visits_current`): the key row never moves
  between partitions, where a lock waiting on a visit row that moved would fail with a serialization
  error.
- **Foreign keys into the verdicts**: only the overrides' (verdict_id, verdict_period_start), NO ACTION.
  Verdicts keep their own foreign keys unchecked (models.Verdict says why).

Maintenance is apps.core.partitions' (the daily `core: month partitions`): partitions are made
`CER_RECONCILIATION_PARTITIONS_AHEAD` months ahead, and those that ended more than
`CER_RECONCILIATION_PARTITIONS_KEEP_MONTHS` months ago are detached (never sooner than the settlement
window: a visit of a detached month could otherwise be reported again as new). Detaching a visit
partition deletes its keys first, in the same transaction (`before_detach`); PostgreSQL still refuses
(and the job keeps, and reports) a month whose visits have kept versions or overrides, or whose
verdicts have overrides, until those are archived with it.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection

from apps.core import partitions as core
from apps.core.partitions import Reference

VISIT_TABLE = "reconciliation_reportedvisit"
VERDICT_TABLE = "reconciliation_verdict"
KEY_TABLE = "reconciliation_visitkey"
VERSION_TABLE = "reconciliation_visitversion"
OVERRIDE_TABLE = "reconciliation_override"

KEY_FK = "reconciliation_visitkey_visit_fk"
VERSION_FK = "reconciliation_visitversion_visit_fk"
OVERRIDE_VISIT_FK = "reconciliation_override_visit_fk"
OVERRIDE_VERDICT_FK = "reconciliation_override_verdict_fk"


def months_kept() -> int:
    """The setting (0: never detach), and never fewer months than the settlement window: an import
    accepts visits that old, and a visit of a detached month (its key gone with it) would be new."""
    keep = settings.CER_RECONCILIATION_PARTITIONS_KEEP_MONTHS
    return max(keep, months_reported_late()) if keep > 0 else 0


def months_ahead() -> int:
    return settings.CER_RECONCILIATION_PARTITIONS_AHEAD


def months_reported_late() -> int:
    """How many months back a visit may still be reported, and its month reconciled: the settlement
    window (730 days: 27 months of 28 days, and the month it began)."""
    from .models import settlement_policy

    return -(-settlement_policy().settlement_window_days // 28) + 1


def _keys_of_partition(partition: str) -> list[str]:
    q = connection.ops.quote_name
    return [f"DELETE FROM {KEY_TABLE} k USING {q(partition)} v WHERE k.visit_id = v.id"]


VISITS = core.register(
    core.MonthPartitioned(
        table=VISIT_TABLE,
        column="visit_at",
        lock=1,
        ahead=months_ahead,
        keep=months_kept,
        references=(
            # The key goes with its visit; the versions and overrides keep theirs (PROTECT in Django).
            Reference(KEY_TABLE, KEY_FK, ("visit_id", "visit_at"), "ON DELETE CASCADE", "ON UPDATE CASCADE"),
            Reference(
                VERSION_TABLE, VERSION_FK, ("visit_id", "current_visit_at"), on_update="ON UPDATE CASCADE"
            ),
            Reference(
                OVERRIDE_TABLE, OVERRIDE_VISIT_FK, ("visit_id", "visit_at"), on_update="ON UPDATE CASCADE"
            ),
        ),
        before_detach=_keys_of_partition,
    )
)

VERDICTS = core.register(
    core.MonthPartitioned(
        table=VERDICT_TABLE,
        column="period_start",
        date_column=True,
        lock=2,
        ahead=months_ahead,
        keep=months_kept,
        references=(Reference(OVERRIDE_TABLE, OVERRIDE_VERDICT_FK, ("verdict_id", "verdict_period_start")),),
    )
)

# --- the key trigger ---------------------------------------------------------------------------------

KEY_FUNCTION = "cer_visit_key_write"
KEY_TRIGGER_INSERT = "visit_key_insert"
KEY_TRIGGER_UPDATE = "visit_key_update"
KEY_TRIGGER_SQL = f"""
CREATE OR REPLACE FUNCTION {KEY_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        UPDATE {KEY_TABLE} SET facility_id = NEW.facility_id, facility_visit_id = NEW.facility_visit_id
        WHERE visit_id = NEW.id;
    -- The import wrote the key in the same statement (this is one probe of the key's primary key); any
    -- other writer gets it written here, and a key another visit holds is refused by the unique
    -- constraint (23505, visit_once_per_facility), as the visits' own constraint refused it before.
    ELSIF NOT EXISTS (SELECT 1 FROM {KEY_TABLE} k WHERE k.visit_id = NEW.id
                      AND k.facility_id = NEW.facility_id AND k.facility_visit_id = NEW.facility_visit_id)
    THEN
        INSERT INTO {KEY_TABLE} (visit_id, facility_id, facility_visit_id, visit_at)
        VALUES (NEW.id, NEW.facility_id, NEW.facility_visit_id, NEW.visit_at);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER {KEY_TRIGGER_INSERT} AFTER INSERT ON {VISIT_TABLE}
    FOR EACH ROW EXECUTE FUNCTION {KEY_FUNCTION}();
CREATE TRIGGER {KEY_TRIGGER_UPDATE} AFTER UPDATE OF facility_id, facility_visit_id ON {VISIT_TABLE}
    FOR EACH ROW
    WHEN (OLD.facility_id <> NEW.facility_id OR OLD.facility_visit_id <> NEW.facility_visit_id)
    EXECUTE FUNCTION {KEY_FUNCTION}();
"""
KEY_TRIGGER_DROP_SQL = f"""
DROP TRIGGER IF EXISTS {KEY_TRIGGER_INSERT} ON {VISIT_TABLE};
DROP TRIGGER IF EXISTS {KEY_TRIGGER_UPDATE} ON {VISIT_TABLE};
DROP FUNCTION IF EXISTS {KEY_FUNCTION}();
"""

# The overrides' append-only rule (reconciliation 0002), now letting through the one UPDATE a foreign
# key makes: a corrected visit's new time copied into its overrides (ON UPDATE CASCADE). Nothing else of
# an override changes, and DELETE is still refused.
OVERRIDE_APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION reconciliation_override_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND to_jsonb(NEW) - 'visit_at' = to_jsonb(OLD) - 'visit_at' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'reconciliation_override is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
OVERRIDE_APPEND_ONLY_OLD_SQL = """
CREATE OR REPLACE FUNCTION reconciliation_override_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'reconciliation_override is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def key_trigger_set(*, enabled: bool) -> None:
    """Switch the key trigger off for a bulk load that writes the keys set-based (`keys_fill`)."""
    core.triggers_set(VISIT_TABLE, (KEY_TRIGGER_INSERT, KEY_TRIGGER_UPDATE), enabled=enabled)


KEYS_FILL_SQL = f"""
INSERT INTO {KEY_TABLE} (visit_id, facility_id, facility_visit_id, visit_at)
SELECT v.id, v.facility_id, v.facility_visit_id, v.visit_at FROM {VISIT_TABLE} v
WHERE NOT EXISTS (SELECT 1 FROM {KEY_TABLE} k WHERE k.visit_id = v.id)
ORDER BY v.id
"""


def keys_fill() -> int:
    """The key of every visit that has none, in one statement (a bulk load, the migration): a visit id
    reported twice fails it on `visit_once_per_facility`."""
    with connection.cursor() as cur:
        cur.execute(KEYS_FILL_SQL)
        return cur.rowcount


def is_partitioned() -> bool:
    return core.is_partitioned(VISITS)


# --- the migration: from one table to partitions and back ----------------------------------------------


def tables_partition(*, now: dt.datetime, ahead: int, keep: int) -> None:
    """Turn both tables into month partitions, rows, ids and sequences kept (reconciliation 0009): the
    key trigger on the visits, and the composite foreign keys of the keys, versions and overrides.

    Besides the months that hold rows and those ahead, every month of the settlement window gets its
    partitions: visits of a past month still come in, and a month is reconciled after it ended (the
    maintenance job makes months ahead only; a month it made ahead is there when its runs come)."""
    core.table_partition(VISITS, now=now, ahead=ahead, keep=keep, after=[KEY_TRIGGER_SQL])
    core.table_partition(VERDICTS, now=now, ahead=ahead, keep=keep)
    first = core.add_months(core.month_of(now), -months_reported_late())
    for partitioned in (VISITS, VERDICTS):
        core.partitions_ensure(partitioned, first, now)
    with connection.cursor() as cur:
        # The new partitions have no statistics until autovacuum gets to them; planned without, the
        # duplicate pass scanned a whole run's verdicts instead of probing the few duplicates.
        for table in (VISIT_TABLE, VERDICT_TABLE, KEY_TABLE):
            cur.execute(f"ANALYZE {table}")


def tables_unpartition() -> None:
    """Back to two plain tables with (id) keys (0009 reversed); the single-column foreign keys are
    Django's, added back by reversing 0008."""
    core.table_unpartition(VERDICTS)
    core.table_unpartition(VISITS, before=[KEY_TRIGGER_DROP_SQL])
