"""Month partitions of the tables that grow without bound: the one place for partition DDL (issue 19).

A table is declared once as a `MonthPartitioned` (its partition column, the foreign keys into it, what
each partition carries of its own) and registered; everything else is PostgreSQL's declarative
partitioning, driven from here:

- **Months** are bounded at midnight of the 1st in Europe/Warsaw (where every report and staff page
  counts its months); a `date` column is bounded at the 1st itself. A DEFAULT partition takes what
  falls outside the month partitions (rows beyond those made ahead, tests' rows in far years).
- **The primary key** must hold the partition column: the real key is `(id, <column>)`; Django keeps
  `id` as the model's primary key, and it stays unique because only the identity sequence writes it.
- **Foreign keys into the table** must name the whole key, so a referencing table carries a copy of
  the row's partition column and its Django ForeignKey has `db_constraint=False`; the constraint is
  declared here (`Reference`), DEFERRABLE INITIALLY DEFERRED like Django's own.
- **Unique rules** that do not hold the partition column cannot be declared on a partitioned table;
  each table's module says how its own rules still hold (scheduling: a trigger for the overlap rule
  across months; reconciliation: a key table).

Maintenance (`partitions_maintain`, the periodic task `core: month partitions`): partitions are made
`ahead` months past the current one, rows already in DEFAULT for a new month are moved into it
(PostgreSQL refuses to attach a partition whose range has rows in DEFAULT), and partitions that ended
more than `keep` months ago are detached (plain DETACH: CONCURRENTLY cannot run with a DEFAULT
partition, nor in a transaction) and left as standalone tables for archiving; a reference may first
let go of the referencing rows it no longer needs (`Reference.release`), and a partition that other
rows still refer to is kept and reported (checked on the referencing table's copy of the partition
column, the foreign key dropped for the DETACH and added back: PostgreSQL's own check would hold the
parent locked while it joins the whole partition). Each step is its
own short transaction under an advisory lock, with a lock timeout: the task is idempotent and two runs
at once do each step once.

The migration of a populated table (`table_partition`) renames it aside, creates the partitioned table
with the same columns, CHECK constraints and identity, makes every month that holds rows, copies the
rows, and replays the old table's indexes, unique constraints and foreign keys, now built once per
partition; `table_unpartition` goes back.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.db import DatabaseError, IntegrityError, connection, transaction

log = logging.getLogger(__name__)

WARSAW = ZoneInfo("Europe/Warsaw")
# pg_advisory_xact_lock(int, int): the first key names the use (booking's core uses 19_000), the second
# the table (`MonthPartitioned.lock`).
LOCK_CLASS_MAINTENANCE = 19_019
LOCK_TIMEOUT = "5s"  # a DDL lock request never queues long behind readers (and everyone behind it)


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


# --- months -------------------------------------------------------------------------------------------


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


# --- what a partitioned table is ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A foreign key into a partitioned table, in SQL: `columns` (the id and the copy of the partition
    column) of `table` -> (id, partition column)."""

    table: str
    name: str
    columns: tuple[str, str]
    on_delete: str = ""  # e.g. "ON DELETE CASCADE"; empty: NO ACTION, as Django's PROTECT and CASCADE
    # "ON UPDATE CASCADE": the copy follows a row whose partition column changes, also when the row moves
    # to another partition (PostgreSQL 15 runs the action as an UPDATE of the root); empty: NO ACTION.
    on_update: str = ""
    # What the referencing side lets go of before a partition is detached: statements run in the
    # detach's transaction, with %(lower)s and %(upper)s the partition's bounds (the referencing rows
    # whose copy of the partition column lies in them). Rows they leave still refer to the partition,
    # and PostgreSQL then refuses the detach: the partition is kept, the deletes rolled back with it.
    release: tuple[str, ...] = ()

    def sql(self, target: MonthPartitioned, relation: str | None = None) -> str:
        """The constraint on `relation` (the referencing table, or one of its partitions)."""
        actions = " ".join(a for a in (self.on_delete, self.on_update) if a)
        return (
            f"ALTER TABLE {relation or self.table} ADD CONSTRAINT {self.name} "
            f"FOREIGN KEY ({', '.join(self.columns)}) "
            f"REFERENCES {target.table} (id, {target.column}) {actions} DEFERRABLE INITIALLY DEFERRED"
        )

    def relations(self) -> list[str]:
        """Where the constraint is declared: the referencing table, or, when that table is partitioned
        itself, each of its partitions. PostgreSQL 15 cannot add a foreign key NOT VALID to a
        partitioned table (nor validate one later without holding its writes), which the maintenance
        needs (`_references_let_go`, `_move_out_of_default`); on each partition it can. Such a table
        declares the key for its new partitions itself (its `own_constraints`)."""
        with connection.cursor() as cur:
            cur.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent "
                "WHERE i.inhparent = to_regclass(%s) AND p.relkind = 'p' ORDER BY 1",
                [self.table],
            )
            partitions = [row[0] for row in cur.fetchall()]
        return partitions or [self.table]


