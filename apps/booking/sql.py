"""The one home of the booking core's hand-written SQL.

Every statement here has a plain-ORM twin in `tests/booking/test_sql.py` that must give the same
rows, so speed never changes behaviour. Django internals (server-side prepared statements, model
instances from raw rows, INSERT columns as `save()` builds them) are used only through
`apps.core.queries`. Columns are read by name into small dataclasses, never unpacked by position.

Composition is by bound parameters and by whole fragments built here; no statement is made by
editing another module's SQL text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import connection

from apps.catalog.models import Entitlement, Facility, Locality, Service
from apps.core.queries import (
    column_names,
    insert_columns,
    literal,
    mark_saved,
    model_from_row,
    optional_model_from_row,
    prepared_cursor,
    select_columns,
)
from apps.outbox.models import OutboxEvent
from apps.outbox.services import event_require_transaction
from apps.patients.models import Patient, PatientEntitlement, Referral, ScreeningRecord
from apps.scheduling.models import Slot

from .models import (
    LIVE_APPOINTMENT,
    Appointment,
    FreedSlot,
    LiveAppointment,
    ReferralTransition,
    Registration,
)

SLOT = Slot._meta.db_table
REGISTRATION = Registration._meta.db_table
APPOINTMENT = Appointment._meta.db_table
LOCALITY = Locality._meta.db_table


# --- the patient's screening history and entitlement ---------------------------------------------------


def screening_columns(service: str, patient: str = "%(patient)s") -> str:
    """A column named `screened_on`: the latest screening of `patient` for `service` (both SQL
    expressions). Screening records are the one history: the database writes one whenever a screening
    becomes attended (booking 0011), so the interval rules never read the month-partitioned
    appointments (which a patient's id alone would probe month by month, and whose old months are
    detached after the settlement window while a 36- or 60-month interval still counts)."""
    return f"""
    (SELECT max(performed_on) FROM {ScreeningRecord._meta.db_table}
     WHERE patient_id = {patient} AND service_id = {service}) AS screened_on
    """  # noqa: S608 (table names from the models; values are bound)


def last_screening(*, patient_id: int, service_id: int) -> dt.date | None:
    """The latest screening of this kind (`screening_columns`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {screening_columns('%(service)s')}",
            {"patient": patient_id, "service": service_id},
        )
        (screened_on,) = cursor.fetchone()
    return screened_on  # type: ignore[no-any-return]


ENTITLEMENT_SQL = f"""
SELECT e.* FROM {Entitlement._meta.db_table} e
JOIN {PatientEntitlement._meta.db_table} pe ON pe.entitlement_id = e.id
WHERE pe.patient_id = %(patient)s AND pe.valid_from <= %(on)s
  AND (pe.valid_to IS NULL OR pe.valid_to >= %(on)s)
ORDER BY e.priority DESC, e.code
LIMIT 1
"""  # noqa: S608 (table names from the models; values are bound)


def entitlement_for(*, patient: Patient, on: dt.date) -> Entitlement | None:
    """The patient's strongest out-of-turn entitlement valid on a date (the list itself is data).
    Plain SQL: it runs on every booking, and the ORM spent longer composing it than PostgreSQL
    spent answering."""
    return next(iter(Entitlement.objects.raw(ENTITLEMENT_SQL, {"patient": patient.pk, "on": on})), None)


# --- a slot already taken --------------------------------------------------------------------------------

# By its id alone, decided here: with the time, the states and the facility in the statement, a month
# partition whose statistics were stale (a month just filled by publishing) had its generic plan scan
# the facility's index over every future slot instead of probing the key (~2 ms a request, measured);
# by id the key is the only way in, whatever the statistics say.
SLOT_TAKEN_SQL = f"SELECT start, status, facility_id FROM {SLOT} WHERE id = %s"  # noqa: S608 (the model's table)


def slot_taken(*, slot_id: int, now: dt.datetime, facility_id: int | None = None) -> bool:
    """Whether a future slot's committed state rules a booking out (booked, blocked, cancelled); a slot
    of another facility than `facility_id` is not this one's to judge (False, as a missing one)."""
    with prepared_cursor() as cursor:
        cursor.execute(SLOT_TAKEN_SQL, [slot_id])
        row = cursor.fetchone()
    if row is None:
        return False
    start, status, facility = row
    return (
        start > now
        and status not in (Slot.Status.FREE, Slot.Status.HELD)
        and (facility_id is None or facility == facility_id)
    )


# --- the facts of a booking, read with the slot's lock ---------------------------------------------------


@dataclass
class SlotFacts:
    """A locked slot (service and facility loaded) and what the patient's booking of it depends on."""

    slot: Slot
    entitlement: Entitlement | None
    last_screening: dt.date | None
    waiting_id: int | None
    registration_id: int
    appointment_id: int


