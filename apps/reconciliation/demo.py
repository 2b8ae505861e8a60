"""Demo data for the staff pages: an NFZ staff log-in and a reconciled month with ineligible visits.

Visits are reported through the ordinary import (a generated CSV), so the demo exercises the same
path as a facility file. With appointments in the demo database, most visits match them and a few
are made ineligible on purpose (another facility, a cancelled booking, a second claim, no booking);
without any, visits are reported against demo facilities so that the rules still split them.
Idempotent: visit ids are deterministic, the import skips known ones, and a month is reconciled again
only when it gained visits.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
from typing import Any, TextIO

from django.contrib.auth.models import User
from django.db.models import Count
from django.db.models.functions import TruncMonth
from django.utils import timezone

from apps.booking.models import Appointment
from apps.catalog.models import Facility, Service
from apps.core import pesel
from apps.core.demo import credential_remember
from apps.patients.models import Patient

from .imports import FIELDS, OPTIONAL_FIELDS, WARSAW
from .models import ImportBatch, ReconciliationRun, ReportedVisit, Tariff
from .selectors import run_verdicts
from .services import run_create, run_execute, verdict_override, visits_import

USERNAME = "nfz"
MAX_APPOINTMENTS = 80


def demo_seed(*, out: TextIO) -> None:
    user = _staff_user(out)
    _tariffs()
    rows = _rows_from_appointments() or _rows_without_appointments()
    if not rows:
        out.write("reconciliation demo: no facilities or services yet, skipped\n")
        return
    batch = visits_import(file=_csv(rows), source=ImportBatch.Source.FILE)
    months = sorted({r["visit_at"].astimezone(WARSAW).date().replace(day=1) for r in rows})
    for month in months:
        run = _reconcile(month)
        out.write(
            f"reconciliation demo: {month:%Y-%m} run {run.pk}: {run.eligible_count} eligible, "
            f"{run.ineligible_count} ineligible (import batch {batch.pk})\n"
        )
        _demo_override(run=run, user=user)


def _staff_user(out: TextIO) -> User:
    from apps.staff.services import staff_group_ensure

    group = staff_group_ensure()
    user = User.objects.filter(username=USERNAME).first()
    if user is None:
        # Generated once, shown by seed_demo from var/demo-credentials.txt; never in the code or git.
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user(USERNAME, password=password, first_name="Analityk", last_name="NFZ")
        credential_remember("staff-nfz", f"NFZ staff pages /staff/: user {USERNAME}, password {password}")
        out.write(f"reconciliation demo: staff user {USERNAME} created\n")
    user.groups.add(group)
    return user


def _tariffs() -> None:
    for service in Service.objects.all():
        amount = "95.00" if service.kind == Service.Kind.TEST else "160.00"
        Tariff.objects.get_or_create(service=service, defaults={"amount": amount})


def _row(visit_id: str, pesel_: str, facility: str, service: str, at: dt.datetime, emergency: bool = False):
    return {
        "pesel": pesel_,
        "facility_code": facility,
        "service_code": service,
        "visit_at": at,
        "emergency": "1" if emergency else "0",
        "visit_id": visit_id,
    }


def _rows_from_appointments() -> list[dict[str, Any]]:
    """Visits for the busiest month of appointments: most honest, a few ineligible on purpose."""
    busiest = (
        Appointment.objects.annotate(month=TruncMonth("start"))
        .values("month")
        .annotate(n=Count("id"))
        .order_by("-n", "month")
        .first()
    )
    if busiest is None:
        return []
    month = busiest["month"]
    appointments = list(
        Appointment.objects.filter(start__gte=month, start__lt=(month + dt.timedelta(days=32)).replace(day=1))
        .select_related("patient", "facility", "service")
        .order_by("id")[:MAX_APPOINTMENTS]
    )
    other = Facility.objects.exclude(pk__in={a.facility_id for a in appointments}).order_by("id").first()
    rows = []
    for n, a in enumerate(appointments):
        at = a.start + dt.timedelta(minutes=5)
        facility = a.facility.nfz_code
        if n % 9 == 4 and other is not None:
            facility = other.nfz_code  # reported by a facility where the patient was not booked
        rows.append(_row(f"DEMO-A{a.pk}", a.patient.pesel, facility, a.service.code, at))
        if n % 11 == 7:  # the same booking claimed a second time
            rows.append(_row(f"DEMO-A{a.pk}-BIS", a.patient.pesel, facility, a.service.code, at))
    first = appointments[0]
    for k in range(3):  # patients CeR never saw
        unknown = pesel.generate(dt.date(1951, 3, 1 + k), "M", 4900 + k)
        rows.append(_row(f"DEMO-U{k}", unknown, first.facility.nfz_code, first.service.code, first.start))
    # An emergency of a patient CeR knows (without a booking for the service) is paid; of a PESEL CeR
    # never saw it is not.
    walk_in = Patient.objects.exclude(appointments__service=first.service).order_by("id").first()
    emergencies = [pesel.generate(dt.date(1951, 4, 1), "F", 4950)]
    if walk_in is not None:
        emergencies.insert(0, walk_in.pesel)
    for k, person in enumerate(emergencies):
        rows.append(
            _row(
                f"DEMO-E{k}", person, first.facility.nfz_code, first.service.code, first.start, emergency=True
            )
        )
    return rows


def _rows_without_appointments() -> list[dict[str, Any]]:
    """No bookings yet: report June and July 2026 visits at demo facilities. June is before the
    obligation date (eligible), July without registrations is ineligible, emergencies of patients CeR
    knows are paid (of unknown PESELs they are not)."""
    facilities = list(Facility.objects.filter(nfz_code__contains="DEMO").order_by("nfz_code")[:4])
    facilities = facilities or list(Facility.objects.order_by("id")[:4])
    services = list(Service.objects.filter(cer_from__lte=dt.date(2026, 7, 1)).order_by("code")[:3])
    later = Service.objects.filter(cer_from__gt=dt.date(2026, 7, 31)).order_by("code").first()
    if not facilities or not services:
        return []
    known = list(Patient.objects.order_by("id").values_list("pesel", flat=True)[:3])
    rows = []
    for n in range(24):
        facility, service = facilities[n % len(facilities)], services[n % len(services)]
        for month in (6, 7):
            at = dt.datetime(2026, month, 1 + n, 9 + n % 8, 0, tzinfo=WARSAW)
            person = pesel.generate(dt.date(1960 + n, 1 + n % 12, 10), "FM"[n % 2], 4800 + n)
            if n % 8 == 3 and known:
                person = known[n % len(known)]
            code = later.code if (later is not None and n % 6 == 5) else service.code
            rows.append(_row(f"DEMO-{month}-{n}", person, facility.nfz_code, code, at, emergency=n % 8 == 3))
    return rows


def _csv(rows: list[dict[str, Any]]) -> io.BytesIO:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*FIELDS, *OPTIONAL_FIELDS])
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "visit_at": row["visit_at"].astimezone(WARSAW).isoformat()})
    file = io.BytesIO(buffer.getvalue().encode())
    file.name = "demo-visits.csv"
    return file


def _reconcile(month: dt.date) -> ReconciliationRun:
    done = (
        ReconciliationRun.objects.filter(
            scope="month", period_start=month, facility__isnull=True, state="done"
        )
        .order_by("-id")
        .first()
    )
    start = dt.datetime.combine(month, dt.time.min, tzinfo=WARSAW)
    end = dt.datetime.combine((month + dt.timedelta(days=32)).replace(day=1), dt.time.min, tzinfo=WARSAW)
    in_month = ReportedVisit.objects.filter(visit_at__gte=start, visit_at__lt=end).count()
    if done is not None and done.visits_total >= in_month:
        return done
    run = run_create(scope=ReconciliationRun.Scope.MONTH, period_start=month)
    return run_execute(run_id=run.pk)


def _demo_override(*, run: ReconciliationRun, user: User) -> None:
    if run_verdicts(run=run).filter(override__isnull=False).exists():
        return
    verdict = run_verdicts(run=run).filter(eligible=False).order_by("id").first()
    if verdict is None:
        return
    verdict_override(
        verdict=verdict,
        new_eligible=True,
        user=user,
        justification=f"Demo: rejestracja utracona podczas awarii CeR ({timezone.localdate():%Y-%m-%d}).",
    )