@dataclass(frozen=True)
class MonthPartitioned:
    """A table range-partitioned by month on `column` (a timestamptz, or a date when `date_column`)."""

    table: str
    column: str
    lock: int  # the second key of its maintenance lock, unique per table
    ahead: Callable[[], int]  # months made ahead of the current one
    keep: Callable[[], int]  # months kept before the current one (0: never detach)
    date_column: bool = False
    references: tuple[Reference, ...] = ()
    # What each partition carries of its own, added before it is attached (unless a bulk load builds it
    # later): statements for a partition's name (the slot table's overlap rule).
    own_constraints: Callable[[str], list[str]] = field(default=lambda _partition: [])
    # Statements run before a partition is detached, in the detach's transaction (rows elsewhere that
    # exist only for the partition's rows, e.g. a key table's); rolled back with it if PostgreSQL refuses.
    before_detach: Callable[[str], list[str]] = field(default=lambda _partition: [])

    @property
    def default_partition(self) -> str:
        return f"{self.table}_default"

    def partition_name(self, month: dt.date) -> str:
        return f"{self.table}_p{month:%Y_%m}"

    def month_of_partition(self, name: str) -> dt.date | None:
        match = re.fullmatch(re.escape(self.table) + r"_p(\d{4})_(\d{2})", name)
        return dt.date(int(match[1]), int(match[2]), 1) if match else None

    def bounds(self, month: dt.date) -> tuple[dt.date | dt.datetime, dt.date | dt.datetime]:
        if self.date_column:
            return month, add_months(month, 1)
        return month_bounds(month)

    def month_sql(self, expression: str) -> str:
        """The SQL month (a date, the 1st) of a value of the column."""
        if self.date_column:
            return f"date_trunc('month', {expression})::date"
        return f"date_trunc('month', {expression} AT TIME ZONE 'Europe/Warsaw')::date"


REGISTRY: dict[str, MonthPartitioned] = {}


def register(table: MonthPartitioned) -> MonthPartitioned:
    taken = {other.lock: name for name, other in REGISTRY.items() if name != table.table}
    if table.lock in taken:
        raise ValueError(f"{table.table}: maintenance lock {table.lock} is already {taken[table.lock]}'s")
    REGISTRY[table.table] = table
    return table


def triggers_set(table: str, triggers: Sequence[str], *, enabled: bool) -> None:
    """Switch a table's triggers off for a bulk load that does their work set-based, and on again
    (on a partitioned table PostgreSQL does it on every partition too)."""
    action = "ENABLE" if enabled else "DISABLE"
    with connection.cursor() as cur:
        for trigger in triggers:
            cur.execute(f"ALTER TABLE {table} {action} TRIGGER {trigger}")


# --- what exists ------------------------------------------------------------------------------------


def is_partitioned(table: MonthPartitioned) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table.table])
        row = cur.fetchone()
    return bool(row and row[0] == "p")