# The two states it looks for are written into the statement, not bound. As parameters, the generic plan
# (made once per connection) could not use the index of live registrations (its predicate needs the
# state known when planning) and cost more than the custom plans, so PostgreSQL planned the statement
# again on every booking: ~1 ms of database CPU, most of the statement's (the slot by id is looked up in
# every month partition, and each estimated row multiplies the subqueries). As constants both plans are
# the same and the generic one is kept (tests/booking/test_sql.py reads `pg_prepared_statements`).
BOOK_FACTS_SQL = f"""
SELECT {select_columns(Slot, "s")}, {select_columns(Service, "svc")}, {select_columns(Facility, "f")},
    {select_columns(Entitlement, "ent")},
    {screening_columns("s.service_id")},
    (SELECT r.id FROM {REGISTRATION} r
     WHERE r.patient_id = %(patient)s AND r.service_id = s.service_id
       AND r.status = {literal(Registration.Status.WAITING)})
     AS waiting_id,
    nextval(pg_get_serial_sequence('{REGISTRATION}', 'id')) AS registration_id,
    nextval(pg_get_serial_sequence('{APPOINTMENT}', 'id')) AS appointment_id
FROM {SLOT} s
JOIN {Service._meta.db_table} svc ON svc.id = s.service_id
JOIN {Facility._meta.db_table} f ON f.id = s.facility_id
LEFT JOIN LATERAL ({ENTITLEMENT_SQL}) ent ON true
WHERE s.id = %(slot)s
FOR UPDATE OF s
"""  # noqa: S608 (table and column names from the models; values are bound)


def slot_facts(*, slot_id: int, patient_id: int, today: dt.date) -> SlotFacts | None:
    """Lock the slot and read, in one round trip, its service and facility, the patient's waiting-list
    entry and screening history for the service, their entitlement, and the ids a write will use."""
    with prepared_cursor() as cursor:
        cursor.execute(
            BOOK_FACTS_SQL,
            {"slot": slot_id, "patient": patient_id, "on": today},
        )
        row = cursor.fetchone()
        names = column_names(cursor, BOOK_FACTS_SQL)
    if row is None:
        return None
    slot, i = model_from_row(Slot, row)
    slot.service, i = model_from_row(Service, row, i)
    slot.facility, i = model_from_row(Facility, row, i)
    entitlement, i = optional_model_from_row(Entitlement, row, i)
    named = dict(zip(names[i:], row[i:], strict=True))
    return SlotFacts(
        slot=slot,
        entitlement=entitlement,
        last_screening=named["screened_on"],
        waiting_id=named["waiting_id"],
        registration_id=named["registration_id"],
        appointment_id=named["appointment_id"],
    )


def next_appointment_id() -> int:
    """An id for an appointment about to be written by `booking_write` (its event names it)."""
    with prepared_cursor() as cursor:
        cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{APPOINTMENT}', 'id'))")
        (value,) = cursor.fetchone()
    return int(value)


# --- the one booking writer --------------------------------------------------------------------------


class PartialBookingWrite(RuntimeError):
    """`booking_write` wrote the registration but met a live appointment on the slot or of the patient,
    with no savepoint of the caller's to undo it. Unreachable while the invariants hold (the slot is
    locked and free, and a live appointment has a live registration, which the registration's own
    index settles first); the request fails and its transaction rolls back rather than commit it."""


def booking_write(
    *,
    registration: Registration,
    new: bool,
    appointment: Appointment,
    event: OutboxEvent,
    now: dt.datetime,
    in_savepoint: bool = True,
) -> bool:
    """Write a booking in one statement: the registration (a new one, or an existing one now booked:
    a waiting entry given a slot, or a booked one moved to another slot), the appointment, the slot
    taken and the event. Each part is written only if the one before it was; nothing is written if the
    patient already has another live registration for the service, if the slot already has a live
    appointment, or if the referral is held by another live registration (partial unique indexes,
    settled by PostgreSQL, also against concurrent transactions). False when nothing was written, or
    only the registration: the caller's savepoint (or transaction) undoes that partial write; a caller
    without one (`in_savepoint=False`) gets `PartialBookingWrite` instead. Every path that books (book,
    reschedule, waiting-list allocation, rebooking after a facility cancellation) writes through here."""
    event_require_transaction()
    registration_columns: tuple[str, ...] | None = None
    if new:
        columns, reg_params = insert_columns(registration)
        registration_columns = tuple(columns)
    else:
        registration.updated_at = now
        reg_params = [
            Registration.Status.BOOKED,
            now,
            registration.pk,
            Registration.Status.WAITING,
            Registration.Status.BOOKED,
        ]
    registration.status = Registration.Status.BOOKED
    appointment_columns, appointment_params = insert_columns(appointment)
    event_columns, event_params = insert_columns(event)
    sql = _booking_write_sql(registration_columns, tuple(appointment_columns), tuple(event_columns))
    with prepared_cursor() as cursor:
        cursor.execute(sql, [*reg_params, *appointment_params, Slot.Status.BOOKED, now, *event_params])
        row = dict(zip(column_names(cursor, sql), cursor.fetchone(), strict=True))
    if not row["written"]:
        if row["registered"] and not in_savepoint:
            raise PartialBookingWrite(f"registration {registration.pk} written, appointment refused")
        return False
    mark_saved(registration, appointment)
    slot = appointment.slot
    slot.status, slot.hold_until, slot.held_by_id, slot.updated_at = Slot.Status.BOOKED, None, None, now
    return True


