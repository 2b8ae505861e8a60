"""All hand-written SQL of the reconciliation app (tests/reconciliation/test_sql.py compares each
statement with a plain-ORM computation): the import's statements (existing visits, new visits,
corrections and withdrawals), then the reconciliation as set-based SQL (DESIGN.md section 8): per
run, one UPDATE resolving PESELs of patients who joined CeR since the import; per chunk of visit ids,
one DELETE (normally of nothing) and one INSERT ... SELECT deciding every visit of the chunk; then one
window-function UPDATE for duplicate claims and one UPDATE carrying staff overrides forward.

Rule order for one visit (the first that applies gives the reason; docs/reconciliation.md):
  0. the facility withdrew the visit                 -> ineligible withdrawn
  1. visit day before the service's `cer_from`       -> eligible   service_not_in_scope
  2. visit day before the obligation date            -> eligible   facility_not_obliged
     (`catalog.selectors.registration_obligatory_from`: the later of service and facility dates)
  3. emergency flag, but the PESEL is unknown to CeR -> ineligible emergency_no_patient
  the appointments of the same patient, facility and service on the visit day (Warsaw time) give one
  candidate: a live one booked before the visit first, then a live one booked after it, then a
  recorded no-show, then one that ended (cancelled/released/rescheduled) before the visit; nearest
  start, then lowest id:
  4. a live appointment booked before the visit      -> eligible   matched_registration
  5. a live appointment booked after the visit began -> ineligible booked_after_visit
  6. the facility recorded the appointment a no-show -> ineligible no_show
  7. only appointments that ended before the visit   -> ineligible registration_cancelled
  8. emergency flag (known patient, no such appointment) -> eligible emergency
  9. a live appointment that day, same patient and service, at another facility -> facility_mismatch
 10. a live appointment that day, same patient and facility, for another service -> service_mismatch
 11. otherwise                                        -> ineligible no_registration
  then, over the whole run: two visits matched to one appointment -> all but the first (by visit
  time, then visit id) become ineligible duplicate_claim; likewise two emergency claims of the same
  patient, facility, service and day.
"""

# Table names are interpolated from the models' Meta; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.db import OperationalError, connection, transaction

from apps.booking.models import Appointment
from apps.catalog.models import Facility, Service
from apps.patients.models import Patient

from .imports import VisitRow
from .models import (
    CLAIMED_REASONS,
    ELIGIBLE_REASONS,
    Override,
    Reason,
    ReportedVisit,
    Verdict,
    VisitKey,
    VisitVersion,
)

# Bumped whenever the rule order or a rule's meaning changes; stored on every run and verdict
# (together with the catalogue's per-service `rule_version`).
RULES_VERSION = "2026.2"
TIME_ZONE = "Europe/Warsaw"
WARSAW = ZoneInfo(TIME_ZONE)
# Appointment states that end a registration; if that happened before the visit, it no longer counts.
ENDING_STATES = (
    Appointment.Status.CANCELLED_BY_PATIENT,
    Appointment.Status.CANCELLED_BY_FACILITY,
    Appointment.Status.RELEASED,
    Appointment.Status.RESCHEDULED,
)

T_VISIT = ReportedVisit._meta.db_table
T_VERDICT = Verdict._meta.db_table
T_OVERRIDE = Override._meta.db_table
T_APPOINTMENT = Appointment._meta.db_table
T_SERVICE = Service._meta.db_table
T_FACILITY = Facility._meta.db_table
T_PATIENT = Patient._meta.db_table
T_VERSION = VisitVersion._meta.db_table
T_KEY = VisitKey._meta.db_table

# --- Import: reported visits, their corrections and withdrawals ---------------------------------------
#
# Both tables are month partitions (apps/reconciliation/partitions.py): the visits on `visit_at`, the
# verdicts on the run's `period_start`. A visit is found through its key (`VisitKey`: the unique
# (facility, visit id) and a copy of the visit's `visit_at`), so each lookup reads one partition.

