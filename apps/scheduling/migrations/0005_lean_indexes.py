"""Leaner indexes on the tables every booking writes (issue 19): a foreign key's own index goes where
another index leads with its column, becomes partial (only the rows that have one) where most rows have
none, and a character key's index loses Django's second, LIKE-only copy. Every index is one more write
per booking and one more build in a national load (tests/core/test_indexes.py). On the partitioned slot
table each index is built once per partition; at national size run this with writes stopped."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0006_slot_max_minutes'),
        ('patients', '0004_relationship'),
        ('scheduling', '0004_month_partitions'),
    ]

    operations = [
        migrations.AlterField(
            model_name='slot',
            name='facility',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.facility'),
        ),
        migrations.AlterField(
            model_name='slot',
            name='held_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='patients.patient'),
        ),
        migrations.AlterField(
            model_name='slot',
            name='locality',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.locality'),
        ),
        migrations.AlterField(
            model_name='slot',
            name='practitioner',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='scheduling.practitioner'),
        ),
        migrations.AlterField(
            model_name='slot',
            name='schedule',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='slots', to='scheduling.schedule'),
        ),
        migrations.AlterField(
            model_name='slot',
            name='voivodeship',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.voivodeship'),
        ),
        migrations.AddIndex(
            model_name='slot',
            index=models.Index(fields=['voivodeship'], name='slot_by_voivodeship'),
        ),
        migrations.AddIndex(
            model_name='slot',
            index=models.Index(condition=models.Q(('held_by__isnull', False)), fields=['held_by'], name='slot_held_by'),
        ),
        migrations.AddIndex(
            model_name='slot',
            index=models.Index(condition=models.Q(('practitioner__isnull', False)), fields=['practitioner'], name='slot_by_practitioner'),
        ),
    ]
