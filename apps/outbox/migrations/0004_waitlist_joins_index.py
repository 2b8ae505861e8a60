"""A partial index for "which facility put this entry on the waiting list" (integration API scope).

Built concurrently: the outbox is written by every booking and must not be locked while it builds.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("outbox", "0003_request_id"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="outboxevent",
            index=models.Index(
                condition=models.Q(("aggregate_type", "registration"), ("type", "registration.waiting")),
                fields=["aggregate_id"],
                name="outbox_waitlist_joins",
            ),
        ),
    ]
