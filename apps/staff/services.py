from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from apps.reconciliation.models import ReconciliationRun

from .permissions import STAFF_GROUP

GROUP_PERMISSIONS = (
    "review_reconciliation",
    "start_reconciliation",
    "override_verdict",
    "import_visits",
    "export_verdicts",
)


@transaction.atomic
def staff_group_ensure() -> Group:
    """The "nfz_staff" group with its permissions (the data migration creates it; this keeps it so
    after a database flush and for the demo). Idempotent."""
    content_type = ContentType.objects.get_for_model(ReconciliationRun)
    group, _ = Group.objects.get_or_create(name=STAFF_GROUP)
    permissions = []
    for codename in GROUP_PERMISSIONS:
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": codename.replace("_", " ")}
        )
        permissions.append(permission)
    group.permissions.add(*permissions)
    return group
