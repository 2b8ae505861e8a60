"""The outbox becomes month partitions on `created_at` (issue 19; apps/outbox/partitions.py).

On populated data, as scheduling 0004 did for slots (apps.core.partitions.table_partition): the table is
renamed aside, the partitioned table created with the same columns, defaults (the writing transaction's
id) and identity, a partition made for every month that holds events (however old: the daily job
detaches the old ones, each a table to archive) and CER_OUTBOX_PARTITIONS_AHEAD months ahead, plus
DEFAULT; the rows are copied with their ids, the id sequence continues where it was, and the feed
indexes and foreign keys are replayed, now built per partition. The key becomes (id, created_at) and the
webhook deliveries' foreign key (event_id, event_created_at) (integration 0004 added the column). The
whole table is locked and copied in this transaction: at national size, run it with writes stopped.

The partial index `outbox_waitlist_joins` is dropped first: who put a waiting-list entry on the list is
the registration's `registered_by` since booking 0007, so nothing reads old join events any more. So is
the facility key's own index, a copy of the start of `outbox_facility_feed` (every booking writes this
table: tests/core/test_indexes.py).

Reversible: back to one table with the key (id), and the index rebuilt.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def forward(apps, schema_editor):
    from apps.outbox import partitions

    partitions.table_partition(now=timezone.now(), ahead=settings.CER_OUTBOX_PARTITIONS_AHEAD)


def backward(apps, schema_editor):
    from apps.outbox import partitions

    partitions.table_unpartition()


class Migration(migrations.Migration):
    dependencies = [
        ("booking", "0007_registration_registered_by"),
        ("integration", "0004_delivery_event_created_at"),
        ("outbox", "0004_waitlist_joins_index"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="outboxevent", name="outbox_waitlist_joins"),
        migrations.AlterField(
            model_name="outboxevent",
            name="facility",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="catalog.facility",
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
