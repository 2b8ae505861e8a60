"""The interval rules read screening records alone (issue 19): an attended CeR screening has written its
record since the first wave (`appointment_record_outcome`), and the rules no longer also look for attended
appointments, which live in month partitions that are detached after the settlement window (28 months)
while a cytology interval counts 36 and an HPV one 60. Any attended screening appointment without its
record (one written around the services) gets one here, as the services would have written it: its
Warsaw date, source "cer". Nothing is removed going back: the records stay true."""

from django.db import migrations

BACKFILL = """
INSERT INTO patients_screeningrecord (patient_id, service_id, performed_on, source)
SELECT DISTINCT a.patient_id, a.service_id, (a.start AT TIME ZONE 'Europe/Warsaw')::date, 'cer'
FROM booking_appointment a
JOIN catalog_service svc ON svc.id = a.service_id
WHERE a.status = 'attended'
  AND (svc.eligible_sex <> '' OR COALESCE(svc.age_min, 0) <> 0 OR COALESCE(svc.interval_months, 0) <> 0)
  AND NOT EXISTS (
      SELECT 1 FROM patients_screeningrecord sr
      WHERE sr.patient_id = a.patient_id AND sr.service_id = a.service_id
        AND sr.performed_on = (a.start AT TIME ZONE 'Europe/Warsaw')::date
  )
"""


class Migration(migrations.Migration):
    dependencies = [
        ("booking", "0009_month_partitions"),
        ("patients", "0004_relationship"),
        ("catalog", "0007_locality_upper_name"),
    ]

    operations = [migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop)]
