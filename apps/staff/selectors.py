"""Reads of the staff pages that are not the reconciliation's: the facility schedule compliance list.

The daily compliance job (`apps.notifications.lifecycle.compliance_check`) stores one
`ComplianceCheck` per facility and contracted service; `apps.notifications.selectors.
compliance_shortfalls` reads the shortfalls of a day for other uses. The staff list needs the same
rows filtered, ordered and paginated in PostgreSQL, so it queries the table itself.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, F, Max, Q, QuerySet, Value
from django.db.models.functions import Greatest

from apps.notifications.models import ComplianceCheck


def compliance_latest_day() -> dt.date | None:
    """The last day the compliance job ran, or None before its first run."""
    return ComplianceCheck.objects.aggregate(day=Max("day"))["day"]


def compliance_list(
    *,
    day: dt.date | None,
    voivodeship_id: str | None = None,
    service_id: int | None = None,
    include_compliant: bool = False,
) -> QuerySet[ComplianceCheck]:
    """Per facility and service on `day`: published horizon vs the service's minimum, with
    `days_short` (0 when compliant); shortfalls only unless `include_compliant`. Largest shortfall
    first, then by facility and service code. No day (the job has not run yet): nothing."""
    if day is None:
        return ComplianceCheck.objects.none()
    qs = ComplianceCheck.objects.filter(day=day).select_related(
        "facility", "facility__voivodeship", "service"
    )
    if not include_compliant:
        qs = qs.filter(compliant=False)
    if voivodeship_id:
        qs = qs.filter(facility__voivodeship_id=voivodeship_id)
    if service_id is not None:
        qs = qs.filter(service_id=service_id)
    return qs.annotate(days_short=Greatest(F("required_days") - F("published_days"), Value(0))).order_by(
        F("days_short").desc(), "facility__nfz_code", "service__code"
    )


def compliance_counts(*, day: dt.date) -> dict[str, int]:
    """How many facility-service pairs were checked on `day` and how many fell short."""
    return ComplianceCheck.objects.filter(day=day).aggregate(
        checked=Count("id"), short=Count("id", filter=Q(compliant=False))
    )
