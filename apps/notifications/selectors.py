"""Reads for other interfaces (the staff pages, the patient inbox)."""

from __future__ import annotations

import datetime as dt

from django.db.models import Max, QuerySet

from apps.patients.models import Patient

from .models import ComplianceCheck, Message


def compliance_shortfalls(*, day: dt.date | None = None) -> list[ComplianceCheck]:
    """Facilities publishing a shorter schedule than the service's minimum horizon, on the latest
    checked day (or `day`), shortest first."""
    day = day or ComplianceCheck.objects.aggregate(d=Max("day"))["d"]
    if day is None:
        return []
    return list(
        ComplianceCheck.objects.filter(day=day, compliant=False)
        .select_related("facility", "service")
        .order_by("published_days", "facility__nfz_code")
    )


def inbox_list(*, patient: Patient, limit: int = 50) -> QuerySet[Message]:
    """The patient's in-app messages, newest first."""
    return Message.objects.filter(patient=patient, channel=Message.Channel.IN_APP).order_by("-created_at")[
        :limit
    ]
