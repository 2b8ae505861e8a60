"""The e-referral's life as in P1 (issued, registered, realised) instead of a one-way `used_at`.

Existing rows: a referral held by a live registration is registered; one whose registration ended
with an attended visit is realised; any other used one (burnt by a cancellation or release, the bug
this replaces) is issued again. Numbers are stored normalised (upper case, no spaces or hyphens).
"""

import re

from django.db import migrations, models


def forwards(apps, schema_editor):
    Referral = apps.get_model("patients", "Referral")
    Registration = apps.get_model("booking", "Registration")
    Appointment = apps.get_model("booking", "Appointment")
    for referral in Referral.objects.exclude(used_at=None).iterator():
        if Registration.objects.filter(referral=referral, status__in=("waiting", "booked")).exists():
            referral.status = "registered"
        elif Appointment.objects.filter(registration__referral=referral, status="attended").exists():
            referral.status = "realised"
        else:
            referral.status = "issued"
        referral.status_at = referral.used_at
        referral.save(update_fields=["status", "status_at"])
    for referral in Referral.objects.iterator():
        normal = re.sub(r"[\s\-]+", "", referral.number).upper()
        if normal != referral.number and not Referral.objects.filter(number=normal).exists():
            referral.number = normal
            referral.save(update_fields=["number"])


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0001_initial"),
        ("booking", "0002_no_show_rule"),
    ]

    operations = [
        migrations.AddField(
            model_name="referral",
            name="status",
            field=models.CharField(
                choices=[("issued", "wystawione"), ("registered", "zarejestrowane"), ("realised", "zrealizowane")],
                default="issued",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="referral",
            name="status_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.RemoveField(model_name="referral", name="used_at"),
    ]