@lru_cache(maxsize=32)
def _booking_write_sql(
    registration_columns: tuple[str, ...] | None,
    appointment_columns: tuple[str, ...],
    event_columns: tuple[str, ...],
) -> str:
    """The text of `booking_write`'s statement for these INSERT columns (None: the registration exists
    and is updated), made once per process and shape: the same text every time, as a prepared
    statement wants, without joining it anew on every booking."""
    if registration_columns is not None:
        reg_sql = (
            f"INSERT INTO {REGISTRATION} ({', '.join(registration_columns)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(registration_columns))}) ON CONFLICT DO NOTHING"
        )
    else:
        reg_sql = (
            f"UPDATE {REGISTRATION} SET status = %s, updated_at = %s "  # noqa: S608
            "WHERE id = %s AND status IN (%s, %s)"
        )
    return f"""
    WITH reg AS ({reg_sql} RETURNING id),
    appt AS (
        INSERT INTO {APPOINTMENT} ({", ".join(appointment_columns)})
        SELECT {", ".join(["%s"] * len(appointment_columns))} FROM reg
        ON CONFLICT DO NOTHING RETURNING slot_id
    ),
    taken AS (
        UPDATE {SLOT} SET status = %s, hold_until = NULL, held_by_id = NULL, updated_at = %s
        WHERE id IN (SELECT slot_id FROM appt) RETURNING id
    ),
    event AS (
        INSERT INTO {OutboxEvent._meta.db_table} ({", ".join(event_columns)})
        SELECT {", ".join(["%s"] * len(event_columns))} FROM taken
    )
    SELECT (SELECT count(*) FROM reg) AS registered, (SELECT count(*) FROM taken) AS written
    """  # noqa: S608 (table and column names from the models; values are bound)


# --- the end of a booking: cancellation, release ------------------------------------------------------

APPOINTMENT_LOCK_SQL = f"""
SELECT {select_columns(Appointment, "a")}, {select_columns(Service, "svc")}, {select_columns(Facility, "f")},
    {select_columns(Registration, "r")}
FROM {APPOINTMENT} a
JOIN {Service._meta.db_table} svc ON svc.id = a.service_id
JOIN {Facility._meta.db_table} f ON f.id = a.facility_id
JOIN {REGISTRATION} r ON r.id = a.registration_id
WHERE a.id = %(appointment)s{{month}}
FOR UPDATE OF a
"""  # noqa: S608 (table and column names from the models; values are bound)
# With the appointment's start (its month: the partition key) PostgreSQL reads one month partition;
# by id alone it probes every one (docs/scaling.md, "The appointments").
_LOCK_BY_ID = APPOINTMENT_LOCK_SQL.replace("{month}", "")
_LOCK_IN_MONTH = APPOINTMENT_LOCK_SQL.replace("{month}", " AND a.start = %(start)s")


def appointment_lock(*, appointment_id: int, start: dt.datetime | None = None) -> Appointment | None:
    """Lock an appointment and read, in the same round trip, its service, facility and registration
    (what ending it writes and its event names): `Appointment.objects.select_for_update(of=("self",))
    .select_related("service", "facility", "registration")`, prepared on the server. `start`, the
    appointment's (it never changes), confines the read to its month's partition."""
    with prepared_cursor() as cursor:
        if start is None:
            cursor.execute(_LOCK_BY_ID, {"appointment": appointment_id})
        else:
            cursor.execute(_LOCK_IN_MONTH, {"appointment": appointment_id, "start": start})
        row = cursor.fetchone()
    if row is None:
        return None
    appointment, i = model_from_row(Appointment, row)
    appointment.service, i = model_from_row(Service, row, i)
    appointment.facility, i = model_from_row(Facility, row, i)
    appointment.registration, i = model_from_row(Registration, row, i)
    return appointment


