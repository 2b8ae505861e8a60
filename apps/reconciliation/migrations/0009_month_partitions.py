"""The reported visits and the verdicts become month partitions (issue 19; apps/reconciliation/partitions.py).

Visits on `visit_at` (Warsaw months), verdicts on the run's `period_start`. On populated data: each table
is renamed aside, the partitioned table created with the same columns and CHECK constraints, partitions
made for every month that holds rows (from CER_RECONCILIATION_PARTITIONS_KEEP_MONTHS back) and
CER_RECONCILIATION_PARTITIONS_AHEAD months ahead, plus DEFAULT; the rows are copied with their ids, the
id sequences continue where they were, and the indexes, unique constraints and foreign keys are replayed,
now per partition. The primary keys become (id, visit_at) and (id, period_start); the key table,
versions and overrides get their composite foreign keys, and the visits the trigger that writes their
keys. The overrides' append-only trigger lets through the copy of a corrected visit's time. Both tables
are locked and copied in this transaction: at national size, run it with imports and runs stopped.

Reversible: back to two plain tables (0008 reversed then brings Django's foreign keys back).
"""

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def forward(apps, schema_editor):
    from apps.reconciliation import partitions

    with schema_editor.connection.cursor() as cur:
        cur.execute(partitions.OVERRIDE_APPEND_ONLY_SQL)
    partitions.tables_partition(
        now=timezone.now(),
        ahead=settings.CER_RECONCILIATION_PARTITIONS_AHEAD,
        keep=settings.CER_RECONCILIATION_PARTITIONS_KEEP_MONTHS,
    )


def backward(apps, schema_editor):
    from apps.reconciliation import partitions

    partitions.tables_unpartition()
    with schema_editor.connection.cursor() as cur:
        cur.execute(partitions.OVERRIDE_APPEND_ONLY_OLD_SQL)


class Migration(migrations.Migration):
    dependencies = [("reconciliation", "0008_partition_columns")]

    operations = [migrations.RunPython(forward, backward)]
