"""The appointments become month partitions on `start` (issue 19; apps/booking/partitions.py).

On populated data: the table is renamed aside, the partitioned table created with the same columns and
CHECK constraints, partitions made for every month that holds rows (from
CER_APPOINTMENT_PARTITIONS_KEEP_MONTHS back) and CER_APPOINTMENT_PARTITIONS_AHEAD months ahead, plus
DEFAULT; the rows are copied with their ids, the id sequence continues where it was, and the indexes,
the unique rule per slot and the table's own foreign keys are replayed, now per partition. The primary
key becomes (id, start); the slot's key (slot_id, start) is declared on each partition; the live-key
trigger moves to the new table; the key table, the notifications and the inbound SMS get composite
foreign keys on their copies of `start` (0008, notifications 0002). The table is locked and copied in
this transaction: at national size, run it with bookings stopped.

Reversible: back to one table (0008's state).
"""

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def forward(apps, schema_editor):
    from apps.booking import partitions

    partitions.table_partition(
        now=timezone.now(),
        ahead=settings.CER_APPOINTMENT_PARTITIONS_AHEAD,
        keep=settings.CER_APPOINTMENT_PARTITIONS_KEEP_MONTHS,
    )
    _conditions_as_django_writes_them(apps, schema_editor)


def _conditions_as_django_writes_them(apps, schema_editor):
    """The partial indexes with `status IN (...)` were replayed from PostgreSQL's own print of them,
    which moves the casts; built again from the model, they read as Django writes them (and as
    `migrate` on an empty database makes them)."""
    appointment = apps.get_model("booking", "Appointment")
    for index in appointment._meta.indexes:
        if index.condition is not None:
            schema_editor.remove_index(appointment, index)
            schema_editor.add_index(appointment, index)
    for constraint in appointment._meta.constraints:
        if getattr(constraint, "condition", None) is not None:
            schema_editor.remove_constraint(appointment, constraint)
            schema_editor.add_constraint(appointment, constraint)


def backward(apps, schema_editor):
    from apps.booking import partitions

    partitions.table_unpartition()
    _conditions_as_django_writes_them(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("booking", "0008_live_appointment_key"),
        ("notifications", "0002_appointment_start"),
        ("scheduling", "0006_slot_free_by_facility"),
    ]

    operations = [migrations.RunPython(forward, backward)]
