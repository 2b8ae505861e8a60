"""Reads of the reconciliation context for the staff pages and exports (aggregates run in PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from .models import INELIGIBLE_REASONS, ImportBatch, Reason, ReconciliationRun, Verdict

ZERO = Value(Decimal("0.00"), output_field=DecimalField(max_digits=14, decimal_places=2))


def run_list(*, limit: int = 50) -> QuerySet[ReconciliationRun]:
    return ReconciliationRun.objects.select_related("facility").order_by("-id")[:limit]


def run_get(*, run_id: int) -> ReconciliationRun | None:
    return ReconciliationRun.objects.select_related("facility").filter(pk=run_id).first()


def _summary_aggregates() -> dict[str, Any]:
    aggregates: dict[str, Any] = {
        "visits": Count("id"),
        # (named n_*: an annotation may not shadow the `eligible` field its own filter uses)
        "n_eligible": Count("id", filter=Q(eligible=True)),
        "n_ineligible": Count("id", filter=Q(eligible=False)),
        "overridden": Count("id", filter=Q(override__isnull=False)),
        "final_ineligible": Count("id", filter=Q(final_eligible=False)),
        # What NFZ would not pay after overrides, priced by the service tariff (0 without one).
        "at_stake": Coalesce(Sum("service__tariff__amount", filter=Q(final_eligible=False)), ZERO),
    }
    for reason in INELIGIBLE_REASONS:
        aggregates[f"r_{reason.value}"] = Count("id", filter=Q(reason=reason))
    return aggregates


def _with_reasons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["eligible"], row["ineligible"] = row.pop("n_eligible"), row.pop("n_ineligible")
        row["by_reason"] = [row.pop(f"r_{reason.value}") for reason in INELIGIBLE_REASONS]
    return rows


def run_summary_by_facility(*, run: ReconciliationRun) -> list[dict[str, Any]]:
    rows: Any = (
        Verdict.objects.filter(run=run)
        .values("facility_id", "facility__nfz_code", "facility__name")
        .annotate(**_summary_aggregates())
        .order_by(F("n_ineligible").desc(), "facility__nfz_code")
    )
    return _with_reasons(list(rows))


def run_summary_by_service(*, run: ReconciliationRun) -> list[dict[str, Any]]:
    rows: Any = (
        Verdict.objects.filter(run=run)
        .values("service_id", "service__code", "service__name_pl", "service__tariff__amount")
        .annotate(**_summary_aggregates())
        .order_by("service__code")
    )
    return _with_reasons(list(rows))


@dataclass(frozen=True)
class MonthPoint:
    month: dt.date
    run_id: int
    visits: int
    ineligible: int
    by_reason: list[int]

    @property
    def share(self) -> float:
        return self.ineligible / self.visits if self.visits else 0.0

    @property
    def percent(self) -> float:
        return round(100 * self.share, 1)


def ineligibility_by_month(*, limit: int = 24) -> list[MonthPoint]:
    """One point per month: the latest finished national (all-facility) monthly run of that month."""
    latest = (
        ReconciliationRun.objects.filter(scope="month", state="done", facility__isnull=True)
        .order_by("period_start", "-id")
        .distinct("period_start")
    )
    runs = {r.pk: r.period_start for r in latest}
    recent = sorted(runs.items(), key=lambda item: item[1])[-limit:]
    counts: dict[int, dict[str, Any]] = {
        row["run_id"]: dict(row)
        for row in Verdict.objects.filter(run_id__in=[pk for pk, _ in recent])
        .values("run_id")
        .annotate(
            visits=Count("id"),
            n_ineligible=Count("id", filter=Q(eligible=False)),
            **{f"r_{r.value}": Count("id", filter=Q(reason=r)) for r in INELIGIBLE_REASONS},
        )
    }
    points = []
    for pk, month in recent:
        row: dict[str, Any] = counts.get(pk, {})
        points.append(
            MonthPoint(
                month=month,
                run_id=pk,
                visits=row.get("visits", 0),
                ineligible=row.get("n_ineligible", 0),
                by_reason=[row.get(f"r_{r.value}", 0) for r in INELIGIBLE_REASONS],
            )
        )
    return points


def verdict_list(
    *,
    run: ReconciliationRun,
    facility_id: int | None = None,
    service_id: int | None = None,
    eligible: bool | None = None,
    reason: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    overridden: bool | None = None,
) -> QuerySet[Verdict]:
    qs = Verdict.objects.filter(run=run).select_related("visit", "facility", "service", "override")
    if facility_id is not None:
        qs = qs.filter(facility_id=facility_id)
    if service_id is not None:
        qs = qs.filter(service_id=service_id)
    if eligible is not None:
        qs = qs.filter(final_eligible=eligible)
    if reason:
        qs = qs.filter(reason=reason)
    if date_from is not None:
        qs = qs.filter(visit_at__date__gte=date_from)
    if date_to is not None:
        qs = qs.filter(visit_at__date__lte=date_to)
    if overridden is not None:
        qs = qs.filter(override__isnull=not overridden)
    return qs.order_by("visit_at", "visit_id")


def verdict_get(*, verdict_id: int) -> Verdict | None:
    return (
        Verdict.objects.select_related("run", "visit", "visit__patient", "facility", "service", "override")
        .filter(pk=verdict_id)
        .first()
    )


def verdict_overrides(*, verdict: Verdict) -> QuerySet[Any]:
    """The visit's whole override trail, across runs, newest first."""
    return verdict.visit.overrides.select_related("user", "verdict__run").order_by("-id")


def import_batch_list(*, limit: int = 30) -> QuerySet[ImportBatch]:
    return ImportBatch.objects.select_related("uploaded_by").order_by("-id")[:limit]


REASON_LABELS = dict(Reason.choices)
