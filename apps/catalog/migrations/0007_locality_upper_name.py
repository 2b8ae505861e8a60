"""The search form's town is looked up by name in any letter case (`UPPER(name) = UPPER(...)`): an
expression index, so that a full SIMC list (~100,000 places) is probed, not scanned, on every search."""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0006_slot_max_minutes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='locality',
            index=models.Index(django.db.models.functions.text.Upper('name'), name='locality_upper_name'),
        ),
    ]
