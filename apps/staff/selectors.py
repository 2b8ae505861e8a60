"""Reads of the staff pages that are not the reconciliation's: the facility schedule compliance list
and the central waiting list (read-only views of other contexts' tables).

The daily compliance job (`apps.notifications.lifecycle.compliance_check`) stores one
`ComplianceCheck` per facility and contracted service; `apps.notifications.selectors.
compliance_shortfalls` reads the shortfalls of a day for other uses. The staff list needs the same
rows filtered, ordered and paginated in PostgreSQL, so it queries the table itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, F, Max, Q, QuerySet, Value, Window
from django.db.models.functions import FirstValue, Greatest, RowNumber

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


# --- the central waiting list (read-only; the booking context's tables) ---------------------------


def waitlist_queue(*, service_id: int, voivodeship_id: int | None = None) -> QuerySet[Any]:
    """Waiting registrations of a service in the national queue order the booking core allocates by
    (`booking.selectors.waitlist_position`: entitlement priority, urgent before stable, time of
    joining, id), each with its 1-based `position` in the whole national queue; `voivodeship_id`
    narrows the view (by the patient's preferred voivodeship) without renumbering it."""
    from apps.booking.models import Registration

    order = [F("priority").desc(), F("urgent").desc(), F("joined_at").asc(), F("id").asc()]
    ranked = (
        Registration.objects.filter(service_id=service_id, status=Registration.Status.WAITING)
        .select_related("patient", "entitlement", "voivodeship", "facility")
        .annotate(position=Window(RowNumber(), order_by=order))
        .order_by("position")
    )
    if voivodeship_id is not None:
        # A plain filter would go into the numbering query's WHERE and renumber the narrowed list. Read
        # through a window expression, the voivodeship is filtered in the query Django wraps around the
        # numbered national queue, so positions stay national.
        ranked = ranked.annotate(
            preferred_voivodeship=Window(FirstValue("voivodeship_id"), partition_by=[F("id")])
        ).filter(preferred_voivodeship=voivodeship_id)
    return ranked


def waitlist_allocations(*, service_id: int, voivodeship_id: int | None = None, limit: int = 50) -> list[Any]:
    """The latest slots the waiting list gave away for a service, each with the booking core's stored
    explanation (`Appointment.allocation`: entitlement, category, time of joining, queue position,
    preferences and the ordering rule)."""
    from apps.booking.models import Appointment

    qs = Appointment.objects.filter(
        service_id=service_id, channel=Appointment.Channel.WAITLIST
    ).select_related("facility", "patient")
    if voivodeship_id is not None:
        qs = qs.filter(facility__voivodeship_id=voivodeship_id)
    return list(qs.order_by("-created_at", "-id")[:limit])
