"""Reads of the reconciliation context for the staff pages and exports (aggregates run in PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from .models import (
    INELIGIBLE_REASONS,
    ImportBatch,
    Override,
    Reason,
    ReconciliationRun,
    ReportedVisit,
    Verdict,
    VisitVersion,
)

ZERO = Value(Decimal("0.00"), output_field=DecimalField(max_digits=14, decimal_places=2))


def run_list(*, limit: int = 50) -> QuerySet[ReconciliationRun]:
    return ReconciliationRun.objects.select_related("facility").order_by("-id")[:limit]


def run_get(*, run_id: int) -> ReconciliationRun | None:
    return ReconciliationRun.objects.select_related("facility").filter(pk=run_id).first()


def run_verdicts(*, run: ReconciliationRun) -> QuerySet[Verdict]:
    """A run's verdicts. `period_start` is the run's and the verdicts' partition column: naming it reads
    the run's month partition only (apps/reconciliation/partitions.py)."""
    return Verdict.objects.filter(run=run, period_start=run.period_start)


def visit_verdicts(*, visit_ids: list[int]) -> QuerySet[Verdict]:
    """The verdicts of some visits, of every run. A visit's verdicts are in its runs' month partitions
    (no index leads with the visit): matched on the run's `period_start` as well as its id, each run's
    verdicts are probed in its own partition (pruned at run time) instead of in every month's."""
    return Verdict.objects.filter(visit_id__in=visit_ids, period_start=F("run__period_start"))


def _summary_aggregates() -> dict[str, Any]:
    aggregates: dict[str, Any] = {
        "visits": Count("id"),
        # (named n_*: an annotation may not shadow the `eligible` field its own filter uses)
        "n_eligible": Count("id", filter=Q(eligible=True)),
        "n_ineligible": Count("id", filter=Q(eligible=False)),
        "overridden": Count("id", filter=Q(override__isnull=False)),
        # What NFZ pays: the rules' verdict after staff overrides.
        "payable": Count("id", filter=Q(final_eligible=True)),
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
        run_verdicts(run=run)
        .values("facility_id", "facility__nfz_code", "facility__name")
        .annotate(**_summary_aggregates())
        .order_by(F("n_ineligible").desc(), "facility__nfz_code")
    )
    return _with_reasons(list(rows))


def run_summary_by_service(*, run: ReconciliationRun) -> list[dict[str, Any]]:
    rows: Any = (
        run_verdicts(run=run)
        .values(
            "service_id", "service__code", "service__name_pl", "service__name_en", "service__tariff__amount"
        )
        .annotate(**_summary_aggregates())
        .order_by("service__code")
    )
    return _with_reasons(list(rows))


# The booking core's appointment states as the staff pages word them (in the page's language; the
# booking model's own labels are Polish only).
APPOINTMENT_STATE_TEXTS = {
    "booked": _("booked"),
    "confirmed": _("confirmed"),
    "attended": _("attended"),
    "no_show": _("the patient did not attend"),
    "cancelled_by_patient": _("cancelled by the patient"),
    "cancelled_by_facility": _("cancelled by the facility"),
    "released": _("released (not confirmed)"),
    "rescheduled": _("moved to another date"),
}


@dataclass(frozen=True)
class MonthPoint:
    month: dt.date
    run_id: int | None  # None: a month without a finished national run (a gap, not left out)
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
    """One point per month: the latest finished national (all-facility) monthly run of that month; a
    month between two with runs that has none is a point without a run (shown as such, not dropped)."""
    latest = (
        ReconciliationRun.objects.filter(scope="month", state="done", facility__isnull=True)
        .order_by("period_start", "-id")
        .distinct("period_start")
    )
    runs = {r.pk: r.period_start for r in latest}
    recent = sorted(runs.items(), key=lambda item: item[1])[-limit:]
    counts: dict[int, dict[str, Any]] = {
        row["run_id"]: dict(row)
        for row in Verdict.objects.filter(
            run_id__in=[pk for pk, _ in recent], period_start__in=[month for _, month in recent]
        )
        .values("run_id")
        .annotate(
            visits=Count("id"),
            n_ineligible=Count("id", filter=Q(eligible=False)),
            **{f"r_{r.value}": Count("id", filter=Q(reason=r)) for r in INELIGIBLE_REASONS},
        )
    }
    points = []
    by_month = {month: pk for pk, month in recent}
    month = recent[0][1] if recent else None
    while month is not None and month <= recent[-1][1]:
        pk = by_month.get(month)
        row: dict[str, Any] = counts.get(pk, {}) if pk else {}
        points.append(
            MonthPoint(
                month=month,
                run_id=pk,
                visits=row.get("visits", 0),
                ineligible=row.get("n_ineligible", 0),
                by_reason=[row.get(f"r_{r.value}", 0) for r in INELIGIBLE_REASONS],
            )
        )
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return points


