"""The slot table becomes month partitions on `start` (issue 19; apps/scheduling/partitions.py).

On populated data: the table is renamed aside, the partitioned table created with the same columns
and CHECK constraints, partitions made for every month that holds rows (from
CER_SLOT_PARTITIONS_KEEP_MONTHS back) and CER_SLOT_PARTITIONS_AHEAD months ahead, plus DEFAULT; the
rows are copied with their ids, the id sequence continues where it was, and the indexes, unique and
foreign keys are replayed from the old table's definitions, now built per partition. The primary key
becomes (id, start); the overlap rule is one exclusion constraint per partition plus the cross-month
trigger; the appointments' foreign key becomes (slot_id, start). The whole table is locked and copied
in this transaction: at national size, run it with the application stopped for writes.

Reversible: back to one table with the whole-table exclusion constraint of 0003.
"""

import datetime

import django.db.models.expressions
import django.db.models.lookups
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def forward(apps, schema_editor):
    from apps.scheduling import partitions

    partitions.table_partition(
        now=timezone.now(),
        ahead=settings.CER_SLOT_PARTITIONS_AHEAD,
        keep=settings.CER_SLOT_PARTITIONS_KEEP_MONTHS,
    )


def backward(apps, schema_editor):
    from apps.scheduling import partitions

    partitions.table_unpartition()


class Migration(migrations.Migration):
    dependencies = [
        ("booking", "0005_slot_fk_in_sql"),
        ("catalog", "0006_slot_max_minutes"),
        ("patients", "0004_relationship"),
        ("scheduling", "0003_int8_slot_span"),
    ]

    operations = [
        migrations.RunPython(forward, backward),
        # The exclusion constraint now lives on each partition (the RunPython made them).
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveConstraint(model_name="slot", name="slot_no_overlap")],
        ),
        migrations.AddConstraint(
            model_name="slot",
            constraint=models.CheckConstraint(
                condition=django.db.models.lookups.LessThanOrEqual(
                    django.db.models.expressions.ExpressionWrapper(
                        django.db.models.expressions.CombinedExpression(
                            models.F("end"), "-", models.F("start")
                        ),
                        output_field=models.DurationField(),
                    ),
                    datetime.timedelta(days=1),
                ),
                name="slot_max_length",
            ),
        ),
    ]
