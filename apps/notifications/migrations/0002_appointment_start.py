"""Messages and inbound SMS carry a copy of their appointment's start (issue 19): the appointments
become month partitions (booking 0009), and a foreign key into a partitioned table names its partition
column too. A trigger writes the copy from the appointment a row names (every writer: the composer, the
SMS handler, Django's SET_NULL), and refuses an appointment that does not exist, as the single-column
key dropped here did; booking 0009 declares the composite key. Filled here for existing rows.

Reversible: the copies and the trigger go, the single-column keys come back.
"""

import django.db.models.deletion
from django.db import migrations, models


def copy_trigger(apps, schema_editor):
    from apps.booking import partitions

    with schema_editor.connection.cursor() as cur:
        cur.execute(partitions.COPY_START_SQL)


def copy_trigger_drop(apps, schema_editor):
    from apps.booking import partitions

    with schema_editor.connection.cursor() as cur:
        cur.execute(partitions.COPY_START_DROP_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("booking", "0008_live_appointment_key"),
        ("notifications", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="inboundsms",
            name="appointment_start",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="appointment_start",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name="inboundsms",
            name="appointment",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="booking.appointment",
            ),
        ),
        migrations.AlterField(
            model_name="message",
            name="appointment",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="booking.appointment",
            ),
        ),
        migrations.RunSQL(
            [
                f"UPDATE {table} m SET appointment_start = a.start FROM booking_appointment a "  # noqa: S608
                "WHERE a.id = m.appointment_id"
                for table in ("notifications_message", "notifications_inboundsms")
            ],
            migrations.RunSQL.noop,
        ),
        migrations.RunPython(copy_trigger, copy_trigger_drop),
    ]