def verdict_list(
    *,
    run: ReconciliationRun,
    facility_id: int | None = None,
    voivodeship_id: int | None = None,
    service_id: int | None = None,
    eligible: bool | None = None,
    reason: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    overridden: bool | None = None,
) -> QuerySet[Verdict]:
    qs = run_verdicts(run=run).select_related(
        "visit", "facility", "facility__voivodeship", "service", "service__tariff", "override"
    )
    if facility_id is not None:
        qs = qs.filter(facility_id=facility_id)
    if voivodeship_id is not None:
        qs = qs.filter(facility__voivodeship_id=voivodeship_id)
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


def run_is_current(*, run: ReconciliationRun) -> bool:
    """Whether a finished run is the newest finished run of its scope (period and facility)."""
    return run.state == ReconciliationRun.State.DONE and not (
        ReconciliationRun.objects.filter(
            scope=run.scope,
            period_start=run.period_start,
            state=ReconciliationRun.State.DONE,
            pk__gt=run.pk,
        )
        .filter(Q(facility_id=run.facility_id) if run.facility_id else Q(facility__isnull=True))
        .exists()
    )


def runs_marked(runs: list[ReconciliationRun]) -> list[ReconciliationRun]:
    """Set `is_current` / `is_superseded` on finished runs (an unfinished run is neither)."""
    from .services import current_run_ids

    current = current_run_ids(run_ids=[r.pk for r in runs])
    for run in runs:
        done = run.state == ReconciliationRun.State.DONE
        run.is_current = done and run.pk in current  # type: ignore[attr-defined]
        run.is_superseded = done and run.pk not in current  # type: ignore[attr-defined]
    return runs


@dataclass(frozen=True)
class AppointmentInfo:
    id: int
    status: str
    status_label: str
    booked_at: dt.datetime
    start: dt.datetime
    ended_at: dt.datetime | None


def verdict_appointment(*, verdict: Verdict) -> AppointmentInfo | None:
    """The appointment the verdict was decided against, with its state and booking time (a read of
    the booking context's table)."""
    from apps.booking.models import Appointment

    if not verdict.matched_appointment_id:
        return None
    row = Appointment.objects.filter(pk=verdict.matched_appointment_id).first()
    if row is None:
        return None
    return AppointmentInfo(
        id=row.pk,
        status=row.status,
        status_label=str(APPOINTMENT_STATE_TEXTS.get(row.status, row.status)),
        booked_at=row.created_at,
        start=row.start,
        ended_at=row.ended_at,
    )


def visit_versions(*, visit: ReportedVisit) -> list[dict[str, Any]]:
    """Every version of a visit, newest first, each with the runs whose verdicts used it."""
    runs: dict[int, list[int]] = {}
    for version, run_id in visit_verdicts(visit_ids=[visit.pk]).values_list("visit_version", "run_id"):
        runs.setdefault(version, []).append(run_id)
    rows: list[dict[str, Any]] = [
        {
            "version": visit.version,
            "visit_at": visit.visit_at,
            "emergency": visit.emergency,
            "withdrawn": visit.withdrawn,
            "service_id": visit.service_id,
            "correction_reason": visit.correction_reason,
            "recorded_at": visit.version_at or visit.created_at,
            "batch_id": visit.batch_id,
            "current": True,
        }
    ]
    for old in VisitVersion.objects.filter(visit=visit).order_by("-version"):
        rows.append(
            {
                "version": old.version,
                "visit_at": old.visit_at,
                "emergency": old.emergency,
                "withdrawn": old.withdrawn,
                "service_id": old.service_id,
                "correction_reason": old.correction_reason,
                "recorded_at": old.recorded_at,
                "batch_id": old.batch_id,
                "current": False,
            }
        )
    for row in rows:
        row["runs"] = sorted(runs.get(row["version"], []))
    return rows