def partition_names(table: MonthPartitioned) -> list[str]:
    """Every partition (month partitions in month order, then DEFAULT)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [table.table],
        )
        names = [row[0] for row in cur.fetchall()]
    return sorted(names, key=lambda n: (n == table.default_partition, n))


def partition_months(table: MonthPartitioned) -> list[dt.date]:
    return [m for m in map(table.month_of_partition, partition_names(table)) if m is not None]


def _exists(relation: str) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [relation])
        return bool(cur.fetchone()[0])


def _literal(bound: dt.date | dt.datetime) -> str:
    return f"'{bound.isoformat()}'"


# --- creating partitions --------------------------------------------------------------------------


def create_month_partition(table: MonthPartitioned, month: dt.date, *, own_constraints: bool = True) -> bool:
    """Create the month's partition if it does not exist, moving its rows out of DEFAULT. In the
    caller's transaction. Returns whether it was created.

    The table is made standalone and then attached: ATTACH takes SHARE UPDATE EXCLUSIVE on the parent
    (writes go on), where CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE until commit.
    The parent's indexes, foreign keys and triggers are added to it by the ATTACH (on an empty or
    small table: instant); its own constraints are added before, unless a bulk load builds them later.
    """
    name = table.partition_name(month)
    lower, upper = table.bounds(month)
    if _exists(name):
        return False
    with connection.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {_q(name)} (LIKE {_q(table.table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING STORAGE)"
        )
        dropped = _move_out_of_default(cur, table, name, lower, upper)
        if own_constraints:
            for statement in table.own_constraints(name):
                cur.execute(statement)
        cur.execute(
            f"ALTER TABLE {_q(table.table)} ATTACH PARTITION {_q(name)} "
            f"FOR VALUES FROM ({_literal(lower)}) TO ({_literal(upper)})"
        )
        for reference in dropped:
            for relation in reference.relations():
                cur.execute(f"{reference.sql(table, relation)} NOT VALID")
                cur.execute(f"ALTER TABLE {_q(relation)} VALIDATE CONSTRAINT {reference.name}")
    return True


def _move_out_of_default(cur, table: MonthPartitioned, name: str, lower, upper) -> list[Reference]:
    """Move DEFAULT's rows of [lower, upper) into the new table. Returns the foreign keys into the table
    that had to be dropped for it (added back by the caller after the ATTACH).

    PostgreSQL checks a row deleted from a referenced partition against the referencing rows with that
    partition alone in view, even when the same key is inserted elsewhere in the transaction: moving a
    row that another refers to fails the deferred check at commit. So a foreign key that refers to one
    of the moved rows is dropped for the move and added back NOT VALID (enforced for every new write at
    once), then validated without blocking writes.
    """
    if not _exists(table.default_partition):
        return []
    params = {"lower": lower, "upper": upper}
    in_range = f"d.{_q(table.column)} >= %(lower)s AND d.{_q(table.column)} < %(upper)s"
    cur.execute(f"SELECT EXISTS (SELECT 1 FROM {_q(table.default_partition)} d WHERE {in_range})", params)
    if not cur.fetchone()[0]:
        return []
    dropped: list[Reference] = []
    for reference in table.references:
        id_column, key_column = reference.columns
        cur.execute(
            f"""SELECT EXISTS (SELECT 1 FROM {_q(table.default_partition)} d
                               JOIN {reference.table} r ON r.{id_column} = d.id
                                                       AND r.{key_column} = d.{_q(table.column)}
                               WHERE {in_range})""",
            params,
        )
        if cur.fetchone()[0]:
            if not dropped:
                cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending trigger events
            for relation in reference.relations():
                cur.execute(f"ALTER TABLE {_q(relation)} DROP CONSTRAINT IF EXISTS {reference.name}")
            dropped.append(reference)
    cur.execute(
        f"""WITH moved AS (DELETE FROM {_q(table.default_partition)} d WHERE {in_range} RETURNING d.*)
            INSERT INTO {_q(name)} SELECT * FROM moved""",
        params,
    )
    log.info("partition %s: %s rows moved out of the DEFAULT partition", name, cur.rowcount)
    return dropped


def partitions_ensure(
    table: MonthPartitioned, first: dt.date, last: dt.date, *, own_constraints: bool = True
) -> list[str]:
    """Month partitions for every month from `first`'s to `last`'s, each in its own transaction (or in
    the caller's). Returns the names created."""
    created = []
    month = month_of(first)
    while month <= month_of(last):
        with transaction.atomic():
            _lock_maintenance(table)
            if create_month_partition(table, month, own_constraints=own_constraints):
                created.append(table.partition_name(month))
        month = add_months(month, 1)
    return created


def _lock_maintenance(table: MonthPartitioned) -> None:
    with connection.cursor() as cur:
        cur.execute("SET LOCAL lock_timeout = %s", [LOCK_TIMEOUT])
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS_MAINTENANCE, table.lock])


