"""An attended screening writes its screening record in the database, on every path (issue 19).

The interval rules read the screening records alone (0010). The outcome service wrote the record of
an attended screening itself; the database now writes it whenever an appointment of a screening
service becomes attended, whatever made it so (the service, a data fix, a future path), with the
visit's Warsaw date and source "cer", once per patient, service and day. A screening service is one
with a programme sex, a lower age or an interval (`Service.is_screening`). Reversible: the trigger and
its function go; the records stay.
"""

from django.db import migrations

FUNCTION = """
CREATE FUNCTION cer_attended_screening_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    day date := (NEW.start AT TIME ZONE 'Europe/Warsaw')::date;
BEGIN
    INSERT INTO patients_screeningrecord (patient_id, service_id, performed_on, source)
    SELECT NEW.patient_id, NEW.service_id, day, 'cer'
    FROM catalog_service svc
    WHERE svc.id = NEW.service_id
      AND (svc.eligible_sex <> '' OR COALESCE(svc.age_min, 0) <> 0 OR COALESCE(svc.interval_months, 0) <> 0)
      AND NOT EXISTS (
          SELECT 1 FROM patients_screeningrecord sr
          WHERE sr.patient_id = NEW.patient_id AND sr.service_id = NEW.service_id AND sr.performed_on = day
      );
    RETURN NULL;
END
$$
"""
# On the partitioned table: PostgreSQL gives every partition, and every one made later, its copy.
TRIGGER = """
CREATE TRIGGER cer_appointment_attended_screening
AFTER UPDATE OF status ON booking_appointment
FOR EACH ROW WHEN (NEW.status = 'attended' AND OLD.status IS DISTINCT FROM 'attended')
EXECUTE FUNCTION cer_attended_screening_record()
"""
DROP = """
DROP TRIGGER cer_appointment_attended_screening ON booking_appointment;
DROP FUNCTION cer_attended_screening_record();
"""


class Migration(migrations.Migration):
    dependencies = [("booking", "0010_screening_records_of_attended_visits")]

    operations = [migrations.RunSQL(FUNCTION + ";\n" + TRIGGER, reverse_sql=DROP)]
