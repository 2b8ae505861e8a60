"""Registrations (a patient's claim on a service: waiting or booked) and appointments.

A `Registration` is what CeR allows once per patient and service in the whole country: it is either
waiting in the central queue (Poczekalnia) or holds exactly one live appointment. PostgreSQL enforces
both halves with partial unique indexes, so no race between two facilities, two browser tabs or two
API retries can ever produce a second one.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from apps.catalog.models import Entitlement, Facility, Locality, ReasonCode, Service, Voivodeship
from apps.core.models import TimeStampedModel
from apps.patients.models import Patient, Referral
from apps.scheduling.models import Practitioner, Slot

LIVE_REGISTRATION = ("waiting", "booked")
LIVE_APPOINTMENT = ("booked", "confirmed")


class Category(models.TextChoices):
    URGENT = "urgent", "pilny"
    STABLE = "stable", "stabilny"


class Registration(TimeStampedModel):
    class Status(models.TextChoices):
        WAITING = "waiting", "w Poczekalni"
        BOOKED = "booked", "umówiona"
        CLOSED = "closed", "zamknięta"

    id = models.BigAutoField(primary_key=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="registrations")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices)
    # The optional foreign keys below are indexed only where set (partial indexes in `Meta.indexes`): a
    # booking's registration has none of them, and a plain index would take its NULLs on every booking.
    # Not `referral`'s: dropping a column's own index with AlterField drops every single-column index
    # of that column, `one_live_registration_per_referral` included (tests/core/test_indexes.py).
    referral = models.ForeignKey(Referral, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Queue order (DESIGN.md: entitlement, then medical category, then time of registration).
    # `joined_at` is kept when a facility cancels, so the patient keeps their place.
    entitlement = models.ForeignKey(
        Entitlement, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    priority = models.PositiveSmallIntegerField(default=0)
    urgent = models.BooleanField(default=False, help_text="Medical category from the referral: pilny")
    joined_at = models.DateTimeField()
    # Preferences (all optional): the waiting list only offers slots that match them.
    date_from = models.DateField(null=True, blank=True)
    date_to = models.DateField(null=True, blank=True)
    voivodeship = models.ForeignKey(
        Voivodeship, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    locality = models.ForeignKey(
        Locality, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    max_distance_km = models.PositiveIntegerField(null=True, blank=True)
    facility = models.ForeignKey(
        Facility, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    practitioner = models.ForeignKey(
        Practitioner, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    declined_slot_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(max_length=32, blank=True)
    # The facility that put the entry on the waiting list (its system, through the integration API),
    # or None when the patient joined on the patient pages: what that facility may read, change and
    # remove over the API (`FacilityScope.waitlist_entries`). Once read from the join's outbox event;
    # the outbox keeps events for months only (apps/outbox/partitions.py), an entry may wait longer.
    registered_by = models.ForeignKey(
        Facility, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "service"],
                condition=Q(status__in=LIVE_REGISTRATION),
                name="one_live_registration_per_patient_service",
            ),
            # P1: an e-referral holds one registration at a time.
            models.UniqueConstraint(
                fields=["referral"],
                condition=Q(status__in=LIVE_REGISTRATION),
                name="one_live_registration_per_referral",
            ),
        ]
        indexes = [
            # The queue: waiting entries of a service in service order.
            models.Index(
                "service",
                models.F("priority").desc(),
                models.F("urgent").desc(),
                "joined_at",
                "id",
                name="waitlist_order",
                condition=Q(status="waiting"),
            ),
            *(
                models.Index(
                    fields=[name], name=f"registration_by_{name}", condition=Q(**{f"{name}__isnull": False})
                )
                for name in (
                    "entitlement",
                    "voivodeship",
                    "locality",
                    "facility",
                    "practitioner",
                    "registered_by",
                )
            ),
        ]

    def __str__(self) -> str:
        return f"registration {self.pk} {self.status}"

    @property
    def category(self) -> str:
        return Category.URGENT if self.urgent else Category.STABLE


class Appointment(TimeStampedModel):
    class Status(models.TextChoices):
        BOOKED = "booked", "zarezerwowana"
        CONFIRMED = "confirmed", "potwierdzona"
        ATTENDED = "attended", "odbyta"
        NO_SHOW = "no_show", "pacjent nie zgłosił się"
        CANCELLED_BY_PATIENT = "cancelled_by_patient", "odwołana przez pacjenta"
        CANCELLED_BY_FACILITY = "cancelled_by_facility", "odwołana przez placówkę"
        RELEASED = "released", "zwolniona (niepotwierdzona)"
        RESCHEDULED = "rescheduled", "przeniesiona"

    class Channel(models.TextChoices):
        WEB = "web", "internet"
        DESK = "desk", "rejestracja"
        PHONE = "phone", "telefon"
        EMAIL = "email", "e-mail"
        WAITLIST = "waitlist", "Poczekalnia"

    id = models.BigAutoField(primary_key=True)
    registration = models.ForeignKey(Registration, on_delete=models.PROTECT, related_name="appointments")
    # The database's foreign key is (slot_id, start) -> the slot table's (id, start), declared in
    # apps/scheduling/partitions.py (a partitioned table's key holds its partition key); `start` is
    # always the slot's. PROTECT still holds in Django, and the database refuses the delete too.
    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="appointments", db_constraint=False)
    # Denormalised from slot and registration for reconciliation and facility reads.
    # No index of their own: `appointment_patient_service` and `appointment_facility_start` lead with them.
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="appointments", db_index=False
    )
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    facility = models.ForeignKey(
        Facility, on_delete=models.PROTECT, related_name="appointments", db_index=False
    )
    start = models.DateTimeField()
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.BOOKED)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    confirm_by = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    reason = models.ForeignKey(ReasonCode, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # The booking this one was moved to: not checked by the database (a key from the month-partitioned
    # table into itself; apps/booking/partitions.py says why), written by the one path that moves a
    # booking.
    rescheduled_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    # Why this patient got this slot (waiting-list allocations): entitlement, category, time, match.
    allocation = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        # One live appointment per registration, and per patient and service: `LiveAppointment`'s
        # unique rules (they must hold across the month partitions). Per slot, here: `start` is the
        # slot's (the foreign key on (slot_id, start)), so (slot, start) is the slot.
        constraints = [
            models.UniqueConstraint(
                fields=["slot", "start"],
                condition=Q(status__in=LIVE_APPOINTMENT),
                name="one_live_appointment_per_slot",
            ),
        ]
        indexes = [
            models.Index(fields=["facility", "start"], name="appointment_facility_start"),
            models.Index(fields=["patient", "service", "start"], name="appointment_patient_service"),
            models.Index(fields=["confirm_by"], name="appointment_confirm_by", condition=Q(status="booked")),
            # The no-show rule's sweep: live bookings by start, per service.
            models.Index(
                fields=["service", "start"],
                name="appointment_live_start",
                condition=Q(status__in=LIVE_APPOINTMENT),
            ),
        ]

    def __str__(self) -> str:
        return f"appointment {self.pk} {self.status}"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_APPOINTMENT


class LiveAppointment(models.Model):
    """The key of a live (booked or confirmed) appointment: what must be unique among live appointments
    across every month partition of `booking_appointment`, which a partitioned table cannot declare
    (apps/booking/partitions.py). Written only by the database: a trigger on the appointments adds the
    key when an appointment becomes live and deletes it when it ends, so a second live appointment of
    a registration, or of a patient for a service, is refused (`unique_violation` on the rule's name)
    on every path, whatever wrote it."""

    appointment_id = models.BigIntegerField(primary_key=True)
    start = models.DateTimeField()  # the appointment's, for the foreign key (id, start)
    registration_id = models.BigIntegerField()
    patient_id = models.BigIntegerField()
    service_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["registration_id"], name="one_live_appointment_per_registration"),
            models.UniqueConstraint(
                fields=["patient_id", "service_id"], name="one_live_appointment_per_patient_service"
            ),
        ]

    def __str__(self) -> str:
        return f"live appointment {self.appointment_id}"


class ReferralTransition(models.Model):
    """One step of an e-referral's life (append-only): registered, freed, realised; with the
    registration that held it and why."""

    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="transitions")
    registration = models.ForeignKey(
        Registration, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    from_status = models.CharField(max_length=10)
    to_status = models.CharField(max_length=10)
    reason = models.CharField(max_length=40)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["referral", "at"])]

    def __str__(self) -> str:
        return f"{self.referral_id}: {self.from_status} -> {self.to_status} ({self.reason})"


class FreedSlot(models.Model):
    """A slot that went back to the pool and waits to be offered to the waiting list (issue 19).

    Written in the transaction that frees the slot, so it commits or rolls back with it; drained in
    batches by `services.waitlist_drain`, which claims rows with FOR UPDATE SKIP LOCKED and deletes
    them in the transaction that allocates the slots: a worker that dies in between loses nothing.
    Only the id is kept: the drain reads the slot's state when it allocates it.
    """

    slot_id = models.BigIntegerField(primary_key=True)
    freed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["freed_at", "slot_id"], name="booking_freedslot_order")]

    def __str__(self) -> str:
        return f"slot {self.slot_id} freed at {self.freed_at:%Y-%m-%d %H:%M:%S}"