# An appointment's start (its month) from its id: through the live key table (unpartitioned, by its
# primary key) for a live booking; else by id across the months (the one statement that still probes every
# partition, prepared: planned once per connection instead of on every read with its joins, ~4 ms at 34
# partitions). The second part runs only when the first found nothing (LIMIT over UNION ALL).
APPOINTMENT_START_SQL = f"""
(SELECT start FROM {LiveAppointment._meta.db_table} WHERE appointment_id = %(appointment)s)
UNION ALL
(SELECT start FROM {APPOINTMENT} WHERE id = %(appointment)s)
LIMIT 1
"""  # noqa: S608 (table names from the models; values are bound)


def appointment_start(*, appointment_id: int, using: str) -> dt.datetime | None:
    """The start of appointment `appointment_id` (None: there is none), read on `using`."""
    with prepared_cursor(using=using) as cursor:
        cursor.execute(APPOINTMENT_START_SQL, {"appointment": appointment_id})
        row = cursor.fetchone()
    return row[0] if row else None


@dataclass
class Ending:
    """How `appointment_end_write` ends a live appointment (the state and reason are on the instance)."""

    closed_reason: str  # the registration's `closed_reason`
    free_slot: bool  # give the slot back to the pool (if still ahead) and queue it for the waiting list
    referral_from: Sequence[str] = ()  # the e-referral's step, if the registration holds one
    referral_to: str = ""
    referral_reason: str = ""


_END_APPOINTMENT = f"""ended AS (
    UPDATE {APPOINTMENT} SET status = %(status)s, reason_id = %(reason)s, ended_at = %(ended_at)s,
        version = %(version)s, updated_at = %(now)s
    WHERE id = %(appointment)s AND start = %(start)s AND status = ANY(%(live)s)
    RETURNING registration_id, slot_id
),
closed AS (
    UPDATE {REGISTRATION} r SET status = %(closed)s, closed_at = %(now)s,
        closed_reason = %(closed_reason)s, updated_at = %(now)s
    FROM ended WHERE r.id = ended.registration_id RETURNING r.id
)"""  # noqa: S608 (table names from the models; values are bound)
_END_REFERRAL = f"""before AS (
    SELECT ref.id, ref.status FROM {Referral._meta.db_table} ref, closed
    WHERE ref.id = %(referral)s AND ref.status = ANY(%(referral_from)s) FOR UPDATE OF ref
),
moved AS (
    UPDATE {Referral._meta.db_table} ref
    SET status = %(referral_to)s, status_at = %(now)s, updated_at = %(now)s
    FROM before WHERE ref.id = before.id RETURNING before.status AS from_status
),
step AS (
    INSERT INTO {ReferralTransition._meta.db_table}
        (referral_id, registration_id, from_status, to_status, reason, at)
    SELECT %(referral)s, %(registration)s, from_status, %(referral_to)s, %(referral_reason)s, %(now)s
    FROM moved
)"""  # noqa: S608 (table names from the models; values are bound)
_END_SLOT = f"""freed AS (
    UPDATE {SLOT} s SET status = %(free)s, hold_until = NULL, held_by_id = NULL, updated_at = %(now)s
    FROM ended WHERE s.id = ended.slot_id AND s.start = %(start)s AND s.status = %(booked)s
        AND s.start > %(now)s
    RETURNING s.id
),
queued AS (
    INSERT INTO {FreedSlot._meta.db_table} (slot_id, freed_at) SELECT id, %(now)s FROM freed
    ON CONFLICT DO NOTHING
)"""  # noqa: S608 (table names from the models; values are bound)


def _event_insert(columns: list[str], source: str) -> str:
    """`event AS (INSERT ... SELECT <params e0..eN> FROM source)`: the event written if `source` has a row."""
    values = ", ".join(f"%(e{i})s" for i in range(len(columns)))
    table = OutboxEvent._meta.db_table
    return f"event AS (INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {source})"  # noqa: S608