# The keys of the rows' (facility, visit id), row-locked so that two corrections of one visit cannot
# interleave. The key row is locked, not the visit: a correction may move the visit to another month's
# partition, and a lock waiting on a row that moved fails (serialization error); the key row stays, and
# the waiter reads its new `visit_at`.
LOCK_KEYS_SQL = f"""
SELECT k.visit_id, k.visit_at FROM {T_KEY} k
JOIN unnest(%s::bigint[], %s::text[]) AS u(facility_id, visit_id)
  ON k.facility_id = u.facility_id AND k.facility_visit_id = u.visit_id
ORDER BY k.visit_id
FOR UPDATE OF k
"""

# The visits of the locked keys, each in its partition (a new statement: it sees what a correction the
# lock waited for committed).
EXISTING_SQL = f"""
SELECT rv.id, rv.facility_id, rv.facility_visit_id, rv.patient_pesel, rv.service_id, rv.visit_at,
       rv.emergency, rv.withdrawn
FROM {T_VISIT} rv
JOIN unnest(%s::bigint[], %s::timestamptz[]) AS k(id, visit_at) ON rv.id = k.id AND rv.visit_at = k.visit_at
ORDER BY rv.id
"""

# New visits: the key first, `ON CONFLICT DO NOTHING` (the rule across every month partition: a visit id
# the facility already reported, earlier, twice in the file or in an import committing at this moment,
# which this waits for, is left as it was), then the visits whose keys were written, with the ids the
# keys took (drawn in line order); patients are resolved by PESEL in the same statement. The visits'
# trigger finds each key written (partitions.KEY_TRIGGER_SQL).
INSERT_SQL = f"""
WITH r AS MATERIALIZED (
    SELECT nextval('{T_VISIT}_id_seq') AS id, r.*
    FROM (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::timestamptz[],
                               %s::boolean[], %s::int[])
                 AS r(facility_id, visit_id, pesel, service_id, visit_at, emergency, line)
          ORDER BY r.line) r
), keyed AS (
    INSERT INTO {T_KEY} (visit_id, facility_id, facility_visit_id, visit_at)
    SELECT id, facility_id, visit_id, visit_at FROM r ORDER BY line
    ON CONFLICT (facility_id, facility_visit_id) DO NOTHING
    RETURNING visit_id
)
INSERT INTO {T_VISIT} (id, facility_id, facility_visit_id, patient_pesel, patient_id, service_id,
                       visit_at, emergency, batch_id, source_row, created_at)
SELECT r.id, r.facility_id, r.visit_id, r.pesel, p.id, r.service_id, r.visit_at, r.emergency, %s, r.line,
       now()
FROM keyed JOIN r ON r.id = keyed.visit_id
LEFT JOIN {T_PATIENT} p ON p.pesel = r.pesel
ORDER BY r.line
"""

# A correction keeps the visit's current version in the version table (its `current_visit_at` is the
# visit's, and follows it when the UPDATE below changes it: ON UPDATE CASCADE) ...
KEEP_VERSION_SQL = f"""
INSERT INTO {T_VERSION} (visit_id, current_visit_at, version, patient_pesel, service_id, visit_at,
                         emergency, withdrawn, correction_reason, batch_id, source_row, recorded_at,
                         superseded_at)
SELECT rv.id, rv.visit_at, rv.version, rv.patient_pesel, rv.service_id, rv.visit_at, rv.emergency,
       rv.withdrawn, rv.correction_reason, rv.batch_id, rv.source_row, COALESCE(rv.version_at, rv.created_at),
       now()
FROM {T_KEY} k JOIN {T_VISIT} rv ON rv.id = k.visit_id AND rv.visit_at = k.visit_at
WHERE k.visit_id = ANY(%s::bigint[])
"""

# ... and makes the visit's row the new version (the row always holds the latest, which runs decide). A
# new time in another month moves the row to that month's partition; the copies of its `visit_at` in
# the key, versions and overrides follow (ON UPDATE CASCADE).
CORRECT_SQL = f"""
UPDATE {T_VISIT} rv
SET patient_pesel = r.pesel, patient_id = p.id, service_id = r.service_id, visit_at = r.visit_at,
    emergency = r.emergency, withdrawn = r.withdraw, correction_reason = r.reason,
    version = rv.version + 1, version_at = now(), batch_id = %s, source_row = r.line
FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::timestamptz[], %s::boolean[], %s::boolean[],
            %s::text[], %s::int[])
     AS r(id, pesel, service_id, visit_at, emergency, withdraw, reason, line)
JOIN {T_KEY} k ON k.visit_id = r.id
LEFT JOIN {T_PATIENT} p ON p.pesel = r.pesel
WHERE rv.id = k.visit_id AND rv.visit_at = k.visit_at
"""


