"""The search's places probe gets its own index (issue 19): each place's first free first-time slot of
a service, read directly instead of walking the place's whole schedule in date order. Partial, so a
booking (free -> booked) adds nothing to it. Built once per partition; at national size run it with
writes stopped."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0006_slot_max_minutes'),
        ('patients', '0004_relationship'),
        ('scheduling', '0005_lean_indexes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='slot',
            index=models.Index(condition=models.Q(('kind', 'first'), ('status', 'free')), fields=['facility', 'service', 'start'], name='slot_free_by_facility'),
        ),
    ]
