"""The appointment's slot foreign key leaves Django: the slot table becomes month partitions in
scheduling 0004, whose key is (id, start), and that migration declares the foreign key
(slot_id, start) -> scheduling_slot (id, start) in SQL (apps/scheduling/partitions.py). This drops
Django's single-column constraint first (and adds it back when reversed, after 0004 is undone)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('booking', '0004_freed_slot_queue'),
        ('scheduling', '0003_int8_slot_span'),
    ]

    operations = [
        migrations.AlterField(
            model_name='appointment',
            name='slot',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='appointments', to='scheduling.slot'),
        ),
    ]
