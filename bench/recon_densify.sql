-- Make a generated month denser for the reconciliation benchmark (workload d, issue 7: 10 M visits).
--
-- The generator reports ~4.5 M visits a month at scale 1.0 and ~450 k at 0.1. This script adds
-- COPIES copies of every reported visit of MONTH, in its own database only (never in a shared one):
--
--     psql "$DATABASE_URL" -v month=2026-10-01 -v copies=21 -f bench/recon_densify.sql
--
-- Copy k of a visit is the same patient, facility, service and time of day, k days later, wrapped
-- round inside the month (a visit on the 30th, copy 3, lands on the 2nd), with facility visit id
-- `<original>.c<k>`. The patient has no appointment on that day in almost every case, so the copies
-- are unregistered claims: each costs the run its match probe plus the two mismatch probes (rules 6-7),
-- the slowest path through the rules, while the baseline pays one probe; the verdict row written is the
-- same as for any visit. (Matching copies would all be duplicate claims of the same appointments.)
-- Each copy commits on its own; the rows reference the same facility, service and patient rows as
-- their source, so the foreign-key triggers are skipped while loading (session_replication_role).
-- Ids of later copies are higher, so the month's ids are not in visit-time order, as with real imports
-- arriving in several files. Re-running adds nothing for copies that already exist.

\set ON_ERROR_STOP on
SET TimeZone = 'Europe/Warsaw';
SET session_replication_role = replica;

SELECT set_config('bench.month', :'month', false), set_config('bench.copies', :'copies', false);

DO $$
DECLARE
    first_day date := current_setting('bench.month')::date;
    days int := extract(day FROM (date_trunc('month', current_setting('bench.month')::date)
                                  + interval '1 month - 1 day'))::int;
    k int;
    added bigint;
BEGIN
    FOR k IN 1 .. current_setting('bench.copies')::int LOOP
        INSERT INTO reconciliation_reportedvisit
            (facility_id, facility_visit_id, patient_pesel, patient_id, service_id, visit_at, emergency,
             batch_id, source_row, created_at)
        SELECT v.facility_id, v.facility_visit_id || '.c' || k, v.patient_pesel, v.patient_id, v.service_id,
               v.visit_at + make_interval(days => ((v.visit_at::date - first_day + k) % days)
                                                 - (v.visit_at::date - first_day)),
               v.emergency, NULL, NULL, now()
        FROM reconciliation_reportedvisit v
        WHERE v.visit_at >= first_day::timestamptz AND v.visit_at < (first_day + days)::timestamptz
          AND v.facility_visit_id NOT LIKE '%.c%'
        ORDER BY 6, v.id
        ON CONFLICT (facility_id, facility_visit_id) DO NOTHING;
        GET DIAGNOSTICS added = ROW_COUNT;
        RAISE NOTICE 'copy %: % visits', k, added;
        COMMIT;
    END LOOP;
END
$$;

ANALYZE reconciliation_reportedvisit;
SELECT count(*) AS visits_in_month FROM reconciliation_reportedvisit
WHERE visit_at >= :'month'::date::timestamptz AND visit_at < (:'month'::date + interval '1 month')::timestamptz;
