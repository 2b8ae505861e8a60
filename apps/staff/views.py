"""NFZ staff pages for the reimbursement reconciliation: thin views over the reconciliation services
and selectors. Every page that shows patients' visits records the read in the audit log."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from apps.audit.services import access_record
from apps.catalog.models import Facility
from apps.core import pesel
from apps.core.dbrouter import replica_reads
from apps.core.errors import DomainError
from apps.reconciliation import selectors
from apps.reconciliation.imports import row_error_text
from apps.reconciliation.models import (
    INELIGIBLE_REASONS,
    ImportBatch,
    ReconciliationRun,
    settlement_policy,
)
from apps.reconciliation.services import run_create, verdict_override, visits_import
from apps.reconciliation.tasks import run_enqueue

from . import exports, twofactor
from . import selectors as staff_selectors
from .forms import (
    ComplianceFilterForm,
    OverrideFilterForm,
    OverrideForm,
    RunStartForm,
    RunVerdictFilterForm,
    UploadForm,
    VerdictFilterForm,
    WaitlistFilterForm,
    export_options,
)
from .permissions import EXPORT, IMPORT, OVERRIDE, REVIEW, START, staff_required

PAGE_SIZE = 50


class StaffLoginView(auth_views.LoginView):
    template_name = "staff/login.html"
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        return reverse("staff:runs")

    def form_valid(self, form: Any) -> HttpResponse:
        super().form_valid(form)
        # The password alone opens nothing: the second factor (or its first set-up) comes next.
        target = "staff:otp_setup" if twofactor.staff_needs_setup(user=self.request.user) else "staff:otp"
        next_url = self.get_redirect_url()
        return redirect(reverse(target) + (f"?{urlencode({'next': next_url})}" if next_url else ""))


def _next_or_runs(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("staff:runs")


@require_http_methods(["GET", "POST"])
def otp_verify(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("staff:login")
    if twofactor.staff_needs_setup(user=request.user):
        return redirect("staff:otp_setup")
    error = ""
    if request.method == "POST":
        if twofactor.staff_otp_verify(request=request, token=str(request.POST.get("token", ""))[:64]):
            return redirect(_next_or_runs(request))
        error = _("The code is wrong or has expired.")
    return render(request, "staff/otp_verify.html", {"error": error, "next": _next_or_runs(request)})


@require_http_methods(["GET", "POST"])
def otp_setup(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("staff:login")
    if not twofactor.staff_needs_setup(user=request.user):
        return redirect("staff:otp")
    error = ""
    if request.method == "POST":
        codes = twofactor.totp_device_confirm(request=request, token=str(request.POST.get("token", ""))[:64])
        if codes is not None:
            return render(request, "staff/otp_codes.html", {"codes": codes, "next": _next_or_runs(request)})
        error = _("The code is wrong. Type the current code from the app.")
    device = twofactor.totp_device_pending(user=request.user)
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return render(
        request,
        "staff/otp_setup.html",
        {"secret": secret, "config_url": device.config_url, "error": error, "next": _next_or_runs(request)},
    )


def _audit(
    request: HttpRequest, *, patient_ids: Iterable[int | None], action: str, facility_id: int | None
) -> None:
    ids = [pid for pid in patient_ids if pid is not None]
    if ids:
        access_record(
            actor_type="staff",
            actor_id=str(request.user.pk),
            patient_ids=ids,
            action=action,
            facility_id=facility_id,
            purpose="reimbursement reconciliation",
        )


def _run_or_404(run_id: int) -> ReconciliationRun:
    run = selectors.run_get(run_id=run_id)
    if run is None:
        raise Http404
    return run


@staff_required(REVIEW)
def run_list(request: HttpRequest) -> HttpResponse:
    runs = selectors.runs_marked(list(selectors.run_list()))
    active = any(r.state in ("queued", "running") for r in runs)
    return render(
        request,
        "staff/runs.html",
        {"runs": runs, "active": active, "form": RunStartForm(), "can_start": request.user.has_perm(START)},
    )


@require_POST
@staff_required(START)
def run_start(request: HttpRequest) -> HttpResponse:
    form = RunStartForm(request.POST)
    if form.is_valid():
        try:
            with transaction.atomic():
                run = run_create(
                    scope=ReconciliationRun.Scope.MONTH,
                    period_start=form.cleaned_data["month"],
                    facility=form.cleaned_data["facility"],
                    created_by=request.user,
                )
                run_enqueue(run=run)
        except DomainError as exc:
            # e.g. a month that has not ended yet
            form.add_error("month", exc.message)
    if not form.is_valid():
        runs = selectors.runs_marked(list(selectors.run_list()))
        return render(request, "staff/runs.html", {"runs": runs, "form": form, "can_start": True}, status=400)
    messages.success(request, _("Run %(id)s queued.") % {"id": run.pk})
    return redirect("staff:runs")


@staff_required(REVIEW)
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(run_id)
    threshold = settlement_policy().emergency_share_threshold
    shares = selectors.emergency_shares(run=run)
    return render(
        request,
        "staff/run_detail.html",
        {
            "run": run,
            "is_current": selectors.run_is_current(run=run),
            "by_facility": selectors.run_summary_by_facility(run=run),
            "by_service": selectors.run_summary_by_service(run=run),
            "reasons": INELIGIBLE_REASONS,
            "threshold": threshold,
            "outliers": [s for s in shares if s.percent > threshold],
            "shares": shares,
            "can_export": request.user.has_perm(EXPORT),
        },
    )


def _verdict_export(
    request: HttpRequest, verdicts: Any, *, filename: str, facility_id: int | None
) -> HttpResponseBase:
    if not request.user.has_perm(EXPORT):
        return HttpResponse(_("No permission to export."), status=403)
    kind = "xlsx" if request.GET.get("export") == "xlsx" else "csv"
    _audit(
        request,
        patient_ids=verdicts.values_list("visit__patient_id", flat=True).distinct(),
        action=f"staff:export:{kind}",
        facility_id=facility_id,
    )
    language, excel = export_options(request.GET)
    return exports.verdict_export(verdicts, kind=kind, filename=filename, language=language, excel_csv=excel)


@staff_required(REVIEW)
@replica_reads()
def run_verdicts(request: HttpRequest, run_id: int) -> HttpResponseBase:
    """Every verdict of a run, filtered by voivodeship, facility, service, reason ...; the whole run or
    the filtered view exports as the settlement file."""
    run = _run_or_404(run_id)
    form = RunVerdictFilterForm(request.GET or None)
    filters = form.filters()
    verdicts = selectors.verdict_list(run=run, **filters)
    if request.GET.get("export") in ("csv", "xlsx"):
        return _verdict_export(
            request, verdicts, filename=f"settlement-run{run.pk}", facility_id=filters.get("facility_id")
        )
    page = Paginator(verdicts, PAGE_SIZE).get_page(request.GET.get("page"))
    items = [{"verdict": v, "pesel": pesel.mask(v.visit.patient_pesel)} for v in page]
    _audit(
        request,
        patient_ids=[v.visit.patient_id for v in page],
        action="staff:run_verdicts",
        facility_id=filters.get("facility_id"),
    )
    return render(
        request,
        "staff/run_verdicts.html",
        {
            "run": run,
            "is_current": selectors.run_is_current(run=run),
            "form": form,
            "page": page,
            "items": items,
            "query": _paging_query(request),
            "can_export": request.user.has_perm(EXPORT),
        },
    )


@staff_required(REVIEW)
def overrides(request: HttpRequest) -> HttpResponse:
    """The audit trail of every override: who, when, why, which verdict."""
    form = OverrideFilterForm(request.GET or None)
    facility = form.cleaned_data.get("facility") if form.is_valid() else None
    rows = selectors.override_list(facility_id=facility.pk if facility else None)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "staff/overrides.html",
        {"form": form, "page": page, "query": _paging_query(request)},
    )


@staff_required(REVIEW)
@replica_reads()
def facility_trends(request: HttpRequest) -> HttpResponse:
    """Month over month per facility: the share not payable in each month's current national run."""
    return render(request, "staff/facility_trends.html", {"table": selectors.month_over_month()})


