"""The patient registry: who a PESEL belongs to, and how a person CeR has never seen becomes a patient.

Most bookings are made at a facility's desk or by phone for people who never signed in to CeR. The
facility identifies them (ID card, or the PESEL and name confirmed on the phone) and its system sends
what it confirmed; `patient_identify` turns that into a `Patient` through ONE interface, so the
source of truth can change without touching any caller:

- `LocalRegistry` (the default, `settings.CER_PATIENT_REGISTRY`) keeps what the facility confirmed
  and records where it came from (`Patient.source`, `source_facility`, `source_channel`; when:
  `created_at`). Sex and date of birth are never taken from the caller: they come from the PESEL.
- A national backend (P1 / the population register behind it) must provide the same functions;
  docs/patient-registry.md says what it must guarantee.

Who may act for whom (a parent or legal guardian for a child, a person an adult authorised) is registry
data too: `relationships_of` and `representatives_of` answer it from the local copy
(`Relationship`, source "registry"), which a national backend refreshes (`relationship_record`).
`apps.patients.services.can_act_for` judges it on a given day.

The PESEL is personal data: nothing here logs it or puts it in an error message.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Protocol, runtime_checkable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.catalog.models import Facility
from apps.core import pesel as pesel_rules
from apps.core.errors import DomainError, localised

from . import sql
from .models import Patient, Relationship

NAME_MAX = 100  # Patient.first_name / last_name
PHONE_MAX = 20  # Patient.phone
EMAIL_MAX = 254  # Patient.email (RFC 5321 path limit)
# Digits with an optional leading "+", spaces and hyphens allowed between them (dropped when stored).
PHONE_PATTERN = re.compile(r"^\+?[0-9][0-9 \-]{6,22}[0-9]$")


@dataclass(frozen=True)
class Source:
    """Who identified the patient: `kind` is a `Patient.Source` value; for a facility, which one and
    through which channel (desk, phone, email; `waitlist` for a waiting-list entry)."""

    kind: str
    facility: Facility | None = None
    channel: str = ""

    @classmethod
    def facility_api(cls, facility: Facility, channel: str) -> Source:
        return cls(kind=Patient.Source.FACILITY, facility=facility, channel=channel)


@runtime_checkable
class PatientRegistry(Protocol):
    def patient_identify(
        self,
        *,
        pesel: str,
        first_name: str,
        last_name: str,
        phone: str = "",
        email: str = "",
        source: Source,
    ) -> Patient:
        """The patient with this PESEL: the existing one (unchanged, except that a missing phone or
        e-mail is filled in), or a new one from what the caller confirmed. Raises `DomainError`
        (`invalid_pesel`, `validation_error` with the field) and changes nothing on bad input."""
        ...

    def patient_find(self, *, pesel: str) -> Patient | None:
        """The patient with this PESEL, or None if the registry does not know them."""
        ...

    def relationships_of(self, *, representative: Patient) -> list[Relationship]:
        """Every relationship in which this person may act for someone (as a parent, legal guardian
        or authorised person), valid or not, with `patient` loaded; the caller judges the day."""
        ...

    def representatives_of(self, *, patient: Patient) -> list[Relationship]:
        """Every relationship in which someone may act for this person, with `representative` loaded."""
        ...


def _text(value: str, *, field: str, max_length: int, required: bool) -> str:
    """Bounded, printable text: no NUL or other control characters, no lone surrogates."""
    if not isinstance(value, str):
        raise DomainError("validation_error", field=field)
    value = value.strip()
    if (required and not value) or len(value) > max_length:
        raise DomainError("validation_error", field=field)
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise DomainError("validation_error", field=field)
    return value


def phone_clean(value: str) -> str:
    value = _text(value, field="phone", max_length=32, required=False)
    if not value:
        return ""
    if not PHONE_PATTERN.match(value):
        raise DomainError("validation_error", field="phone")
    compact = value.replace(" ", "").replace("-", "")
    if len(compact) > PHONE_MAX:
        raise DomainError("validation_error", field="phone")
    return compact


def email_clean(value: str) -> str:
    value = _text(value, field="email", max_length=EMAIL_MAX, required=False)
    if not value:
        return ""
    try:
        validate_email(value)
    except ValidationError:
        raise DomainError("validation_error", field="email") from None
    return value


def pesel_check(pesel: str) -> pesel_rules.PeselInfo:
    try:
        return pesel_rules.parse(pesel)
    except pesel_rules.InvalidPesel as exc:
        raise DomainError(
            "invalid_pesel", field="pesel", reason=localised(exc.reason_pl, exc.reason)
        ) from None


class LocalRegistry:
    """CeR's own table is the registry: a new patient is created from what the facility confirmed."""

    def patient_find(self, *, pesel: str) -> Patient | None:
        return Patient.objects.filter(pesel=pesel).first()

    def relationships_of(self, *, representative: Patient) -> list[Relationship]:
        # Read on every patient page: a prepared statement (the queryset's twin, tests/patients/test_sql.py).
        return sql.relationships_of(representative_id=representative.pk)

    def representatives_of(self, *, patient: Patient) -> list[Relationship]:
        return list(Relationship.objects.filter(patient=patient).select_related("representative"))

    def patient_identify(
        self,
        *,
        pesel: str,
        first_name: str,
        last_name: str,
        phone: str = "",
        email: str = "",
        source: Source,
    ) -> Patient:
        info = pesel_check(pesel)
        first_name = _text(first_name, field="first_name", max_length=NAME_MAX, required=True)
        last_name = _text(last_name, field="last_name", max_length=NAME_MAX, required=True)
        phone = phone_clean(phone)
        email = email_clean(email)
        if source.kind not in Patient.Source.values:
            raise ValueError(f"unknown patient source {source.kind!r}")
        patient = Patient.objects.filter(pesel=info.pesel).first()
        if patient is None:
            # get_or_create inserts in a savepoint and reads the row again if a concurrent request
            # (another facility, a retry) inserted the same PESEL first: one patient, never two.
            patient, created = Patient.objects.get_or_create(
                pesel=info.pesel,
                defaults={
                    "first_name": first_name,
                    "last_name": last_name,
                    "birth_date": info.birth_date,
                    "sex": info.sex,
                    "phone": phone,
                    "email": email,
                    "source": source.kind,
                    "source_facility": source.facility,
                    "source_channel": source.channel[:16],
                },
            )
            if created:
                return patient
        # Known already: only contact details that are missing are filled in; what the patient or
        # another facility recorded is never overwritten (conditional UPDATEs, so no race either).
        now = timezone.now()
        for field, value in (("phone", phone), ("email", email)):
            if value and not getattr(patient, field):
                missing = Patient.objects.filter(pk=patient.pk, **{field: ""})
                if missing.update(**{field: value, "updated_at": now}):
                    setattr(patient, field, value)
        return patient


