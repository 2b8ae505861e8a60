"""Who put a waiting-list entry on the list becomes the registration's own `registered_by`: it was read
from the join's outbox event (`registration.waiting`, after=joined, with the facility), and the outbox
now keeps events for months only (outbox 0005, apps/outbox/partitions.py), while an entry may wait
longer. Filled from those events for existing rows (over the `outbox_waitlist_joins` index, which outbox
0005 then drops). Its index is partial, as the other optional keys' (0006): only the entries a facility
registered."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("booking", "0006_lean_indexes"),
        ("catalog", "0006_slot_max_minutes"),
        ("outbox", "0004_waitlist_joins_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="registration",
            name="registered_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="catalog.facility",
            ),
        ),
        migrations.RunSQL(
            """
            UPDATE booking_registration r SET registered_by_id = e.facility_id
            FROM outbox_outboxevent e
            WHERE e.aggregate_type = 'registration' AND e.type = 'registration.waiting'
              AND e.aggregate_id = r.id AND e.payload ->> 'after' = 'joined'
              AND e.facility_id IS NOT NULL
            """,
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name="registration",
            index=models.Index(
                condition=models.Q(("registered_by__isnull", False)),
                fields=["registered_by"],
                name="registration_by_registered_by",
            ),
        ),
    ]
