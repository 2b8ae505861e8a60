"""Reads of open data: the aggregates behind the queues statistics and the research extract, each a
set-based query over the schedule and booking tables (no Python loop over rows), and the reads of
the published `QueueStat` rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import (
    Avg,
    Case,
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Min,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import ExtractYear, TruncMonth

from apps.booking.models import Appointment, Registration
from apps.catalog.models import Contract
from apps.scheduling.models import Slot

from .models import QueueStat, ResearchExtract

LIVE = ("booked", "confirmed")
REMOVED = ("cancelled_by_patient", "cancelled_by_facility", "released")
CANCELLED = ("cancelled_by_patient", "cancelled_by_facility", "released")
WAITED = ("booked", "confirmed", "attended", "no_show")

Key = tuple[int, int, int]  # facility, service, case (1 stable, 2 urgent)


def _case(urgent: bool) -> int:
    return 2 if urgent else 1


def queue_keys(*, on: dt.date) -> list[tuple[int, int]]:
    """(facility, service) of every contract in force: one queue per case each."""
    rows = (
        Contract.objects.filter(facility__active=True, valid_from__lte=on)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gte=on))
        .values_list("facility_id", "service_id")
        .distinct()
    )
    return sorted(set(rows))


def first_free_by_queue(*, now: dt.datetime) -> dict[tuple[int, int], dt.datetime]:
    rows = (
        Slot.objects.filter(status=Slot.Status.FREE, kind=Slot.Kind.FIRST, start__gt=now)
        .values("facility_id", "service_id")
        .annotate(first=Min("start"))
    )
    return {(r["facility_id"], r["service_id"]): r["first"] for r in rows}


def awaiting_by_queue(*, now: dt.datetime) -> dict[Key, int]:
    """Patients waiting for a visit there: a future live booking, or a waiting-list entry naming
    the facility (the national waiting list is not a queue of one facility otherwise)."""
    out: dict[Key, int] = {}
    booked = (
        Appointment.objects.filter(status__in=LIVE, start__gt=now)
        .values("facility_id", "service_id", "registration__urgent")
        .annotate(n=Count("id"))
    )
    for r in booked:
        key = (r["facility_id"], r["service_id"], _case(r["registration__urgent"]))
        out[key] = out.get(key, 0) + r["n"]
    waiting = (
        Registration.objects.filter(status=Registration.Status.WAITING, facility__isnull=False)
        .values("facility_id", "service_id", "urgent")
        .annotate(n=Count("id"))
    )
    for w in waiting:
        key = (w["facility_id"], w["service_id"], _case(w["urgent"]))
        out[key] = out.get(key, 0) + w["n"]
    return out


def average_wait_by_queue(*, since: dt.datetime, until: dt.datetime) -> dict[Key, float]:
    """Mean days from registration to the visit, over registrations made in [since, until) that
    got a visit date (booked, or already seen): the wait patients now face, not last year's."""
    wait = ExpressionWrapper(F("start") - F("registration__joined_at"), output_field=DurationField())
    rows = (
        Appointment.objects.filter(
            status__in=WAITED, registration__joined_at__gte=since, registration__joined_at__lt=until
        )
        .values("facility_id", "service_id", "registration__urgent")
        .annotate(avg=Avg(wait))
    )
    return {
        (r["facility_id"], r["service_id"], _case(r["registration__urgent"])): r["avg"].total_seconds()
        / 86400
        for r in rows
        if r["avg"] is not None
    }


def removed_by_queue(*, since: dt.datetime, until: dt.datetime) -> dict[Key, int]:
    """Bookings that left the list without a visit (cancelled, released) in [since, until)."""
    rows = (
        Appointment.objects.filter(status__in=REMOVED, ended_at__gte=since, ended_at__lt=until)
        .values("facility_id", "service_id", "registration__urgent")
        .annotate(n=Count("id"))
    )
    return {(r["facility_id"], r["service_id"], _case(r["registration__urgent"])): r["n"] for r in rows}


@dataclass(frozen=True)
class QueueFilter:
    case: int
    province_teryt: str | None = None
    benefit: str | None = None
    locality: str | None = None


def queue_stats(*, filters: QueueFilter) -> QuerySet[QueueStat]:
    qs = QueueStat.objects.filter(case=filters.case).select_related(
        "facility", "facility__locality", "service"
    )
    if filters.province_teryt:
        qs = qs.filter(facility__voivodeship_id=filters.province_teryt)
    if filters.benefit:
        qs = qs.filter(
            Q(service__name_pl__icontains=filters.benefit) | Q(service__code__iexact=filters.benefit)
        )
    if filters.locality:
        qs = qs.filter(facility__locality__name__istartswith=filters.locality)
    # Earliest first free date first, as the NFZ portal lists queues; no free date last.
    return qs.order_by(F("first_free_date").asc(nulls_last=True), "facility_id", "service_id")


def queue_stats_version() -> str:
    latest = QueueStat.objects.order_by("-computed_at").values_list("computed_at", flat=True).first()
    return latest.isoformat() if latest else "none"


# --- research extract ------------------------------------------------------------------------------


AGE_BANDS = (
    (0, 17, "0-17"),
    (18, 34, "18-34"),
    (35, 44, "35-44"),
    (45, 54, "45-54"),
    (55, 64, "55-64"),
    (65, 74, "65-74"),
    (75, 200, "75+"),
)
EXTRACT_DIMS = {
    "service": "service__code",
    "month": "month",
    "voivodeship": "facility__voivodeship_id",
    "age_band": "age_band",
    "sex": "patient__sex",
}


def extract_counts(*, period_from: dt.date, period_to: dt.date, by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Visits due in [period_from, period_to] grouped by the dimensions `by` (of EXTRACT_DIMS):
    distinct patients, appointments, outcomes and the mean wait from registration to the visit.
    Age is counted by year of birth in the visit's year (as the screening programmes count it)."""
    wait = ExpressionWrapper(F("start") - F("registration__joined_at"), output_field=DurationField())
    age = ExtractYear("start") - ExtractYear("patient__birth_date")
    band = Case(
        *[When(Q(age__gte=low, age__lte=high), then=Value(label)) for low, high, label in AGE_BANDS],
        default=Value("?"),
        output_field=CharField(),
    )
    rows = (
        Appointment.objects.filter(start__date__gte=period_from, start__date__lte=period_to)
        .exclude(status="rescheduled")  # a move is one registration's visit, counted where it lands
        .annotate(month=TruncMonth("start"), age=age)
        .annotate(age_band=band)
        .values(*[EXTRACT_DIMS[d] for d in by])
        .annotate(
            patients=Count("patient_id", distinct=True),
            appointments=Count("id"),
            no_show=Count("id", filter=Q(status="no_show")),
            cancelled=Count("id", filter=Q(status__in=CANCELLED)),
            wait_avg=Avg(wait, filter=Q(status__in=WAITED)),
        )
    )
    out = []
    for row in rows:
        item = {d: row[EXTRACT_DIMS[d]] for d in by}
        if "month" in item:
            item["month"] = item["month"].strftime("%Y-%m")
        item.update(
            patients=row["patients"],
            appointments=row["appointments"],
            no_show=row["no_show"],
            cancelled=row["cancelled"],
            wait_days=row["wait_avg"].total_seconds() / 86400 if row["wait_avg"] is not None else None,
        )
        out.append(item)
    return out


def extract_list() -> QuerySet[ResearchExtract]:
    return ResearchExtract.objects.defer("csv", "parquet")


def extract_get(*, extract_id: int) -> ResearchExtract | None:
    return ResearchExtract.objects.filter(pk=extract_id).first()