def _columns(rows: list[VisitRow], *fields: str) -> list[list[Any]]:
    """The rows as one array per field: the parameters of an `unnest(...)`."""
    return [[getattr(r, name) for r in rows] for name in fields]


def visits_current(rows: list[VisitRow]) -> list[tuple[int, VisitRow]]:
    """(visit id, current content) of the visits already reported under the rows' keys, their key rows
    locked until the transaction ends."""
    if not rows:
        return []
    with connection.cursor() as cursor:
        cursor.execute(LOCK_KEYS_SQL, _columns(rows, "facility_id", "visit_id"))
        keys = cursor.fetchall()
        if not keys:
            return []
        cursor.execute(EXISTING_SQL, [[pk for pk, _at in keys], [at for _pk, at in keys]])
        return [
            (pk, VisitRow(0, pesel, facility_id, service_id, at, emergency, visit_id, withdrawn))
            for pk, facility_id, visit_id, pesel, service_id, at, emergency, withdrawn in cursor.fetchall()
        ]


def visits_insert(*, batch_id: int, rows: list[VisitRow]) -> int:
    """Insert new visits in one statement; returns how many were new."""
    if not rows:
        return 0
    fields = ("facility_id", "visit_id", "pesel", "service_id", "visit_at", "emergency", "line")
    with connection.cursor() as cursor:
        cursor.execute(INSERT_SQL, [*_columns(rows, *fields), batch_id])
        return cursor.rowcount


def visits_correct(*, batch_id: int, corrections: list[tuple[int, VisitRow]]) -> int:
    """Keep each corrected visit's current version in `VisitVersion` and make the row the new version,
    in two statements. Runs decide the latest version; their verdicts name the version they used."""
    if not corrections:
        return 0
    ids = [pk for pk, _row in corrections]
    rows = [row for _pk, row in corrections]
    fields = ("pesel", "service_id", "visit_at", "emergency", "withdraw", "correction_reason", "line")
    with connection.cursor() as cursor:
        cursor.execute(KEEP_VERSION_SQL, [ids])
        cursor.execute(CORRECT_SQL, [batch_id, ids, *_columns(rows, *fields)])
        return cursor.rowcount


# --- Reconciliation -----------------------------------------------------------------------------------

_LIVE_AT_VISIT = "NOT (a.status = ANY(%(ending)s) AND (a.ended_at IS NULL OR a.ended_at <= v.visit_at))"

