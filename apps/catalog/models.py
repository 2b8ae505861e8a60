"""Reference data: geography, the CeR service catalogue (rules as data), facilities and contracts.

Everything that changes with the law or with NFZ decisions lives in these tables, loaded from
`fixtures/reference/` and maintained by NFZ staff in the admin: which services CeR covers and from
when, screening eligibility, reminder offsets, horizons, entitlements, reason codes, holidays.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper

from apps.core.models import TimeStampedModel

# The longest slot any service may publish, and a CHECK on every slot: month partitions of the slot
# table rely on it to find the slots that could overlap across a month boundary
# (apps/scheduling/partitions.py).
SLOT_MAX_MINUTES = 24 * 60


class Voivodeship(models.Model):
    teryt = models.CharField(max_length=2, primary_key=True)
    name = models.CharField(max_length=64)
    name_en = models.CharField(max_length=64)

    class Meta:
        ordering = ["teryt"]

    def __str__(self) -> str:
        return self.name


class Locality(models.Model):
    simc = models.CharField(max_length=7, unique=True)
    name = models.CharField(max_length=100)
    voivodeship = models.ForeignKey(Voivodeship, on_delete=models.PROTECT, related_name="localities")
    population = models.PositiveIntegerField(default=0)
    lat = models.FloatField()
    lon = models.FloatField()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "localities"
        indexes = [
            models.Index(fields=["voivodeship", "name"]),
            # The search form's town, named in any letter case (`portal.sql.locality_named`,
            # `name__iexact`): an index probe, not a scan of TERYT's ~100,000 SIMC places.
            models.Index(Upper("name"), name="locality_upper_name"),
        ]

    def __str__(self) -> str:
        return self.name


class Service(TimeStampedModel):
    class Kind(models.TextChoices):
        VISIT = "visit", "wizyta"
        TEST = "test", "badanie"

    class Sex(models.TextChoices):
        FEMALE = "F", "kobiety"
        MALE = "M", "mężczyźni"

    code = models.CharField(max_length=32, unique=True)
    name_pl = models.CharField(max_length=200)
    name_en = models.CharField(max_length=200)
    specialty = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    referral_required = models.BooleanField(default=False)
    # CeR scope by date: before `cer_from` the service is not covered at all; registration becomes
    # obligatory for facilities (no registration -> no reimbursement) from `obligatory_from`.
    cer_from = models.DateField()
    obligatory_from = models.DateField()
    # Screening eligibility; age is counted by year of birth (programme rules).
    eligible_sex = models.CharField(max_length=1, choices=Sex.choices, blank=True)
    age_min = models.PositiveSmallIntegerField(null=True, blank=True)
    age_max = models.PositiveSmallIntegerField(null=True, blank=True)
    interval_months = models.PositiveSmallIntegerField(null=True, blank=True)
    interval_months_risk = models.PositiveSmallIntegerField(null=True, blank=True)
    eligibility_source = models.TextField(blank=True)
    # Scheduling and lifecycle rules.
    min_horizon_days = models.PositiveSmallIntegerField(default=30)
    waitlist_lookahead_days = models.PositiveSmallIntegerField(default=40)
    slot_minutes = models.PositiveSmallIntegerField(default=20)
    # Bounds on what a facility may publish (issue 15: a slot in year 9999 and one three-year slot
    # were accepted and broke the compliance check and the schedule's listing).
    publish_horizon_days = models.PositiveSmallIntegerField(default=730)
    max_slot_minutes = models.PositiveSmallIntegerField(
        default=480, validators=[MaxValueValidator(SLOT_MAX_MINUTES)]
    )
    reminder_offsets_days = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    confirmation_required = models.BooleanField(default=False)
    confirm_deadline_hours = models.PositiveSmallIntegerField(null=True, blank=True)
    # The deadline is never earlier than this many hours after the booking: a booking made closer to
    # the visit than `confirm_deadline_hours + confirm_min_notice_hours` needs no confirmation.
    confirm_min_notice_hours = models.PositiveSmallIntegerField(default=24)
    # Channels whose bookings need no confirmation (e.g. desk, phone: the patient just agreed a date).
    confirm_exempt_channels = ArrayField(models.CharField(max_length=10), default=list, blank=True)
    # What a no-show does to the e-referral: frees it for another booking, or realises (spends) it.
    referral_after_no_show = models.CharField(
        max_length=10, choices=[("free", "free"), ("realised", "realised")], default="free"
    )
    # The no-show rule: a booking still without an outcome this many hours after the visit's end is
    # marked no-show (booking.services.appointments_mark_no_show), which ends the registration so
    # the patient can book again. Empty: never automatic.
    no_show_after_hours = models.PositiveSmallIntegerField(null=True, blank=True)
    rule_version = models.PositiveIntegerField(default=1)
    source = models.TextField(blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(obligatory_from__gte=F("cer_from")), name="service_obligatory_after_cer"
            ),
            models.CheckConstraint(
                condition=Q(age_min__isnull=True) | Q(age_max__isnull=True) | Q(age_max__gte=F("age_min")),
                name="service_age_range",
            ),
            models.CheckConstraint(
                condition=Q(publish_horizon_days__gte=F("min_horizon_days")),
                name="service_publish_horizon_covers_minimum",
            ),
            models.CheckConstraint(condition=Q(max_slot_minutes__gte=5), name="service_max_slot_minutes"),
            models.CheckConstraint(
                condition=Q(max_slot_minutes__lte=SLOT_MAX_MINUTES), name="service_max_slot_minutes_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name_pl}"

    def name(self, language: str = "pl") -> str:
        return self.name_pl if language.startswith("pl") else self.name_en

    def covered_on(self, day: dt.date) -> bool:
        return day >= self.cer_from

    @property
    def is_screening(self) -> bool:
        return bool(self.eligible_sex or self.age_min or self.interval_months)


class Entitlement(models.Model):
    """An out-of-turn entitlement from the statute (art. 47c and others): served before everyone else."""

    code = models.CharField(max_length=32, unique=True)
    name_pl = models.CharField(max_length=200)
    name_en = models.CharField(max_length=200)
    priority = models.PositiveSmallIntegerField(default=10)
    legal_basis = models.TextField(blank=True)

    class Meta:
        ordering = ["-priority", "code"]

    def __str__(self) -> str:
        return self.name_pl


class ReasonCode(models.Model):
    class Kind(models.TextChoices):
        FACILITY_CANCEL = "facility_cancel"
        PATIENT_CANCEL = "patient_cancel"
        NO_SHOW = "no_show"
        RELEASE = "release"

    code = models.CharField(max_length=32, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name_pl = models.CharField(max_length=200)
    name_en = models.CharField(max_length=200)

    class Meta:
        ordering = ["kind", "code"]

    def __str__(self) -> str:
        return self.code


class Holiday(models.Model):
    date = models.DateField(unique=True)
    name_pl = models.CharField(max_length=100)
    name_en = models.CharField(max_length=100)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.name_pl}"


class Facility(TimeStampedModel):
    nfz_code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=200)
    locality = models.ForeignKey(Locality, on_delete=models.PROTECT, related_name="facilities")
    voivodeship = models.ForeignKey(Voivodeship, on_delete=models.PROTECT, related_name="facilities")
    lat = models.FloatField()
    lon = models.FloatField()
    phone = models.CharField(max_length=32, blank=True)
    # What a patient needs to find and reach the place (issue 18). db_default: the national-data
    # generator inserts facilities with plain SQL. Accessibility as the NFZ waiting-times data carries
    # it (ramp, lift, parking, toilet); None is "not known", never shown as "no".
    postcode = models.CharField(max_length=6, blank=True, db_default="")
    opening_hours = models.CharField(max_length=200, blank=True, db_default="")
    has_ramp = models.BooleanField(null=True, blank=True)
    has_lift = models.BooleanField(null=True, blank=True)
    has_parking = models.BooleanField(null=True, blank=True)
    has_accessible_toilet = models.BooleanField(null=True, blank=True)
    # A facility-specific date from which CeR registration binds it (NFZ decision); else the service's.
    obligatory_from = models.DateField(null=True, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["nfz_code"]
        verbose_name_plural = "facilities"

    def __str__(self) -> str:
        return f"{self.nfz_code} {self.name}"


class Contract(TimeStampedModel):
    facility = models.ForeignKey(Facility, on_delete=models.CASCADE, related_name="contracts")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="contracts")
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["facility", "service", "valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["facility", "service", "valid_from"], name="contract_unique_start"
            ),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=F("valid_from")), name="contract_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.facility_id}/{self.service_id} {self.valid_from}..{self.valid_to or ''}"