# --- maintenance ------------------------------------------------------------------------------------


@dataclass
class MaintenanceReport:
    created: list[str] = field(default_factory=list)
    detached: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # partition -> why it was not detached


def partitions_maintain(
    table: MonthPartitioned, *, now: dt.datetime, ahead: int | None = None, keep: int | None = None
) -> MaintenanceReport:
    """Create the partitions up to `ahead` months after the current one and detach those that ended
    more than `keep` months before it (0: never). Idempotent; concurrent runs do each step once. A table
    that is not (yet) partitioned is left alone."""
    if not is_partitioned(table):
        return MaintenanceReport()
    ahead = table.ahead() if ahead is None else ahead
    keep = table.keep() if keep is None else keep
    current = month_of(now)
    report = MaintenanceReport(created=partitions_ensure(table, current, add_months(current, ahead)))
    if keep > 0:
        oldest_kept = add_months(current, -keep)
        for month in partition_months(table):
            if month < oldest_kept:
                _detach(table, table.partition_name(month), report)
    _references_validate(table)  # those a detach added back NOT VALID, this run's or an earlier one's
    return report


def all_partitions_maintain(*, now: dt.datetime) -> dict[str, MaintenanceReport]:
    """`partitions_maintain` of every registered table; one table's failure does not stop the others."""
    reports = {}
    for name, table in REGISTRY.items():
        try:
            reports[name] = partitions_maintain(table, now=now)
        except DatabaseError as exc:
            log.exception("month partitions of %s not maintained", name)
            reports[name] = MaintenanceReport(kept={name: str(exc).splitlines()[0]})
    return reports


def _detach(table: MonthPartitioned, name: str, report: MaintenanceReport) -> None:
    try:
        with transaction.atomic():
            _lock_maintenance(table)
            if name not in partition_names(table):
                return  # a concurrent run detached it
            with connection.cursor() as cur:
                for statement in table.before_detach(name):
                    cur.execute(statement)
                _release(cur, table, name)
                dropped = _references_let_go(cur, table, name)
                cur.execute(f"ALTER TABLE {_q(table.table)} DETACH PARTITION {_q(name)}")
                for reference in dropped:
                    for relation in reference.relations():
                        cur.execute(f"{reference.sql(table, relation)} NOT VALID")
        report.detached.append(name)
        log.info("partition %s detached (archive and drop it)", name)
    except DatabaseError as exc:
        # Rows elsewhere still refer to its rows (or the lock timed out): kept, tried again next run.
        report.kept[name] = str(exc).splitlines()[0]
        log.warning("partition %s kept: %s", name, report.kept[name])


def _release(cur, table: MonthPartitioned, name: str) -> None:
    """Run the references' `release` statements for a month partition about to be detached."""
    month = table.month_of_partition(name)
    statements = [statement for reference in table.references for statement in reference.release]
    if month is None or not statements:
        return
    lower, upper = table.bounds(month)
    cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending trigger events
    for statement in statements:
        cur.execute(statement, {"lower": lower, "upper": upper})
        log.info("partition %s: %s referencing rows released", name, cur.rowcount)


