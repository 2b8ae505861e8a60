"""Month partitions of the appointments: every piece of their partition DDL (issue 19).

`booking_appointment` grows by every booking ever made (424 k in January 2026, tens of millions a
year once all outpatient care books centrally) and is read by month: a facility's day, the no-show and
confirmation sweeps, the reconciliation of a month's reported visits. It is range-partitioned on
`start` through apps.core.partitions, months bounded at midnight of the 1st in Europe/Warsaw like the
slot table's, so an appointment lies in the same month as its slot and the two tables' months can be
detached together.

What a partitioned table cannot declare, and how it still holds:

- **The key** is `(id, start)`; Django keeps `id` as the model's primary key, unique because only the
  identity sequence writes it. The slot's foreign key was already `(slot_id, start)`
  (apps/scheduling/partitions.py): `start` is the slot's, so one live appointment per slot is the
  partial unique index on `(slot_id, start)`, declared on the parent. That key is declared on each
  partition rather than on the parent (`slot_key_sql`): the slot table's maintenance drops it and adds
  it back NOT VALID around a detach or a move out of its DEFAULT partition, which PostgreSQL 15 does
  not allow on a partitioned table.
- **One live appointment per registration, and per patient and service** must hold across months:
  they are the unique constraints of an unpartitioned key table, `booking_liveappointment`, with the
  same names as the indexes they replace. A trigger on the appointments writes it (`LIVE_KEY_SQL`):
  an appointment that becomes live (inserted booked or confirmed, or moved back to a live state) adds
  its key, one that ends (cancelled, released, rescheduled, attended, no-show) deletes it. A second
  live appointment is refused with `unique_violation` on the rule's name, on every path, whatever
  wrote it (the ORM, the booking writer's one statement, a data fix); the booking writer's
  `ON CONFLICT DO NOTHING` still settles the usual race on the registration's own index first. The
  key table holds live appointments only: ~1.3 M rows at today's national rate, a few times that in
  2029, not every booking ever made.
- **Foreign keys into the table** name the whole key, so each referencing table carries a copy of the
  appointment's `start`: the key table's `start` (written by its trigger), the notifications' and
  inbound SMS' `appointment_start`, filled by a trigger from the appointment the row names
  (`COPY_START_SQL`: whatever writes the id, Django's SET_NULL included, gets the copy), which refuses
  an appointment that does not exist. No path moves an appointment to another time (a new appointment
  is made instead); a data fix that does carries the copies along (ON UPDATE CASCADE).
- **`rescheduled_to`** (the booking a moved one was replaced by) is not checked by the database: it
  would be a key from the partitioned table into itself, which, like the slot's, PostgreSQL 15 could
  not add back NOT VALID around a detach. The one path that moves a booking writes it, in the
  transaction that made the new appointment (`services.lifecycle`), and appointments are never
  deleted.

Maintenance is apps.core.partitions' (the daily `core: month partitions`): partitions are made
`CER_APPOINTMENT_PARTITIONS_AHEAD` months ahead (the slot table's number: an appointment is booked on
a published slot), and those that ended more than `CER_APPOINTMENT_PARTITIONS_KEEP_MONTHS` months ago
are detached (28: the settlement window, 730 days, and its month, while a late-reported visit may still
be reconciled against them; 0: never). Every attached partition costs each statement that names an
appointment by id alone (no pruning: ~17 us a partition, docs/scaling.md), so the years after that are
the archive's (a detached partition is a plain table, left for the operator), not the live table's.
Detaching a month deletes the keys of its appointments that are still live (none, once the no-show
sweep has run), in the same transaction; a month whose appointments a notification or an inbound SMS
still names is kept, and reported, until those are archived with it.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection

from apps.core import partitions as core
from apps.core.partitions import Reference
from apps.scheduling import partitions as slot_partitions

from .models import LIVE_APPOINTMENT, Appointment, LiveAppointment

TABLE = Appointment._meta.db_table
KEY_TABLE = LiveAppointment._meta.db_table
MESSAGE_TABLE = "notifications_message"
SMS_TABLE = "notifications_inboundsms"

KEY_FK = "booking_liveappointment_appointment_fk"
MESSAGE_FK = "notifications_message_appointment_fk"
SMS_FK = "notifications_inboundsms_appointment_fk"

_LIVE = ", ".join(f"'{status}'" for status in LIVE_APPOINTMENT)


def months_ahead() -> int:
    return int(settings.CER_APPOINTMENT_PARTITIONS_AHEAD)


def months_kept() -> int:
    return int(settings.CER_APPOINTMENT_PARTITIONS_KEEP_MONTHS)


def _keys_of_partition(partition: str) -> list[str]:
    q = connection.ops.quote_name
    return [f"DELETE FROM {KEY_TABLE} k USING {q(partition)} a WHERE k.appointment_id = a.id"]  # noqa: S608


def slot_key_sql(partition: str) -> list[str]:
    """The slot's key, `(slot_id, start)` -> the slot table's `(id, start)`, on one partition: declared
    per partition, not on the parent, because the slot table's maintenance drops it and adds it back
    NOT VALID around a month's detach or a move out of its DEFAULT partition (apps.core.partitions
    `Reference.relations`), which PostgreSQL 15 allows on a plain table only."""
    return [slot_partitions.SLOTS.references[0].sql(slot_partitions.SLOTS, partition)]


APPOINTMENTS = core.register(
    core.MonthPartitioned(
        table=TABLE,
        column="start",
        lock=3,
        ahead=months_ahead,
        keep=months_kept,
        references=(
            # The copies follow an appointment whose time is changed (no path does: a new appointment is
            # made instead; a data fix or the admin might), also into another partition.
            Reference(
                KEY_TABLE, KEY_FK, ("appointment_id", "start"), "ON DELETE CASCADE", "ON UPDATE CASCADE"
            ),
            Reference(
                MESSAGE_TABLE,
                MESSAGE_FK,
                ("appointment_id", "appointment_start"),
                on_update="ON UPDATE CASCADE",
            ),
            Reference(
                SMS_TABLE, SMS_FK, ("appointment_id", "appointment_start"), on_update="ON UPDATE CASCADE"
            ),
        ),
        own_constraints=slot_key_sql,
        before_detach=_keys_of_partition,
    )
)

# --- the live key ------------------------------------------------------------------------------------

LIVE_KEY_FUNCTION = "cer_appointment_live_key"
LIVE_KEY_INSERT = "appointment_live_key_insert"
LIVE_KEY_UPDATE = "appointment_live_key_update"
LIVE_KEY_SQL = f"""
CREATE OR REPLACE FUNCTION {LIVE_KEY_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IN ({_LIVE}) THEN
        DELETE FROM {KEY_TABLE} WHERE appointment_id = OLD.id;
    END IF;
    IF NEW.status IN ({_LIVE}) THEN
        -- A live key of another appointment with the same registration, or patient and service, is
        -- refused by the key table's unique constraints (23505, named as the rules).
        INSERT INTO {KEY_TABLE} (appointment_id, start, registration_id, patient_id, service_id)
        VALUES (NEW.id, NEW.start, NEW.registration_id, NEW.patient_id, NEW.service_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER {LIVE_KEY_INSERT} AFTER INSERT ON {TABLE} FOR EACH ROW
    WHEN (NEW.status IN ({_LIVE}))
    EXECUTE FUNCTION {LIVE_KEY_FUNCTION}();
-- Only a change that matters to the key: into or out of a live state, or a live appointment's
-- registration, patient or service (a confirmation, booked -> confirmed, is neither; a change of
-- `start` reaches the key through its foreign key, ON UPDATE CASCADE).
CREATE TRIGGER {LIVE_KEY_UPDATE} AFTER UPDATE OF status, registration_id, patient_id, service_id
    ON {TABLE} FOR EACH ROW
    WHEN ((OLD.status IN ({_LIVE})) IS DISTINCT FROM (NEW.status IN ({_LIVE}))
          OR (NEW.status IN ({_LIVE})
              AND (OLD.registration_id, OLD.patient_id, OLD.service_id)
                  IS DISTINCT FROM (NEW.registration_id, NEW.patient_id, NEW.service_id)))
    EXECUTE FUNCTION {LIVE_KEY_FUNCTION}();
"""  # noqa: S608 (names from the models, statuses the model's constants)
LIVE_KEY_DROP_SQL = f"""
DROP TRIGGER IF EXISTS {LIVE_KEY_INSERT} ON {TABLE};
DROP TRIGGER IF EXISTS {LIVE_KEY_UPDATE} ON {TABLE};
DROP FUNCTION IF EXISTS {LIVE_KEY_FUNCTION}();
"""
LIVE_KEYS_FILL_SQL = f"""
INSERT INTO {KEY_TABLE} (appointment_id, start, registration_id, patient_id, service_id)
SELECT a.id, a.start, a.registration_id, a.patient_id, a.service_id FROM {TABLE} a
WHERE a.status IN ({_LIVE}) AND NOT EXISTS (SELECT 1 FROM {KEY_TABLE} k WHERE k.appointment_id = a.id)
ORDER BY a.id
"""  # noqa: S608 (names from the models, statuses the model's constants)


def live_key_trigger_set(*, enabled: bool) -> None:
    """Switch the key trigger off for a bulk load that writes the keys set-based (`live_keys_fill`)."""
    core.triggers_set(TABLE, (LIVE_KEY_INSERT, LIVE_KEY_UPDATE), enabled=enabled)


def live_keys_fill() -> int:
    """The key of every live appointment that has none, in one statement (a bulk load, the migration):
    two live appointments of one registration, or of a patient for a service, fail it on the rule."""
    with connection.cursor() as cur:
        cur.execute(LIVE_KEYS_FILL_SQL)
        return cur.rowcount


# --- the copies of an appointment's start ------------------------------------------------------------


def _copy_start_sql(function: str, table: str, id_column: str, start_column: str) -> str:
    """A trigger that gives a row naming an appointment (`id_column`) that appointment's start
    (`start_column`; NULL without one). An appointment that does not exist would leave it NULL, and the
    foreign key on the pair is then not checked: refused here instead, as a single-column key would."""
    return f"""
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.{id_column} IS NULL THEN
        NEW.{start_column} := NULL;
    ELSE
        SELECT a.start INTO NEW.{start_column} FROM {TABLE} a WHERE a.id = NEW.{id_column};
        IF NOT FOUND THEN
            RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint', TG_TABLE_NAME
                USING ERRCODE = 'foreign_key_violation',
                      DETAIL = format('Key ({id_column})=(%s) is not present in table "{TABLE}".',
                                      NEW.{id_column});
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER {table}_{start_column} BEFORE INSERT OR UPDATE OF {id_column} ON {table}
    FOR EACH ROW WHEN (NEW.{id_column} IS NOT NULL OR NEW.{start_column} IS NOT NULL)
    EXECUTE FUNCTION {function}();
"""  # noqa: S608 (names from the models)


def _copy_start_drop_sql(function: str, table: str, start_column: str) -> str:
    return f"DROP TRIGGER IF EXISTS {table}_{start_column} ON {table}; DROP FUNCTION IF EXISTS {function}();"


# The notifications and inbound SMS (notifications 0002): written by the composer, the SMS handler and
# Django's SET_NULL.
COPY_START_SQL = "".join(
    _copy_start_sql(f"cer_{table}_appointment_start", table, "appointment_id", "appointment_start")
    for table in (MESSAGE_TABLE, SMS_TABLE)
)
COPY_START_DROP_SQL = "".join(
    _copy_start_drop_sql(f"cer_{table}_appointment_start", table, "appointment_start")
    for table in (MESSAGE_TABLE, SMS_TABLE)
)


def is_partitioned() -> bool:
    return core.is_partitioned(APPOINTMENTS)


def partition_names() -> list[str]:
    return core.partition_names(APPOINTMENTS)


# --- the migration: from one table to partitions and back ----------------------------------------------


def table_partition(*, now: dt.datetime, ahead: int, keep: int) -> None:
    """Turn the appointments into month partitions, rows, ids and sequence kept (booking 0009): the
    live-key trigger on the new table, the slot's key on each partition, and the composite foreign
    keys of the key table, the notifications and the inbound SMS. The table's other foreign keys are
    replayed on the parent by `core.table_partition`."""
    with connection.cursor() as cur:
        # Declared on each partition instead (`slot_key_sql`), not replayed on the parent.
        cur.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {slot_partitions.APPOINTMENT_FK}")
    core.table_partition(APPOINTMENTS, now=now, ahead=ahead, keep=keep, after=[LIVE_KEY_SQL])
    with connection.cursor() as cur:
        cur.execute(f"ANALYZE {TABLE}")


def table_unpartition() -> None:
    """Back to one table with the key `(id)` (0009 reversed), its trigger and the slot's key on the
    table; the foreign keys into it are left out (0008's state: the copies of `start` unchecked)."""
    core.table_unpartition(
        APPOINTMENTS, before=[LIVE_KEY_DROP_SQL], after=[LIVE_KEY_SQL, slot_partitions.APPOINTMENT_FK_SQL]
    )