@cache
def _backend(path: str) -> PatientRegistry:
    backend = import_string(path)()
    if not isinstance(backend, PatientRegistry):
        raise TypeError(f"{path} does not implement PatientRegistry")
    return backend


def patient_registry() -> PatientRegistry:
    """The configured backend (`settings.CER_PATIENT_REGISTRY`), one instance per process."""
    return _backend(settings.CER_PATIENT_REGISTRY)


def patient_identify(
    *, pesel: str, first_name: str, last_name: str, phone: str = "", email: str = "", source: Source
) -> Patient:
    return patient_registry().patient_identify(
        pesel=pesel, first_name=first_name, last_name=last_name, phone=phone, email=email, source=source
    )


def patient_find(*, pesel: str) -> Patient | None:
    return patient_registry().patient_find(pesel=pesel)


def relationships_of(*, representative: Patient) -> list[Relationship]:
    return patient_registry().relationships_of(representative=representative)


def representatives_of(*, patient: Patient) -> list[Relationship]:
    return patient_registry().representatives_of(patient=patient)


def relationship_record(
    *,
    representative: Patient,
    patient: Patient,
    kind: str,
    valid_from: dt.date,
    valid_to: dt.date | None = None,
    reference: str = "",
    source: str = Patient.Source.REGISTRY,
) -> Relationship:
    """Keep the local copy of a relationship the registry states (idempotent).

    A backend refreshing its copy finds the row by the registry's `reference` (an authorisation that
    was revoked comes back with its last day in `valid_to`); without one, by who, for whom, what kind
    and since when. Writes only what the registry said: nothing here comes from the person who acts.
    """
    if kind not in Relationship.Kind.values:
        raise ValueError(f"unknown relationship kind {kind!r}")
    if representative.pk == patient.pk or (valid_to is not None and valid_to < valid_from):
        raise DomainError("validation_error", field="relationship")
    values = {"valid_to": valid_to, "source": source}
    if reference:
        row, _created = Relationship.objects.update_or_create(
            source=source,
            reference=reference,
            defaults={
                **values,
                "representative": representative,
                "patient": patient,
                "kind": kind,
                "valid_from": valid_from,
            },
        )
    else:
        row, _created = Relationship.objects.update_or_create(
            representative=representative, patient=patient, kind=kind, valid_from=valid_from, defaults=values
        )
    return row