def _references_let_go(cur, table: MonthPartitioned, name: str) -> list[Reference]:
    """Drop the foreign keys into the table for a partition's detach, once no row refers to the
    partition; raise IntegrityError (the partition is kept) if one does. Returns those dropped, to be
    added back NOT VALID by the caller after the DETACH (enforced at once for every new write) and
    validated after the commit (`_references_validate`, without blocking writes).

    With the foreign key in place, PostgreSQL checks it during the DETACH by joining the whole
    partition to the referencing table, holding ACCESS EXCLUSIVE on the parent: every write waits
    for it (2 s for a partition of 756,000 events; minutes at national size). Here the check is a
    range query on the referencing table's copy of the partition column: a row refers to the partition
    exactly when its copy lies in the partition's bounds (the foreign key guaranteed a match, and
    that row can only live in this partition). It is made once without locks (a partition that is
    still referred to costs no lock), then again with the referencing table locked against writes
    until the commit, so no row can come to refer to the partition before it is gone."""
    month = table.month_of_partition(name)
    if month is None or not table.references:
        return []
    lower, upper = table.bounds(month)
    dropped: list[Reference] = []
    for reference in table.references:
        key = reference.columns[1]
        referring = f"SELECT EXISTS (SELECT 1 FROM {reference.table} WHERE {key} >= %s AND {key} < %s)"
        for lock in (False, True):
            if lock:
                cur.execute(f"LOCK TABLE {reference.table} IN SHARE ROW EXCLUSIVE MODE")
            cur.execute(referring, [lower, upper])
            if cur.fetchone()[0]:
                raise IntegrityError(
                    f"rows of {reference.table} still refer to partition {name} "
                    f'(foreign key "{reference.name}")'
                )
        for relation in reference.relations():
            cur.execute(f"ALTER TABLE {_q(relation)} DROP CONSTRAINT IF EXISTS {reference.name}")
        dropped.append(reference)
    return dropped


def _references_validate(table: MonthPartitioned) -> None:
    """Validate the table's foreign keys added back NOT VALID by a detach (SHARE UPDATE EXCLUSIVE on
    the referencing table: its writes go on), each in its own transaction."""
    for reference in table.references:
        for relation in reference.relations():
            with transaction.atomic():
                _lock_maintenance(table)
                with connection.cursor() as cur:
                    cur.execute(
                        "SELECT NOT convalidated FROM pg_constraint "
                        "WHERE conname = %s AND conrelid = to_regclass(%s)",
                        [reference.name, relation],
                    )
                    row = cur.fetchone()
                    if row and row[0]:
                        cur.execute(f"ALTER TABLE {_q(relation)} VALIDATE CONSTRAINT {reference.name}")


# --- the migration: from one table to partitions and back ----------------------------------------------

# What the table carries besides columns, NOT NULL and CHECK constraints (LIKE copies those): unique
# constraints and indexes and its own foreign keys, as PostgreSQL prints them, to replay verbatim on
# the new table.
DEFINITIONS_SQL = """
SELECT 1 AS step, 'ALTER TABLE ' || quote_ident(%(table)s) || ' ADD CONSTRAINT ' || quote_ident(c.conname)
       || ' ' || pg_get_constraintdef(c.oid)
FROM pg_constraint c WHERE c.conrelid = %(table)s::regclass AND c.contype = 'u'
UNION ALL
SELECT 0, pg_get_indexdef(x.indexrelid)
FROM pg_index x WHERE x.indrelid = %(table)s::regclass AND NOT x.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid
                  AND c.conrelid = x.indrelid)
UNION ALL
SELECT 2, 'ALTER TABLE ' || quote_ident(%(table)s) || ' ADD CONSTRAINT ' || quote_ident(c.conname)
       || ' ' || pg_get_constraintdef(c.oid)
FROM pg_constraint c WHERE c.conrelid = %(table)s::regclass AND c.contype = 'f' AND c.conparentid = 0
ORDER BY 1, 2
"""


def _definitions(cur, table: str) -> list[str]:
    cur.execute(DEFINITIONS_SQL, {"table": table})
    return [row[1] for row in cur.fetchall()]