@staff_required(REVIEW)
@replica_reads()
def trends(request: HttpRequest) -> HttpResponse:
    points = selectors.ineligibility_by_month()
    top = max((p.percent for p in points), default=0) or 1
    bar_width, gap, height = 40, 16, 200
    bars = [
        {
            "point": p,
            "x": 40 + i * (bar_width + gap),
            "height": round(height * p.percent / top),
            "y": 20 + height - round(height * p.percent / top),
        }
        for i, p in enumerate(points)
    ]
    return render(
        request,
        "staff/trends.html",
        {
            "bars": bars,
            "reasons": INELIGIBLE_REASONS,
            "chart": {
                "width": 60 + len(points) * (bar_width + gap),
                "height": height + 60,
                "bar": bar_width,
                "base": 20 + height,
                "label_y": height + 40,
                "top": top,
            },
        },
    )


def _paging_query(request: HttpRequest) -> str:
    """The page's filters as a query string for its pager and export links (without page/export)."""
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("export", None)
    return query.urlencode()


@staff_required(REVIEW)
@replica_reads()
def facility_visits(request: HttpRequest, run_id: int, facility_id: int) -> HttpResponseBase:
    run = _run_or_404(run_id)
    facility = Facility.objects.filter(pk=facility_id).first()
    if facility is None:
        raise Http404
    form = VerdictFilterForm(request.GET or None)
    verdicts = selectors.verdict_list(run=run, facility_id=facility.pk, **form.filters())
    if request.GET.get("export") in ("csv", "xlsx"):
        name = f"verdicts-run{run.pk}-{facility.nfz_code.replace('/', '-')}"
        return _verdict_export(request, verdicts, filename=name, facility_id=facility.pk)
    page = Paginator(verdicts, PAGE_SIZE).get_page(request.GET.get("page"))
    items = [{"verdict": v, "pesel": pesel.mask(v.visit.patient_pesel)} for v in page]
    _audit(
        request,
        patient_ids=[v.visit.patient_id for v in page],
        action="staff:facility_visits",
        facility_id=facility.pk,
    )
    query = _paging_query(request)
    return render(
        request,
        "staff/facility_visits.html",
        {
            "run": run,
            "facility": facility,
            "form": form,
            "page": page,
            "items": items,
            "query": query,
            "can_export": request.user.has_perm(EXPORT),
        },
    )


