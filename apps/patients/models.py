"""Patients, their e-referrals, entitlements and screening history.

The PESEL is personal data: it is stored once here, never put in a URL or a log line; every read of
a patient's personal data by a facility or staff member goes through `apps.audit`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from apps.catalog.models import Entitlement, Service
from apps.core.models import TimeStampedModel


class Patient(TimeStampedModel):
    class Sex(models.TextChoices):
        FEMALE = "F", "kobieta"
        MALE = "M", "mężczyzna"

    class Source(models.TextChoices):
        """Who first identified the patient to CeR (`apps.patients.registry`); blank: not recorded
        (patients created before sources were kept, or by sign-in paths that do not record it yet)."""

        FACILITY = "facility", "placówka (rejestracja, telefon, e-mail)"
        NATIONAL_LOGIN = "national_login", "logowanie krajowe"
        REGISTRY = "registry", "rejestr krajowy"

    pesel = models.CharField(max_length=11, unique=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    sex = models.CharField(max_length=1, choices=Sex.choices)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True)
    language = models.CharField(max_length=2, default="pl", choices=[("pl", "polski"), ("en", "English")])
    # Programme risk groups shorten screening intervals (e.g. cytology every 12 months).
    screening_risk_group = models.BooleanField(default=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="patient"
    )
    # Where the record came from (when: `created_at`): e.g. a facility's desk that identified the
    # patient by PESEL and entered the name the patient confirmed there.
    # `db_default`: rows written by plain SQL (the bench's generator, imports) need no new column.
    source = models.CharField(max_length=16, choices=Source.choices, blank=True, default="", db_default="")
    source_facility = models.ForeignKey(
        "catalog.Facility", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_channel = models.CharField(
        max_length=16, blank=True, default="", db_default="", help_text="desk, phone, email, waitlist"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} (#{self.pk})"


class PatientEntitlement(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="entitlements")
    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)
    document = models.CharField(max_length=100, blank=True)
    # Who saw the document (e.g. the facility's desk, through the API) and when; null: not recorded.
    source_facility = models.ForeignKey(
        "catalog.Facility", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "entitlement", "valid_from"], name="entitlement_once"),
        ]


class Referral(TimeStampedModel):
    """An e-referral (e-skierowanie) as received from P1, for one service, registrable until expiry.

    Its life follows P1: issued -> registered (a booking or a waiting-list entry holds it; one at a
    time) -> issued again when that registration is cancelled or released -> realised when the visit
    is recorded as attended (then it is spent). Every transition is recorded
    (`booking.ReferralTransition`) by `apps.booking.services.referrals`.
    """

    class Category(models.TextChoices):
        URGENT = "urgent", "pilny"
        STABLE = "stable", "stabilny"

    class Status(models.TextChoices):
        ISSUED = "issued", "wystawione"
        REGISTERED = "registered", "zarejestrowane"
        REALISED = "realised", "zrealizowane"

    number = models.CharField(max_length=44, unique=True)
    access_code = models.CharField(max_length=4)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="referrals")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="referrals")
    category = models.CharField(max_length=8, choices=Category.choices, default=Category.STABLE)
    issued_on = models.DateField()
    valid_until = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ISSUED)
    status_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(access_code__regex=r"^[0-9]{4}$"), name="referral_code_4_digits"
            ),
            models.CheckConstraint(condition=Q(valid_until__gte=F("issued_on")), name="referral_validity"),
        ]

    def __str__(self) -> str:
        return self.number


class ScreeningRecord(models.Model):
    """A screening test performed (from SIMP / facility outcomes): the interval rules count from it."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="screenings")
    service = models.ForeignKey(Service, on_delete=models.PROTECT)
    performed_on = models.DateField()
    source = models.CharField(max_length=40, default="cer")

    class Meta:
        indexes = [models.Index(fields=["patient", "service", "-performed_on"])]


class Relationship(TimeStampedModel):
    """Who may act for whom, as the patient registry states it (`apps.patients.registry`): a parent or
    legal guardian for a child, or a person an adult has authorised ("upoważnienie", given in the
    Internet Patient Account). This is the registry's data kept locally (`source`, `reference`), never
    entered by the person who acts; `apps.patients.services.can_act_for` judges it on a given day.

    `valid_to` is the last day it holds (inclusive; null: until revoked). A parent's or guardian's right
    also ends when the child turns 18, which is judged from the child's PESEL birth date, not stored.
    """

    class Kind(models.TextChoices):
        PARENT = "parent", "rodzic"
        LEGAL_GUARDIAN = "legal_guardian", "opiekun prawny"
        AUTHORISATION = "authorisation", "upoważnienie"

    id = models.BigAutoField(primary_key=True)
    representative = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="represents")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="represented_by")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Patient.Source.choices, default=Patient.Source.REGISTRY)
    # The registry's own identifier of the record (refreshing the local copy finds the row by it).
    reference = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["valid_from", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(representative=F("patient")), name="relationship_not_self"),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=F("valid_from")),
                name="relationship_validity",
            ),
            models.UniqueConstraint(
                fields=["representative", "patient", "kind", "valid_from"], name="relationship_once"
            ),
            models.UniqueConstraint(
                fields=["source", "reference"], condition=~Q(reference=""), name="relationship_reference"
            ),
        ]
        indexes = [models.Index(fields=["patient", "kind"], name="relationship_by_patient")]

    def __str__(self) -> str:
        return f"relationship {self.pk} {self.kind}"
