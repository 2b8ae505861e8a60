"""The NFZ staff group and its permissions. Staff accounts get them by joining "nfz_staff"; patients
and facility API clients never do, so the staff pages stay closed to them."""

from django.db import migrations

GROUP = "nfz_staff"
PERMISSIONS = {
    "review_reconciliation": "Can review reconciliation runs and verdicts",
    "start_reconciliation": "Can start a reconciliation run",
    "override_verdict": "Can override a reconciliation verdict",
    "import_visits": "Can upload reported visits",
    "export_verdicts": "Can export verdict lists",
}


def forward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    # Permissions are normally created after migrate (post_migrate); create them now so the group
    # can hold them on a fresh database. get_or_create keeps it idempotent with post_migrate.
    content_type, _ = ContentType.objects.get_or_create(app_label="reconciliation", model="reconciliationrun")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for codename, name in PERMISSIONS.items():
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
        group.permissions.add(permission)


def backward(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("reconciliation", "0001_initial"),
    ]

    operations = [migrations.RunPython(forward, backward)]