@staff_required(REVIEW)
@replica_reads()
def compliance(request: HttpRequest) -> HttpResponseBase:
    """Facilities whose published schedule is shorter than the service's minimum horizon, as the
    daily compliance job found them (latest checked day unless another is asked for)."""
    form = ComplianceFilterForm(request.GET or None)
    chosen = form.cleaned_data.get("day") if form.is_valid() else None
    day = chosen or staff_selectors.compliance_latest_day()
    checks = staff_selectors.compliance_list(day=day, **form.filters())
    export = request.GET.get("export")
    if export in ("csv", "xlsx"):
        if not request.user.has_perm(EXPORT):
            return HttpResponse(_("No permission to export."), status=403)
        language, excel = export_options(request.GET)
        return exports.compliance_export(
            checks,
            kind=export,
            filename=f"compliance-{day.isoformat() if day else 'none'}",
            language=language,
            excel_csv=excel,
        )
    page = Paginator(checks, PAGE_SIZE).get_page(request.GET.get("page"))
    query = _paging_query(request)
    return render(
        request,
        "staff/compliance.html",
        {
            "form": form,
            "day": day,
            "counts": staff_selectors.compliance_counts(day=day) if day else None,
            "page": page,
            "query": query,
            "can_export": request.user.has_perm(EXPORT),
        },
    )