def override_list(
    *, facility_id: int | None = None, user_id: int | None = None, run_id: int | None = None
) -> QuerySet[Override]:
    """The audit trail of all staff overrides, newest first: who, when, why, on which verdict."""
    qs = Override.objects.select_related("user", "verdict", "verdict__facility", "visit", "visit__service")
    if facility_id is not None:
        qs = qs.filter(visit__facility_id=facility_id)
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    if run_id is not None:
        qs = qs.filter(verdict__run_id=run_id)
    return qs.order_by("-at", "-id")


@dataclass(frozen=True)
class EmergencyShare:
    facility_id: int
    facility_code: str
    facility_name: str
    visits: int
    emergencies: int
    paid_emergencies: int

    @property
    def percent(self) -> float:
        return round(100 * self.emergencies / self.visits, 1) if self.visits else 0.0


def emergency_shares(*, run: ReconciliationRun) -> list[EmergencyShare]:
    """Per facility of a run: visits, visits reported as emergencies and emergencies paid as such;
    highest share first."""
    rows = (
        run_verdicts(run=run)
        .values("facility_id", "facility__nfz_code", "facility__name")
        .annotate(
            visits=Count("id"),
            emergencies=Count("id", filter=Q(visit__emergency=True)),
            paid=Count("id", filter=Q(reason=Reason.EMERGENCY)),
        )
    )
    shares = [
        EmergencyShare(
            facility_id=r["facility_id"],
            facility_code=r["facility__nfz_code"],
            facility_name=r["facility__name"],
            visits=r["visits"],
            emergencies=r["emergencies"],
            paid_emergencies=r["paid"],
        )
        for r in rows
    ]
    return sorted(shares, key=lambda s: (-s.percent, s.facility_code))


def month_over_month(*, months: int = 6, facility_id: int | None = None) -> dict[str, Any]:
    """Per facility, per month, from the current national monthly run of each of the last `months`
    months that has one: visits, payable and ineligible. Months without a run are listed as gaps."""
    from .services import current_run_ids

    runs = {
        r.period_start: r.pk
        for r in ReconciliationRun.objects.filter(
            pk__in=current_run_ids(), scope=ReconciliationRun.Scope.MONTH, facility__isnull=True
        )
    }
    if not runs:
        return {"months": [], "rows": []}
    last = max(runs)
    month_list = []
    month = last
    for _month in range(months):
        month_list.append(month)
        month = (month - dt.timedelta(days=1)).replace(day=1)
    month_list.reverse()
    qs = Verdict.objects.filter(
        run_id__in=[runs[m] for m in month_list if m in runs],
        period_start__in=[m for m in month_list if m in runs],
    )
    if facility_id is not None:
        qs = qs.filter(facility_id=facility_id)
    counts = qs.values("run_id", "facility_id", "facility__nfz_code", "facility__name").annotate(
        visits=Count("id"),
        payable=Count("id", filter=Q(final_eligible=True)),
        ineligible=Count("id", filter=Q(final_eligible=False)),
    )
    month_of = {pk: m for m, pk in runs.items()}
    facilities: dict[int, dict[str, Any]] = {}
    for c in counts:
        f = facilities.setdefault(
            c["facility_id"],
            {"code": c["facility__nfz_code"], "name": c["facility__name"], "by_month": {}},
        )
        f["by_month"][month_of[c["run_id"]]] = c
    rows = []
    for f in sorted(facilities.values(), key=lambda f: f["code"]):
        cells, previous = [], None
        for m in month_list:
            c = f["by_month"].get(m)
            share = round(100 * c["ineligible"] / c["visits"], 1) if c and c["visits"] else None
            change: float | None = None
            if share is not None and previous is not None:
                change = round(share - previous, 1)
            cells.append({"month": m, "has_run": m in runs, "counts": c, "percent": share, "change": change})
            previous = share if share is not None else previous
        rows.append({"code": f["code"], "name": f["name"], "cells": cells})
    return {"months": [{"month": m, "has_run": m in runs} for m in month_list], "rows": rows}


def import_batch_list(*, limit: int = 30) -> QuerySet[ImportBatch]:
    return ImportBatch.objects.select_related("uploaded_by").order_by("-id")[:limit]


REASON_LABELS = dict(Reason.choices)