CHUNK_SQL = f"""
WITH v AS (
    SELECT rv.id, rv.facility_id, rv.service_id, rv.patient_id, rv.visit_at, rv.emergency,
           rv.withdrawn, rv.version,
           (rv.visit_at AT TIME ZONE %(tz)s)::date AS day,
           ((rv.visit_at AT TIME ZONE %(tz)s)::date::timestamp AT TIME ZONE %(tz)s) AS day_start,
           (((rv.visit_at AT TIME ZONE %(tz)s)::date + 1)::timestamp AT TIME ZONE %(tz)s) AS day_end,
           s.cer_from,
           GREATEST(s.obligatory_from, COALESCE(f.obligatory_from, s.obligatory_from)) AS obliged_from,
           %(rules)s || '.s' || s.rule_version AS rule_version
    FROM {T_VISIT} rv
    JOIN {T_SERVICE} s ON s.id = rv.service_id
    JOIN {T_FACILITY} f ON f.id = rv.facility_id
    WHERE rv.id > %(lo)s AND rv.id <= %(hi)s
      AND rv.visit_at >= %(start)s AND rv.visit_at < %(end)s
      AND (%(facility)s::bigint IS NULL OR rv.facility_id = %(facility)s::bigint)
),
-- MATERIALIZED: the reason is used four times below; inlined, its CASE would run four times.
decided AS MATERIALIZED (
    SELECT v.id AS visit_id, v.facility_id, v.service_id, v.visit_at, v.rule_version, v.version,
           c.best[3] AS appointment_id,
           CASE
               WHEN v.withdrawn THEN 'withdrawn'
               WHEN v.day < v.cer_from THEN 'service_not_in_scope'
               WHEN v.day < v.obliged_from THEN 'facility_not_obliged'
               WHEN v.emergency AND v.patient_id IS NULL THEN 'emergency_no_patient'
               WHEN c.best[1] = 0 THEN 'matched_registration'
               WHEN c.best[1] = 1 THEN 'booked_after_visit'
               WHEN c.best[1] = 2 THEN 'no_show'
               WHEN c.best[1] = 3 THEN 'registration_cancelled'
               WHEN v.emergency THEN 'emergency'
               WHEN c.other_facility THEN 'facility_mismatch'
               WHEN c.other_service THEN 'service_mismatch'
               ELSE 'no_registration'
           END AS reason
    FROM v
    -- One probe of the (patient, service, start) index per visit reads the patient's appointments
    -- (a handful), keeps that day's, and answers rules 4-10 at once: the candidate of the same facility
    -- and service (by rank, then the nearest start, then the lowest id: deterministic; the array
    -- carries its rank and id), and whether a live one exists at another facility, or for another
    -- service here. (Rules 9-10 as EXISTS probes cost two more index descents per unmatched visit.)
    LEFT JOIN LATERAL (
        SELECT min(ARRAY[
                    -- the candidate's rank: 0 live and booked before the visit, 1 live but booked
                    -- after the visit began, 2 a recorded no-show, 3 ended before the visit
                    CASE WHEN NOT ({_LIVE_AT_VISIT}) THEN 3
                         WHEN a.status = %(no_show)s THEN 2
                         WHEN a.created_at > v.visit_at THEN 1
                         ELSE 0 END,
                    (abs(extract(epoch FROM a.start - v.visit_at)) * 1000000)::bigint,
                    a.id
                ]) FILTER (WHERE a.service_id = v.service_id AND a.facility_id = v.facility_id)
                   AS best,
               bool_or({_LIVE_AT_VISIT})
                   FILTER (WHERE a.service_id = v.service_id AND a.facility_id <> v.facility_id)
                   AS other_facility,
               bool_or({_LIVE_AT_VISIT})
                   FILTER (WHERE a.facility_id = v.facility_id AND a.service_id <> v.service_id)
                   AS other_service
        FROM {T_APPOINTMENT} a
        WHERE a.patient_id = v.patient_id AND a.start >= v.day_start AND a.start < v.day_end
    ) c ON true
),
inserted AS (
    -- A plain INSERT: the chunk's rows of this run were deleted just before (CLEAR_SQL), so there is
    -- nothing to conflict with; ON CONFLICT's speculative insertion cost a probe per row for nothing.
    INSERT INTO {T_VERDICT} (run_id, period_start, visit_id, facility_id, service_id, visit_at, eligible,
                             reason, matched_appointment_id, rule_version, visit_version, final_eligible,
                             override_id)
    SELECT %(run)s, %(period)s::date, d.visit_id, d.facility_id, d.service_id, d.visit_at,
           d.reason = ANY(%(eligible)s), d.reason,
           CASE WHEN d.reason = ANY(%(claimed)s) THEN d.appointment_id END,
           d.rule_version, d.version, d.reason = ANY(%(eligible)s), NULL
    FROM decided d
    -- In the order of the (run, facility, visit_at) index: each chunk sweeps that index once instead
    -- of inserting at random places in it (at millions of verdicts it no longer fits in the cache).
    ORDER BY d.facility_id, d.visit_at
    RETURNING eligible
)
-- The counts go to the run with the chunk's progress: no pass over the run's verdicts to count them.
SELECT count(*), count(*) FILTER (WHERE eligible) FROM inserted
"""