def appointment_end_write(
    *, appointment: Appointment, ending: Ending, event: OutboxEvent, now: dt.datetime
) -> int | None:
    """End a locked, live appointment in one statement, as the ORM steps of the services did one by
    one: the appointment's state, reason, end time and version (as set on the instance), its
    registration closed, the e-referral's step recorded (`referral_transition`, if the registration
    holds one and it is in `referral_from`), the slot back in the pool if it is still booked and ahead
    (and queued for the waiting list: `booking_freedslot`, as `services.waitlist_queue_freed`), and the
    event. Returns the id of the freed slot, or None if none was freed. Raises if the appointment was
    no longer live (the caller holds its lock, so it cannot be)."""
    event_require_transaction()
    registration = appointment.registration
    appointment.updated_at = now
    registration.status = Registration.Status.CLOSED
    registration.closed_at = now
    registration.closed_reason = ending.closed_reason
    registration.updated_at = now
    event_columns, event_params = insert_columns(event)
    parts = [_END_APPOINTMENT, _event_insert(event_columns, "ended")]
    params: dict[str, object] = {
        "appointment": appointment.pk,
        "start": appointment.start,  # the appointment's and its slot's: one month partition of each
        "status": appointment.status,
        "reason": appointment.reason_id,
        "ended_at": appointment.ended_at,
        "version": appointment.version,
        "now": now,
        "live": list(LIVE_APPOINTMENT),
        "closed": Registration.Status.CLOSED,
        "closed_reason": ending.closed_reason,
        **{f"e{i}": value for i, value in enumerate(event_params)},
    }
    if ending.referral_from and registration.referral_id is not None:
        parts.append(_END_REFERRAL)
        params |= {
            "referral": registration.referral_id,
            "registration": registration.pk,
            "referral_from": list(ending.referral_from),
            "referral_to": ending.referral_to,
            "referral_reason": ending.referral_reason,
        }
    freed = "NULL::bigint"
    if ending.free_slot:
        parts.append(_END_SLOT)
        params |= {"free": Slot.Status.FREE, "booked": Slot.Status.BOOKED}
        freed = "(SELECT id FROM freed)"
    with prepared_cursor() as cursor:
        statement = f"WITH {', '.join(parts)} SELECT (SELECT count(*) FROM ended), {freed}"  # noqa: S608
        cursor.execute(statement, params)
        ended, freed_slot_id = cursor.fetchone()
    if not ended:
        raise RuntimeError(f"appointment {appointment.pk} was not live under its lock")
    return int(freed_slot_id) if freed_slot_id is not None else None


# --- the e-referral's transitions ---------------------------------------------------------------------

REFERRAL_TRANSITION_SQL = f"""
WITH before AS (
    SELECT id, status FROM {Referral._meta.db_table}
    WHERE id = %(referral)s AND status = ANY(%(from)s) FOR UPDATE
),
moved AS (
    UPDATE {Referral._meta.db_table} r SET status = %(to)s, status_at = %(now)s, updated_at = %(now)s
    FROM before WHERE r.id = before.id RETURNING before.status AS from_status
)
INSERT INTO {ReferralTransition._meta.db_table}
    (referral_id, registration_id, from_status, to_status, reason, at)
SELECT %(referral)s, %(registration)s, from_status, %(to)s, %(reason)s, %(now)s FROM moved
"""  # noqa: S608 (table names from the models; values are bound)


def referral_transition(
    *,
    referral_id: int,
    registration_id: int | None,
    from_statuses: Sequence[str],
    to: str,
    reason: str,
    now: dt.datetime,
) -> bool:
    """Move a referral from one of `from_statuses` to `to` and record the step, in one statement.
    False (nothing written) when the referral is in none of them."""
    with prepared_cursor() as cursor:
        cursor.execute(
            REFERRAL_TRANSITION_SQL,
            {
                "referral": referral_id,
                "registration": registration_id,
                "from": list(from_statuses),
                "to": to,
                "reason": reason,
                "now": now,
            },
        )
        return bool(cursor.rowcount)


# --- the central waiting list: which registration matches which slot ------------------------------------

# Great-circle distance (haversine, km) between the slot `s` and the registration's locality `loc`.
_DISTANCE = (
    "2 * 6371.0 * asin(sqrt(power(sin(radians(s.lat - loc.lat) / 2), 2) + "
    "cos(radians(loc.lat)) * cos(radians(s.lat)) * power(sin(radians(s.lon - loc.lon) / 2), 2)))"
)

# The match between a waiting registration (r) and a free slot (s): service, window, place, facility,
# practitioner, look-ahead, and not a slot this patient already released. The booking rules (age, sex,
# interval, referral, slot kind) run in Python on each candidate (`rules.check`); the kind filter here
# only spares them slots no registration may take, and `ELIGIBLE_SQL` below candidates they would refuse.
MATCH_SQL = f"""
    r.service_id = s.service_id
    AND r.status = 'waiting'
    AND s.status = 'free' AND s.kind = 'first'
    AND s.start > %(now)s::timestamptz
    AND s.start < %(now)s::timestamptz + make_interval(days => svc.waitlist_lookahead_days)
    AND (r.date_from IS NULL OR s.start >= (r.date_from::timestamp AT TIME ZONE 'Europe/Warsaw'))
    AND (r.date_to IS NULL OR s.start < ((r.date_to + 1)::timestamp AT TIME ZONE 'Europe/Warsaw'))
    AND (r.facility_id IS NULL OR r.facility_id = s.facility_id)
    AND (r.practitioner_id IS NULL OR r.practitioner_id = s.practitioner_id)
    AND (COALESCE(r.voivodeship_id, %(default_voiv)s::text) IS NULL
         OR COALESCE(r.voivodeship_id, %(default_voiv)s::text) = s.voivodeship_id)
    AND (r.locality_id IS NULL
         OR (r.max_distance_km IS NULL AND r.locality_id = s.locality_id)
         OR (r.max_distance_km IS NOT NULL AND {_DISTANCE} <= r.max_distance_km))
    AND NOT (s.id = ANY(r.declined_slot_ids))
"""
QUEUE_ORDER = "r.priority DESC, r.urgent DESC, r.joined_at, r.id"