def _rebuild(cur, table: MonthPartitioned, *, partitioned: bool) -> tuple[list[str], str]:
    """Rename the table aside, create its replacement (partitioned or not) with the same columns,
    CHECK constraints and a fresh identity at the old one's position. Returns the definitions to replay
    and the old table's name."""
    name = table.table
    cur.execute(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
    definitions = _definitions(cur, name)
    cur.execute(f"SELECT pg_get_serial_sequence('{name}', 'id')")
    sequence = cur.fetchone()[0]
    cur.execute(f"SELECT last_value, is_called FROM {sequence}")
    last_value, is_called = cur.fetchone()
    old = f"{name}_old"
    cur.execute(f"ALTER TABLE {name} RENAME TO {old}")
    cur.execute(
        f"CREATE TABLE {name} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY "
        "INCLUDING STORAGE)" + (f" PARTITION BY RANGE ({_q(table.column)})" if partitioned else "")
    )
    cur.execute(f"SELECT pg_get_serial_sequence('{name}', 'id')")
    cur.execute("SELECT setval(%s, %s, %s)", [cur.fetchone()[0], last_value, is_called])
    return definitions, old


def _finish(cur, table: MonthPartitioned, old: str, definitions: list[str]) -> None:
    name = table.table
    cur.execute(f"INSERT INTO {name} SELECT * FROM {old}")
    cur.execute(f"DROP TABLE {old} CASCADE")  # CASCADE: the old partitions, when going back
    cur.execute(f"SELECT pg_get_serial_sequence('{name}', 'id')")
    cur.execute(f"ALTER SEQUENCE {cur.fetchone()[0]} RENAME TO {name}_id_seq")
    for statement in definitions:
        cur.execute(statement)


def _drop_references(cur, table: MonthPartitioned) -> None:
    """Drop every foreign key into the table (Django's single-column ones, if the referencing app's
    migration did not; or the partitioned table's own, going back)."""
    cur.execute(
        "SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c "
        "WHERE c.confrelid = %s::regclass AND c.contype = 'f' AND c.conparentid = 0",
        [table.table],
    )
    for referencing, name in cur.fetchall():
        cur.execute(f"ALTER TABLE {referencing} DROP CONSTRAINT {_q(name)}")


def table_partition(
    table: MonthPartitioned,
    *,
    now: dt.datetime,
    ahead: int,
    keep: int,
    after: Sequence[str] = (),
) -> None:
    """Turn a table into month partitions, rows, ids and sequence kept (in the migration's
    transaction: at national size, run it with writes stopped).

    Partitions: every month that has rows from `keep` months before the current one on (up to five
    years ahead), and the current month plus `ahead`; everything else goes to DEFAULT. The rows are
    copied into bare partitions, then each index and constraint is built once per partition. `after`:
    statements run at the end (triggers on the parent).
    """
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending trigger events
        current = month_of(now)
        first, last = add_months(current, -keep if keep > 0 else -1200), add_months(current, 60)
        cur.execute(
            f"SELECT DISTINCT {table.month_sql(_q(table.column))} FROM {table.table} "
            f"WHERE {_q(table.column)} >= %s AND {_q(table.column)} < %s",
            [table.bounds(first)[0], table.bounds(last)[1]],
        )
        months = {row[0] for row in cur.fetchall()}
        months |= {add_months(current, n) for n in range(ahead + 1)}
        _drop_references(cur, table)
        definitions, old = _rebuild(cur, table, partitioned=True)
        cur.execute(f"CREATE TABLE {_q(table.default_partition)} PARTITION OF {_q(table.table)} DEFAULT")
    for month in sorted(months):
        create_month_partition(table, month, own_constraints=False)
    with connection.cursor() as cur:
        _finish(cur, table, old, definitions)
        key = f"(id, {_q(table.column)})"
        cur.execute(f"ALTER TABLE {table.table} ADD CONSTRAINT {table.table}_pkey PRIMARY KEY {key}")
        for name in partition_names(table):
            for statement in table.own_constraints(name):
                cur.execute(statement)
        for statement in after:
            cur.execute(statement)
        for reference in table.references:
            for relation in reference.relations():
                cur.execute(reference.sql(table, relation))


def table_unpartition(
    table: MonthPartitioned, *, before: Sequence[str] = (), after: Sequence[str] = ()
) -> None:
    """Back to one table with the key `(id)`. `before`: statements run first (dropping the parent's
    triggers); `after`: at the end (the whole-table form of a partition's own constraints). The
    single-column foreign keys into it are Django's, added back by reversing the referencing app's
    migration."""
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        _drop_references(cur, table)
        for statement in before:
            cur.execute(statement)
        definitions, old = _rebuild(cur, table, partitioned=False)
        _finish(cur, table, old, definitions)
        cur.execute(f"ALTER TABLE {table.table} ADD CONSTRAINT {table.table}_pkey PRIMARY KEY (id)")
        for statement in after:
            cur.execute(statement)