@require_http_methods(["GET", "POST"])
@staff_required(REVIEW)
def verdict_detail(request: HttpRequest, verdict_id: int) -> HttpResponse:
    verdict = selectors.verdict_get(verdict_id=verdict_id)
    if verdict is None:
        raise Http404
    can_override = request.user.has_perm(OVERRIDE)
    form = OverrideForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if not can_override:
            return HttpResponse(_("Not allowed."), status=403)
        if form.is_valid():
            try:
                verdict_override(
                    verdict=verdict,
                    new_eligible=form.cleaned_data["new_eligible"],
                    user=request.user,
                    justification=form.cleaned_data["justification"],
                )
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, _("Verdict overridden."))
                return redirect("staff:verdict", verdict_id=verdict.pk)
        status = 400
    _audit(
        request,
        patient_ids=[verdict.visit.patient_id],
        action="staff:verdict_detail",
        facility_id=verdict.facility_id,
    )
    context: dict[str, Any] = {
        "verdict": verdict,
        "is_current": selectors.run_is_current(run=verdict.run),
        "appointment": selectors.verdict_appointment(verdict=verdict),
        "versions": selectors.visit_versions(visit=verdict.visit),
        "visit": verdict.visit,
        "pesel": pesel.mask(verdict.visit.patient_pesel),
        "overrides": selectors.verdict_overrides(verdict=verdict),
        "form": form,
        "can_override": can_override,
    }
    return render(request, "staff/verdict.html", context, status=status)


@require_http_methods(["GET", "POST"])
@staff_required(IMPORT)
def imports(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                batch = visits_import(
                    file=form.cleaned_data["file"], source=ImportBatch.Source.UPLOAD, uploaded_by=request.user
                )
            except DomainError as exc:
                form.add_error("file", exc.message)
            else:
                if getattr(batch, "already_imported", False):
                    messages.info(request, _("This file was imported before."))
                return redirect("staff:import", batch_id=batch.pk)
        status = 400
    return render(
        request, "staff/imports.html", {"form": form, "batches": selectors.import_batch_list()}, status=status
    )


@staff_required(IMPORT)
def import_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = ImportBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        raise Http404
    language = translation.get_language() or "pl"
    errors = [{**e, "reason": row_error_text(e, language)} for e in batch.errors or []]
    return render(request, "staff/import_detail.html", {"batch": batch, "errors": errors})


@staff_required(REVIEW)
def waitlist(request: HttpRequest) -> HttpResponse:
    """The central waiting list of a service (read-only): each entry's national position and, for the
    slots it gave away, the booking core's explanation of every allocation."""
    form = WaitlistFilterForm(request.GET or None)
    page, allocations = None, []
    if form.is_valid():
        service = form.cleaned_data["service"]
        voivodeship = form.cleaned_data.get("voivodeship")
        voivodeship_id = voivodeship.pk if voivodeship else None
        queue = staff_selectors.waitlist_queue(service_id=service.pk, voivodeship_id=voivodeship_id)
        page = Paginator(queue, PAGE_SIZE).get_page(request.GET.get("page"))
        allocations = staff_selectors.waitlist_allocations(
            service_id=service.pk, voivodeship_id=voivodeship_id
        )
        _audit(
            request,
            patient_ids=[r.patient_id for r in page] + [a.patient_id for a in allocations],
            action="staff:waitlist",
            facility_id=None,
        )
    entries = [{"entry": r, "pesel": pesel.mask(r.patient.pesel)} for r in page] if page else []
    return render(
        request,
        "staff/waitlist.html",
        {
            "form": form,
            "page": page,
            "entries": entries,
            "allocations": [
                {
                    "appointment": a,
                    "pesel": pesel.mask(a.patient.pesel),
                    "why": sorted((a.allocation or {}).items()),
                }
                for a in allocations
            ],
            "query": _paging_query(request),
        },
    )
