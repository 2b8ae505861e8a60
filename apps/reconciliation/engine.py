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

from django.db import connection

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
    VisitVersion,
)

# Bumped whenever the rule order or a rule's meaning changes; stored on every run and verdict
# (together with the catalogue's per-service `rule_version`).
RULES_VERSION = "2026.2"
TIME_ZONE = "Europe/Warsaw"
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

# --- Import: reported visits, their corrections and withdrawals ---------------------------------------

# The visits already reported under the rows' (facility, visit id) keys, row-locked so that two
# corrections of one visit cannot interleave.
EXISTING_SQL = f"""
SELECT rv.id, rv.facility_id, rv.facility_visit_id, rv.patient_pesel, rv.service_id, rv.visit_at,
       rv.emergency, rv.withdrawn
FROM {T_VISIT} rv
JOIN unnest(%s::bigint[], %s::text[]) AS k(facility_id, visit_id)
  ON rv.facility_id = k.facility_id AND rv.facility_visit_id = k.visit_id
ORDER BY rv.id
FOR UPDATE OF rv
"""

# New visits: a visit id the facility already reported (earlier, or twice in the file) is left as it
# was; patients are resolved by PESEL in the same statement.
INSERT_SQL = f"""
INSERT INTO {T_VISIT} (facility_id, facility_visit_id, patient_pesel, patient_id, service_id,
                       visit_at, emergency, batch_id, source_row, created_at)
SELECT r.facility_id, r.visit_id, r.pesel, p.id, r.service_id, r.visit_at, r.emergency, %s, r.line, now()
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::timestamptz[], %s::boolean[], %s::int[])
     AS r(facility_id, visit_id, pesel, service_id, visit_at, emergency, line)
LEFT JOIN {T_PATIENT} p ON p.pesel = r.pesel
ORDER BY r.line
ON CONFLICT (facility_id, facility_visit_id) DO NOTHING
"""

# A correction keeps the visit's current version in the version table ...
KEEP_VERSION_SQL = f"""
INSERT INTO {T_VERSION} (visit_id, version, patient_pesel, service_id, visit_at, emergency, withdrawn,
                         correction_reason, batch_id, source_row, recorded_at, superseded_at)
SELECT id, version, patient_pesel, service_id, visit_at, emergency, withdrawn, correction_reason,
       batch_id, source_row, COALESCE(version_at, created_at), now()
FROM {T_VISIT} WHERE id = ANY(%s::bigint[])
"""

# ... and makes the visit's row the new version (the row always holds the latest, which runs decide).
CORRECT_SQL = f"""
UPDATE {T_VISIT} rv
SET patient_pesel = r.pesel, patient_id = p.id, service_id = r.service_id, visit_at = r.visit_at,
    emergency = r.emergency, withdrawn = r.withdraw, correction_reason = r.reason,
    version = rv.version + 1, version_at = now(), batch_id = %s, source_row = r.line
FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::timestamptz[], %s::boolean[], %s::boolean[],
            %s::text[], %s::int[])
     AS r(id, pesel, service_id, visit_at, emergency, withdraw, reason, line)
LEFT JOIN {T_PATIENT} p ON p.pesel = r.pesel
WHERE rv.id = r.id
"""


def _columns(rows: list[VisitRow], *fields: str) -> list[list[Any]]:
    """The rows as one array per field: the parameters of an `unnest(...)`."""
    return [[getattr(r, name) for r in rows] for name in fields]


def visits_current(rows: list[VisitRow]) -> list[tuple[int, VisitRow]]:
    """(visit id, current content) of the visits already reported under the rows' keys, locked."""
    if not rows:
        return []
    with connection.cursor() as cursor:
        cursor.execute(EXISTING_SQL, _columns(rows, "facility_id", "visit_id"))
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
        cursor.execute(INSERT_SQL, [batch_id, *_columns(rows, *fields)])
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
    INSERT INTO {T_VERDICT} (run_id, visit_id, facility_id, service_id, visit_at, eligible, reason,
                             matched_appointment_id, rule_version, visit_version, final_eligible,
                             override_id)
    SELECT %(run)s, d.visit_id, d.facility_id, d.service_id, d.visit_at,
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
CLEAR_SQL = f"""
DELETE FROM {T_VERDICT} WHERE run_id = %(run)s AND visit_id > %(lo)s AND visit_id <= %(hi)s
"""

# Patients who registered in CeR after their visit was imported: resolved once per run attempt, for
# the visits the run has still to decide, through the partial index of unresolved visits (per chunk, the
# same index scan read every unresolved visit of the table again in every chunk).
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
WHERE t.run_id = %(run)s AND t.visit_id = ANY(ARRAY(
    SELECT ranked.visit_id FROM (
        SELECT visit_id, row_number() OVER (
            PARTITION BY matched_appointment_id ORDER BY visit_at, visit_id
        ) AS claim
        FROM {T_VERDICT}
        WHERE run_id = %(run)s AND reason = 'matched_registration'
        UNION ALL
        -- Emergency claims have no appointment: the same patient at the same facility for the same
        -- service on the same (Warsaw) day is one emergency; only the first claim of it is paid.
        SELECT e.visit_id, row_number() OVER (
            PARTITION BY rv.patient_id, e.facility_id, e.service_id, (e.visit_at AT TIME ZONE %(tz)s)::date
            ORDER BY e.visit_at, e.visit_id
        ) AS claim
        FROM {T_VERDICT} e JOIN {T_VISIT} rv ON rv.id = e.visit_id
        WHERE e.run_id = %(run)s AND e.reason = 'emergency'
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
WHERE t.run_id = %(run)s AND t.visit_id = o.visit_id
  AND t.visit_id = ANY(ARRAY(SELECT visit_id FROM {T_OVERRIDE}))
"""

BOUNDS_SQL = f"""
SELECT count(*), min(id), max(id) FROM {T_VISIT} rv
WHERE rv.visit_at >= %(start)s AND rv.visit_at < %(end)s
  AND (%(facility)s::bigint IS NULL OR rv.facility_id = %(facility)s::bigint)
"""


def _params(**params: Any) -> dict[str, Any]:
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
    """Set `patient` on the scope's visits with lo < id <= hi whose PESEL CeR knows by now."""
    with connection.cursor() as cursor:
        cursor.execute(RESOLVE_SQL, _params(lo=lo, hi=hi, start=start, end=end, facility=facility_id))
        return cursor.rowcount


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


def stats_refresh() -> None:
    """ANALYZE the verdict table (a sample of 30,000 rows, about a second): the run's passes and the
    staff pages then plan with the new run's size."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {T_VERDICT}")


def duplicates_mark(*, run_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(DUPLICATES_SQL, _params(run=run_id))
        return cursor.rowcount


def overrides_apply(*, run_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(OVERRIDES_SQL, _params(run=run_id))
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
