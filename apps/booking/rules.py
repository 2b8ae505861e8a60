"""Booking rules read from the catalogue: scope, screening eligibility, e-referrals, entitlements.

Each check raises `DomainError` with a stable code and a patient-readable message; none writes,
except `referral_claim`, which marks the referral used inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import hmac

from django.db import connection
from django.utils import timezone

from apps.catalog.models import Entitlement, Service
from apps.core.errors import DomainError
from apps.patients.models import Patient, PatientEntitlement, Referral, ScreeningRecord

from .models import Appointment


def scope_check(*, service: Service, day: dt.date) -> None:
    if not service.covered_on(day):
        raise DomainError("service_not_covered", service=service.code, date=day.isoformat())


def _add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, candidate)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def screening_columns(service: str) -> str:
    """Two columns: the latest recorded screening and the latest attended CeR appointment of the
    patient `%(patient)s` for the service given by the SQL expression `service`."""
    return f"""
    (SELECT max(performed_on) FROM {ScreeningRecord._meta.db_table}
     WHERE patient_id = %(patient)s AND service_id = {service}),
    (SELECT max(start) FROM {Appointment._meta.db_table}
     WHERE patient_id = %(patient)s AND service_id = {service} AND status = %(attended)s)
    """  # noqa: S608 (table names from the models; values are bound)


LAST_SCREENING_SQL = f"SELECT {screening_columns('%(service)s')}"


def screening_last(recorded: dt.date | None, attended: dt.datetime | None) -> dt.date | None:
    """The latest screening of a kind from the two columns of `screening_columns`."""
    candidates = [d for d in (recorded, timezone.localdate(attended) if attended else None) if d]
    return max(candidates) if candidates else None


def last_screening(*, patient: Patient, service: Service) -> dt.date | None:
    """The latest screening of this kind: recorded history, or an attended CeR appointment.
    One round trip for both (this runs on every screening booking)."""
    with connection.cursor() as cursor:
        cursor.execute(
            LAST_SCREENING_SQL,
            {"patient": patient.pk, "service": service.pk, "attended": Appointment.Status.ATTENDED},
        )
        recorded, attended = cursor.fetchone()
    return screening_last(recorded, attended)


def eligibility_check(*, patient: Patient, service: Service, on: dt.date) -> None:
    """Screening programmes: sex, age counted by year of birth, interval since the last test."""
    eligibility_check_person(patient=patient, service=service, on=on)
    if _interval(patient, service):
        last = last_screening(patient=patient, service=service)
        interval_check(patient=patient, service=service, on=on, last=last)


def _interval(patient: Patient, service: Service) -> int | None:
    return service.interval_months_risk if patient.screening_risk_group else service.interval_months


def eligibility_check_person(*, patient: Patient, service: Service, on: dt.date) -> None:
    """The programme's sex and age (counted by year of birth, not birthday)."""
    if service.eligible_sex and patient.sex != service.eligible_sex:
        raise DomainError("not_eligible_sex")
    age = on.year - patient.birth_date.year  # programme rule: age by birth year, not birthday
    if (service.age_min is not None and age < service.age_min) or (
        service.age_max is not None and age > service.age_max
    ):
        raise DomainError("not_eligible_age", age_min=service.age_min or 0, age_max=service.age_max or 150)


def interval_check(*, patient: Patient, service: Service, on: dt.date, last: dt.date | None) -> None:
    """The programme's interval since the patient's last screening `last` (see `last_screening`)."""
    months = _interval(patient, service)
    if months and last is not None:
        next_possible = _add_months(last, months)
        if on < next_possible:
            raise DomainError("not_eligible_interval", last=last.isoformat(), next=next_possible.isoformat())


def referral_claim(
    *, patient: Patient, service: Service, number: str | None, code: str | None, today: dt.date
) -> Referral | None:
    """Check an e-referral and mark it used (one use). Locks the referral row for the transaction."""
    if not service.referral_required:
        return None
    if not number or not code:
        raise DomainError("referral_required", field="referral_number")
    referral = Referral.objects.select_for_update().filter(number=number.strip()).first()
    # One message for "no such number" and "wrong code", so codes cannot be probed number by number.
    if referral is None or not _same(referral.access_code, code.strip()):
        raise DomainError("referral_invalid", field="referral_code")
    if referral.patient_id != patient.pk:
        raise DomainError("referral_wrong_patient", field="referral_number")
    if referral.service_id != service.pk:
        raise DomainError("referral_wrong_service", field="referral_number", service=referral.service.name_pl)
    if referral.used_at is not None:
        raise DomainError("referral_used", field="referral_number")
    if referral.valid_until < today:
        raise DomainError("referral_expired", field="referral_number", date=referral.valid_until.isoformat())
    referral.used_at = timezone.now()
    referral.save(update_fields=["used_at", "updated_at"])
    return referral


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


ENTITLEMENT_SQL = f"""
SELECT e.* FROM {Entitlement._meta.db_table} e
JOIN {PatientEntitlement._meta.db_table} pe ON pe.entitlement_id = e.id
WHERE pe.patient_id = %(patient)s AND pe.valid_from <= %(on)s
  AND (pe.valid_to IS NULL OR pe.valid_to >= %(on)s)
ORDER BY e.priority DESC, e.code
LIMIT 1
"""  # noqa: S608 (table names from the models; values are bound)


def entitlement_for(*, patient: Patient, on: dt.date) -> Entitlement | None:
    """The patient's strongest out-of-turn entitlement valid on a date (the list itself is data).
    Plain SQL: it runs on every booking, and the ORM spent longer composing it than PostgreSQL
    spent answering."""
    return next(iter(Entitlement.objects.raw(ENTITLEMENT_SQL, {"patient": patient.pk, "on": on})), None)
