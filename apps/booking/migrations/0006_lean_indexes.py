"""Leaner indexes on the tables every booking writes (issue 19): a foreign key's own index goes where
another index leads with its column, becomes partial (only the rows that have one) where most rows have
none, and a character key's index loses Django's second, LIKE-only copy. Every index is one more write
per booking and one more build in a national load (tests/core/test_indexes.py). On the partitioned slot
table each index is built once per partition; at national size run this with writes stopped."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('booking', '0005_slot_fk_in_sql'),
        ('catalog', '0006_slot_max_minutes'),
        ('patients', '0004_relationship'),
        ('scheduling', '0004_month_partitions'),
    ]

    operations = [
        migrations.AlterField(
            model_name='appointment',
            name='facility',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='appointments', to='catalog.facility'),
        ),
        migrations.AlterField(
            model_name='appointment',
            name='patient',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='appointments', to='patients.patient'),
        ),
        migrations.AlterField(
            model_name='registration',
            name='entitlement',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.entitlement'),
        ),
        migrations.AlterField(
            model_name='registration',
            name='facility',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.facility'),
        ),
        migrations.AlterField(
            model_name='registration',
            name='locality',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.locality'),
        ),
        migrations.AlterField(
            model_name='registration',
            name='practitioner',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='scheduling.practitioner'),
        ),
        migrations.AlterField(
            model_name='registration',
            name='voivodeship',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.voivodeship'),
        ),
        migrations.AddIndex(
            model_name='registration',
            index=models.Index(condition=models.Q(('entitlement__isnull', False)), fields=['entitlement'], name='registration_by_entitlement'),
        ),
        migrations.AddIndex(
            model_name='registration',
            index=models.Index(condition=models.Q(('voivodeship__isnull', False)), fields=['voivodeship'], name='registration_by_voivodeship'),
        ),
        migrations.AddIndex(
            model_name='registration',
            index=models.Index(condition=models.Q(('locality__isnull', False)), fields=['locality'], name='registration_by_locality'),
        ),
        migrations.AddIndex(
            model_name='registration',
            index=models.Index(condition=models.Q(('facility__isnull', False)), fields=['facility'], name='registration_by_facility'),
        ),
        migrations.AddIndex(
            model_name='registration',
            index=models.Index(condition=models.Q(('practitioner__isnull', False)), fields=['practitioner'], name='registration_by_practitioner'),
        ),
    ]
