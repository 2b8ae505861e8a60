"""One live appointment per registration, and per patient and service, move to a key table (issue 19;
apps/booking/partitions.py), so that the appointments can be partitioned by month (0009): a partitioned
table cannot declare a unique rule without its partition column.

`booking_liveappointment` holds the key of every live (booked or confirmed) appointment, its unique
constraints named as the indexes they replace, filled here for the live appointments there are; a
trigger on the appointments writes it on every path from now on. One live appointment per slot
becomes (slot, start): `start` is the slot's (the foreign key on (slot_id, start)), so it is the same
rule, and a partitioned table can declare it. `rescheduled_to` loses its unique rule and its foreign
key (apps/booking/partitions.py says why).

Reversible: the key table and trigger go, the three unique indexes come back on the appointments.
"""

import django.db.models.deletion
from django.db import migrations, models


def live_keys(apps, schema_editor):
    from apps.booking import partitions

    partitions.live_keys_fill()
    with schema_editor.connection.cursor() as cur:
        cur.execute(partitions.LIVE_KEY_SQL)


def live_keys_drop(apps, schema_editor):
    from apps.booking import partitions

    with schema_editor.connection.cursor() as cur:
        cur.execute(partitions.LIVE_KEY_DROP_SQL)


class Migration(migrations.Migration):

    dependencies = [
        ('booking', '0007_registration_registered_by'),
        ('catalog', '0007_locality_upper_name'),
        ('patients', '0004_relationship'),
        ('scheduling', '0006_slot_free_by_facility'),
    ]

    operations = [
        migrations.CreateModel(
            name='LiveAppointment',
            fields=[
                ('appointment_id', models.BigIntegerField(primary_key=True, serialize=False)),
                ('start', models.DateTimeField()),
                ('registration_id', models.BigIntegerField()),
                ('patient_id', models.BigIntegerField()),
                ('service_id', models.BigIntegerField()),
            ],
        ),
        migrations.RemoveConstraint(
            model_name='appointment',
            name='one_live_appointment_per_slot',
        ),
        migrations.RemoveConstraint(
            model_name='appointment',
            name='one_live_appointment_per_registration',
        ),
        migrations.RemoveConstraint(
            model_name='appointment',
            name='one_live_appointment_per_patient_service',
        ),
        migrations.AlterField(
            model_name='appointment',
            name='rescheduled_to',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='booking.appointment'),
        ),
        migrations.AddConstraint(
            model_name='appointment',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ('booked', 'confirmed'))), fields=('slot', 'start'), name='one_live_appointment_per_slot'),
        ),
        migrations.AddConstraint(
            model_name='liveappointment',
            constraint=models.UniqueConstraint(fields=('registration_id',), name='one_live_appointment_per_registration'),
        ),
        migrations.AddConstraint(
            model_name='liveappointment',
            constraint=models.UniqueConstraint(fields=('patient_id', 'service_id'), name='one_live_appointment_per_patient_service'),
        ),
        migrations.RunPython(live_keys, live_keys_drop),
    ]