# The rules `sex`, `age` and `screening_interval` (`rules.py`) as a filter on the patient (p) of a
# candidate (r) for the slot (s): the programme's sex, the age by year of birth and the interval since the
# last screening (`screening_columns`), each on the slot's Warsaw date
# and read from the catalogue row (svc). Python still judges every candidate with every rule; this only
# lets the queue walk pass over entries those rules would refuse on that date (a screening queue holds
# entries screened since they joined for a later date, aged out at New Year, or joined under an older
# catalogue), which it otherwise fetched, locked and judged twenty at a time, giving the slot up after
# `SCAN_LIMIT`. `tests/booking/test_sql.py` holds it equal to the three rules on every boundary.
_VISIT_DAY = "(s.start AT TIME ZONE 'Europe/Warsaw')::date"
_VISIT_YEAR = f"extract(year FROM {_VISIT_DAY})::int"
_INTERVAL = "CASE WHEN p.screening_risk_group THEN svc.interval_months_risk ELSE svc.interval_months END"
_LAST_SCREENING = f"""(SELECT max(performed_on) FROM {ScreeningRecord._meta.db_table}
     WHERE patient_id = r.patient_id AND service_id = r.service_id)"""  # noqa: S608


def eligible_sql(last_screening: str) -> str:
    """`ELIGIBLE_SQL` with `last_screening` (an SQL date, NULL for none) as the last screening."""
    return f"""
    (svc.eligible_sex = '' OR p.sex = svc.eligible_sex)
    AND (svc.age_min IS NULL OR {_VISIT_YEAR} - extract(year FROM p.birth_date)::int >= svc.age_min)
    AND (svc.age_max IS NULL OR {_VISIT_YEAR} - extract(year FROM p.birth_date)::int <= svc.age_max)
    AND (COALESCE({_INTERVAL}, 0) = 0
         OR ({_VISIT_DAY} >= ({last_screening} + make_interval(months => {_INTERVAL}))::date) IS NOT FALSE)
"""


ELIGIBLE_SQL = eligible_sql(_LAST_SCREENING)


@dataclass
class Candidate:
    """A waiting registration matching a slot, locked, with the facts the booking rules need: its
    patient and screening history, and the registration itself with its e-referral and entitlement
    (`lock_registration`'s read, done in the same statement)."""

    registration_id: int
    patient: Patient
    last_screening: dt.date | None
    registration: Registration


# The registration (r), its e-referral and entitlement, the patient (p) and the screening history of
# a candidate row, in the order `_candidates_from_rows` reads them.
_CANDIDATE_COLUMNS = f"""{select_columns(Registration, "r")}, {select_columns(Referral, "ref")},
    {select_columns(Entitlement, "ent")}, {select_columns(Patient, "p")},
    {screening_columns("r.service_id", "r.patient_id")}"""
_CANDIDATE_JOINS = f"""JOIN {Patient._meta.db_table} p ON p.id = r.patient_id
    LEFT JOIN {Referral._meta.db_table} ref ON ref.id = r.referral_id
    LEFT JOIN {Entitlement._meta.db_table} ent ON ent.id = r.entitlement_id"""


def _candidates_from_rows(rows: Sequence[Sequence[object]], start: int) -> list[Candidate]:
    """Candidates from rows with `_CANDIDATE_COLUMNS` at `start`; one model per registration (a
    registration is a candidate of many slots of a batch)."""
    made: dict[int, Candidate] = {}
    found = []
    pk_at = start + [f.primary_key for f in Registration._meta.concrete_fields].index(True)
    for row in rows:
        registration_id = int(row[pk_at])  # type: ignore[call-overload]
        candidate = made.get(registration_id)
        if candidate is None:
            registration, i = model_from_row(Registration, row, start)
            referral, i = model_from_row(Referral, row, i)
            entitlement, i = model_from_row(Entitlement, row, i)
            patient, i = model_from_row(Patient, row, i)
            registration.referral = referral if referral.pk is not None else None
            registration.entitlement = entitlement if entitlement.pk is not None else None
            registration.patient = patient
            last: dt.date | None = row[i]  # type: ignore[assignment]
            candidate = made[registration_id] = Candidate(registration_id, patient, last, registration)
        found.append(candidate)
    return found