# A chunk runs again only if its transaction never committed (the cursor commits with the verdicts), so
# this normally deletes nothing; it keeps a re-executed chunk from failing on (run, visit) uniqueness.
# Every statement on the verdicts names the run's `period_start`: the run's own partition, pruned when
# the statement is planned.
CLEAR_SQL = f"""
DELETE FROM {T_VERDICT}
WHERE run_id = %(run)s AND period_start = %(period)s::date AND visit_id > %(lo)s AND visit_id <= %(hi)s
"""

# Patients who registered in CeR after their visit was imported: resolved once per run attempt, for
# the visits the run has still to decide, through the partial index of unresolved visits (per chunk, the
# same index scan read every unresolved visit of the table again in every chunk).
RESOLVE_ATTEMPTS = 3  # see patients_resolve
RESOLVE_SQL = f"""
UPDATE {T_VISIT} rv SET patient_id = p.id
FROM {T_PATIENT} p
WHERE p.pesel = rv.patient_pesel AND rv.patient_id IS NULL
  AND rv.id > %(lo)s AND rv.id <= %(hi)s
  AND rv.visit_at >= %(start)s AND rv.visit_at < %(end)s
  AND (%(facility)s::bigint IS NULL OR rv.facility_id = %(facility)s::bigint)
"""

# The same registration claimed by two visits: the first by visit time, then visit id, keeps it. One
# scan and one sort of the run's matched verdicts, computed once (an InitPlan), then the (few) later
# claims are updated through the (run, visit) unique index. A new run's id is not in the table's
# statistics (the planner expects one row): written as a join, the plan nested-looped the window
# subquery under every verdict of the run (minutes at 10 M verdicts). Large runs analyze the table
# first (`stats_refresh`); for small ones any plan is cheap.
DUPLICATES_SQL = f"""
UPDATE {T_VERDICT} t SET eligible = false, final_eligible = false, reason = 'duplicate_claim'
WHERE t.run_id = %(run)s AND t.period_start = %(period)s::date AND t.visit_id = ANY(ARRAY(
    SELECT ranked.visit_id FROM (
        SELECT visit_id, row_number() OVER (
            PARTITION BY matched_appointment_id ORDER BY visit_at, visit_id
        ) AS claim
        FROM {T_VERDICT}
        WHERE run_id = %(run)s AND period_start = %(period)s::date AND reason = 'matched_registration'
        UNION ALL
        -- Emergency claims have no appointment: the same patient at the same facility for the same
        -- service on the same (Warsaw) day is one emergency; only the first claim of it is paid.
        SELECT e.visit_id, row_number() OVER (
            PARTITION BY rv.patient_id, e.facility_id, e.service_id, (e.visit_at AT TIME ZONE %(tz)s)::date
            ORDER BY e.visit_at, e.visit_id
        ) AS claim
        -- The visit for its patient, in the run's month (the scope the chunks read).
        FROM {T_VERDICT} e
        JOIN {T_VISIT} rv ON rv.id = e.visit_id AND rv.visit_at >= %(start)s AND rv.visit_at < %(end)s
        WHERE e.run_id = %(run)s AND e.period_start = %(period)s::date AND e.reason = 'emergency'
    ) ranked
    WHERE ranked.claim > 1
))
"""

# A staff decision on a visit stands in later runs too: the latest override of each visit applies. The
# run's verdicts are reached only for visits that have an override (same reason as above).
OVERRIDES_SQL = f"""
UPDATE {T_VERDICT} t SET final_eligible = o.new_eligible, override_id = o.id
FROM (
    SELECT DISTINCT ON (visit_id) id, visit_id, new_eligible
    FROM {T_OVERRIDE}
    ORDER BY visit_id, id DESC
) o
WHERE t.run_id = %(run)s AND t.period_start = %(period)s::date AND t.visit_id = o.visit_id
  AND t.visit_id = ANY(ARRAY(SELECT visit_id FROM {T_OVERRIDE}))
"""

BOUNDS_SQL = f"""
SELECT count(*), min(id), max(id) FROM {T_VISIT} rv
WHERE rv.visit_at >= %(start)s AND rv.visit_at < %(end)s
  AND (%(facility)s::bigint IS NULL OR rv.facility_id = %(facility)s::bigint)
"""


