"""The webhook delivery's event foreign key leaves Django: the outbox becomes month partitions in
outbox 0005, whose key is (id, created_at), and that migration declares the foreign key
(event_id, event_created_at) -> outbox_outboxevent (id, created_at) in SQL (apps/outbox/partitions.py).
This adds the delivery's copy of its event's `created_at` (filled from the event for existing rows; an
index on it finds the deliveries of one month when it is detached) and drops Django's single-column
constraint (added back when reversed, after 0005 is undone)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integration", "0003_changes_read_scope"),
        ("outbox", "0004_waitlist_joins_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="event_created_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunSQL(
            """
            UPDATE integration_webhookdelivery d SET event_created_at = e.created_at
            FROM outbox_outboxevent e WHERE e.id = d.event_id
            """,
            migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="event_created_at",
            field=models.DateTimeField(),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(fields=["event_created_at"], name="webhook_delivery_event_month"),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="event",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="outbox.outboxevent",
            ),
        ),
    ]