# The slot side of `MATCH_SQL` (`s`), from the locked rows the caller holds: the candidates' statements
# do not read the slot table. Joined to it by id, which the month partitions no longer make unique (their
# key is (id, start)), the planner could not tell that one slot row comes out: it joined every matching
# entry of the queue (7,000 of 35,000 for a national cardiology queue) with its patient and e-referral and
# sorted them, 80-200 ms a slot, where one row in front of the `waitlist_order` index scan stops after
# `limit` matches (docs/performance.md e). A slot's row cannot change under its lock, so its values are
# the row's. One slot: a row without FROM (the planner knows it is one); many: the rows of `unnest`, each
# in front of its own LATERAL scan of the queue.
_SLOT_SIDE = (
    ("id", "bigint"),
    ("service_id", "bigint"),
    ("status", "text"),
    ("kind", "text"),
    ("start", "timestamptz"),
    ("facility_id", "bigint"),
    ("practitioner_id", "bigint"),
    ("voivodeship_id", "text"),
    ("locality_id", "bigint"),
    ("lat", "float8"),
    ("lon", "float8"),
)
_SLOTS_AS_ROWS = (
    "unnest("
    + ", ".join(f"%(s_{name})s::{kind}[]" for name, kind in _SLOT_SIDE)
    + ", %(limits)s::int[]) WITH ORDINALITY AS s("
    + ", ".join(name for name, _kind in _SLOT_SIDE)
    + ", lim, n)"
)


_SLOT_AS_ROW = "(SELECT " + ", ".join(f"%(s_{name})s::{kind} AS {name}" for name, kind in _SLOT_SIDE) + ") s"


def _slot_side(slots: Sequence[Slot]) -> dict[str, list[Any]]:
    return {f"s_{name}": [getattr(slot, name) for slot in slots] for name, _kind in _SLOT_SIDE}


def waitlist_candidates(*, slot: Slot, now: dt.datetime, skip: Sequence[int], limit: int) -> list[Candidate]:
    """Waiting registrations matching a (locked) slot, in queue order, locked (SKIP LOCKED: one being
    handled by another worker is passed over), with their patient, screening history, e-referral and
    entitlement; `skip` are ids already found not to qualify."""
    with prepared_cursor() as cursor:
        cursor.execute(
            f"""
            SELECT {_CANDIDATE_COLUMNS}
            FROM {REGISTRATION} r
            JOIN {Service._meta.db_table} svc ON svc.id = r.service_id
            CROSS JOIN {_SLOT_AS_ROW}
            LEFT JOIN {LOCALITY} loc ON loc.id = r.locality_id
            {_CANDIDATE_JOINS}
            WHERE {MATCH_SQL} AND {ELIGIBLE_SQL} AND r.id <> ALL(%(skip)s::bigint[])
            ORDER BY {QUEUE_ORDER}
            LIMIT %(limit)s::int
            FOR UPDATE OF r SKIP LOCKED
            """,  # noqa: S608 (constant fragments; every value is bound)
            {
                **{f"s_{name}": getattr(slot, name) for name, _kind in _SLOT_SIDE},
                "now": now,
                "default_voiv": None,
                "skip": list(skip),
                "limit": limit,
            },
        )
        return _candidates_from_rows(cursor.fetchall(), 0)


def waitlist_candidates_for_slots(
    *, slots: Sequence[Slot], now: dt.datetime, limits: Sequence[int]
) -> dict[int, list[Candidate]]:
    """`waitlist_candidates` for many (locked) slots in one statement: for each slot, its first
    `limits[i]` matching waiting registrations in queue order, locked (SKIP LOCKED). A registration
    may be a candidate of several slots; the caller skips one it has booked meanwhile."""
    if len(limits) != len(slots):
        raise ValueError("one limit per slot")
    found: dict[int, list[Candidate]] = {slot.pk: [] for slot in slots}
    if not slots:
        return found
    with prepared_cursor() as cursor:
        cursor.execute(
            f"""
            SELECT c.slot_id, {_CANDIDATE_COLUMNS}
            FROM {_SLOTS_AS_ROWS}
            CROSS JOIN LATERAL (
                SELECT s.id AS slot_id, r.id AS registration_id
                FROM {REGISTRATION} r
                JOIN {Service._meta.db_table} svc ON svc.id = r.service_id
                JOIN {Patient._meta.db_table} p ON p.id = r.patient_id
                LEFT JOIN {LOCALITY} loc ON loc.id = r.locality_id
                WHERE {MATCH_SQL} AND {ELIGIBLE_SQL}
                ORDER BY {QUEUE_ORDER}
                LIMIT s.lim
                FOR UPDATE OF r SKIP LOCKED
            ) c
            JOIN {REGISTRATION} r ON r.id = c.registration_id
            {_CANDIDATE_JOINS}
            ORDER BY s.n, {QUEUE_ORDER}
            """,  # noqa: S608 (constant fragments; every value is bound)
            {
                **_slot_side(slots),
                "now": now,
                "default_voiv": None,
                "limits": list(limits),
            },
        )
        rows = cursor.fetchall()
    for row, candidate in zip(rows, _candidates_from_rows(rows, 1), strict=True):
        found[int(row[0])].append(candidate)
    return found