def run_period(start: dt.datetime) -> dt.date:
    """A run's `period_start` (its verdicts' partition column) from the start of its scope: the scope
    begins at Warsaw midnight of that day."""
    return start.astimezone(WARSAW).date()


def _params(**params: Any) -> dict[str, Any]:
    if "start" in params:
        params["period"] = run_period(params["start"])
    return {
        "tz": TIME_ZONE,
        "rules": RULES_VERSION,
        "ending": [str(s) for s in ENDING_STATES],
        "eligible": [str(r) for r in ELIGIBLE_REASONS],
        "claimed": [str(r) for r in CLAIMED_REASONS],
        "no_show": str(Appointment.Status.NO_SHOW),
        **params,
    }


def scope_bounds(*, start: dt.datetime, end: dt.datetime, facility_id: int | None) -> tuple[int, int, int]:
    """(number of visits, first id, last id) of a scope: the snapshot a run walks."""
    with connection.cursor() as cursor:
        cursor.execute(BOUNDS_SQL, _params(start=start, end=end, facility=facility_id))
        total, first, last = cursor.fetchone()
    return total, (first or 1) - 1, last or 0


@dataclass(frozen=True)
class ChunkResult:
    decided: int
    eligible: int


def patients_resolve(
    *, lo: int, hi: int, start: dt.datetime, end: dt.datetime, facility_id: int | None
) -> int:
    """Set `patient` on the scope's visits with lo < id <= hi whose PESEL CeR knows by now.

    The one statement of a run that writes visits without their key's lock: a correction committing
    meanwhile may have moved one of them to another month's partition, and PostgreSQL then refuses to
    update the moved row (serialization failure) instead of following it. The statement is idempotent
    and, run again, no longer sees the moved visit: it is retried from a savepoint."""
    params = _params(lo=lo, hi=hi, start=start, end=end, facility=facility_id)
    attempt = 1
    while True:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(RESOLVE_SQL, params)
                return cursor.rowcount
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != "40001" or attempt >= RESOLVE_ATTEMPTS:
                raise
            attempt += 1


def chunk_process(
    *, run_id: int, lo: int, hi: int, start: dt.datetime, end: dt.datetime, facility_id: int | None
) -> ChunkResult:
    """Give every visit of the scope with lo < id <= hi its verdict (replacing any the run has in that
    range). The caller holds the transaction (`SET LOCAL work_mem` ...) and records progress in it."""
    params = _params(run=run_id, lo=lo, hi=hi, start=start, end=end, facility=facility_id)
    with connection.cursor() as cursor:
        cursor.execute(CLEAR_SQL, params)
        cursor.execute(CHUNK_SQL, params)
        decided, eligible = cursor.fetchone()
    return ChunkResult(decided=decided, eligible=eligible)


def stats_refresh(*, run_id: int, start: dt.datetime) -> None:
    """ANALYZE the run's verdict partition (a sample of 30,000 rows, about a second): the run's passes
    and the staff pages then plan with the new run's size. The partition alone: ANALYZE of the parent
    would sample every month's partition too."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {T_VERDICT} WHERE run_id = %s AND period_start = %s"
            " LIMIT 1",
            [run_id, run_period(start)],
        )
        row = cursor.fetchone()
        if row:
            cursor.execute(f"ANALYZE {row[0]}")


def duplicates_mark(*, run_id: int, start: dt.datetime, end: dt.datetime) -> int:
    with connection.cursor() as cursor:
        cursor.execute(DUPLICATES_SQL, _params(run=run_id, start=start, end=end))
        return cursor.rowcount


def overrides_apply(*, run_id: int, start: dt.datetime) -> int:
    with connection.cursor() as cursor:
        cursor.execute(OVERRIDES_SQL, _params(run=run_id, start=start))
        return cursor.rowcount


__all__ = [
    "RULES_VERSION",
    "ChunkResult",
    "Reason",
    "chunk_process",
    "duplicates_mark",
    "overrides_apply",
    "patients_resolve",
    "stats_refresh",
    "visits_correct",
    "visits_current",
    "visits_insert",
]