WAITLIST_POSITIONS_SQL = f"""
SELECT r.id, 1
    + (SELECT count(*) FROM {REGISTRATION} w
       WHERE w.service_id = r.service_id AND w.status = 'waiting' AND w.priority > r.priority)
    + (SELECT count(*) FROM {REGISTRATION} w
       WHERE w.service_id = r.service_id AND w.status = 'waiting' AND w.priority = r.priority
         AND w.urgent > r.urgent)
    + (SELECT count(*) FROM {REGISTRATION} w
       WHERE w.service_id = r.service_id AND w.status = 'waiting' AND w.priority = r.priority
         AND w.urgent = r.urgent AND (w.joined_at, w.id) < (r.joined_at, r.id)) AS position
FROM {REGISTRATION} r WHERE r.id = ANY(%(ids)s)
"""  # noqa: S608 (the table name from the model; values are bound)
# Each count is a range of `waitlist_order` (service, priority DESC, urgent DESC, joined_at, id) WHERE
# status = 'waiting' (written, not bound, so that a generic plan may use the partial index): the entries
# ahead, and only those, are read. One count with the four cases OR-ed walked the service's whole queue
# for every registration (21 k entries, ~10 ms each, at national size).


def waitlist_positions(*, registration_ids: Sequence[int]) -> dict[int, int]:
    """`selectors.waitlist_position` of many registrations in one statement: each one's 1-based place
    in its service's queue of waiting entries."""
    if not registration_ids:
        return {}
    with prepared_cursor() as cursor:
        cursor.execute(WAITLIST_POSITIONS_SQL, {"ids": list(registration_ids)})
        return {int(pk): int(position) for pk, position in cursor.fetchall()}


NEXT_APPOINTMENT_IDS_SQL = f"""
SELECT nextval(pg_get_serial_sequence('{APPOINTMENT}', 'id')) FROM generate_series(1, %(n)s::int)
"""  # noqa: S608 (the table name from the model; the count is bound)


def next_appointment_ids(count: int) -> list[int]:
    """`count` ids for appointments about to be written by `booking_write`, in one round trip."""
    with prepared_cursor() as cursor:
        cursor.execute(NEXT_APPOINTMENT_IDS_SQL, {"n": count})
        return [int(value) for (value,) in cursor.fetchall()]


def waitlist_slots(
    *,
    registration_id: int,
    now: dt.datetime,
    not_before: dt.datetime | None,
    default_voivodeship_id: str | None,
    exclude: Sequence[int],
    limit: int,
) -> list[int]:
    """Free slots matching a (locked, waiting) registration, earliest first, locked (SKIP LOCKED);
    none before `not_before` (the earliest day the booking rules could allow)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT s.id FROM {SLOT} s
            JOIN {REGISTRATION} r ON r.id = %(reg)s
            JOIN {Service._meta.db_table} svc ON svc.id = r.service_id
            LEFT JOIN {LOCALITY} loc ON loc.id = r.locality_id
            WHERE {MATCH_SQL} AND s.id <> ALL(%(exclude)s)
              AND (%(not_before)s::timestamptz IS NULL OR s.start >= %(not_before)s::timestamptz)
            ORDER BY s.start, s.id
            LIMIT %(limit)s
            FOR UPDATE OF s SKIP LOCKED
            """,  # noqa: S608 (constant fragments; every value is bound)
            {
                "reg": registration_id,
                "now": now,
                "default_voiv": default_voivodeship_id,
                "exclude": list(exclude),
                "not_before": not_before,
                "limit": limit,
            },
        )
        return [row[0] for row in cursor.fetchall()]


# pg_advisory_xact_lock(int, int): the first key names the booking core's locks, the second the use.
ADVISORY_CLASS = 19_000
DRAIN_LOCK = 1


def waitlist_drain_lock() -> None:
    """Take the freed-slot drain's lock until the transaction ends (waiting for another drain's).

    Two drains at once would lock disjoint slots but overlapping candidates (SKIP LOCKED), so one could
    pass over the patient the other holds for a slot it then leaves; one chunk at a time, in the order
    freed, they allocate exactly as a single worker would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ADVISORY_CLASS, DRAIN_LOCK])
