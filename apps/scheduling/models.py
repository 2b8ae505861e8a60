"""The national schedule: Schedule (facility x service x place x optional practitioner) -> Slot.

Slots store UTC instants; weekly templates are in Europe/Warsaw wall-clock time and generation
converts each occurrence separately, so DST days neither lose nor double a slot.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import ExpressionWrapper, F, Func, Q
from django.db.models.lookups import LessThanOrEqual

from apps.catalog.models import SLOT_MAX_MINUTES, Facility, Locality, Service, Voivodeship
from apps.core.models import TimeStampedModel


class Practitioner(TimeStampedModel):
    facility = models.ForeignKey(Facility, on_delete=models.CASCADE, related_name="practitioners")
    name = models.CharField(max_length=200)
    npwz = models.CharField("NPWZ (licence number)", max_length=10, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["facility", "name"], name="practitioner_unique_name")]

    def __str__(self) -> str:
        return self.name


class Schedule(TimeStampedModel):
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="schedules")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="schedules")
    practitioner = models.ForeignKey(Practitioner, null=True, blank=True, on_delete=models.PROTECT)
    place = models.CharField(max_length=200, blank=True, help_text="Room or branch within the facility")
    external_id = models.CharField(max_length=64, blank=True, help_text="The facility system's own id")
    active = models.BooleanField(default=True)
    generated_until = models.DateField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)  # ETag for optimistic concurrency

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["facility", "external_id"],
                condition=~Q(external_id=""),
                name="schedule_unique_external_id",
            ),
        ]

    def __str__(self) -> str:
        return f"schedule {self.pk} {self.facility_id}/{self.service_id}"


class WeeklyTemplate(models.Model):
    """Every `weekday` between `valid_from` and `valid_to`, slots of `slot_minutes` from start to end."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="templates")
    weekday = models.PositiveSmallIntegerField(help_text="0 = Monday ... 6 = Sunday")
    start_time = models.TimeField()
    end_time = models.TimeField()
    slot_minutes = models.PositiveSmallIntegerField()
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)
    kind = models.CharField(
        max_length=10, default="first", choices=[("first", "first"), ("follow_up", "follow-up")]
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="template_weekday"),
            models.CheckConstraint(
                condition=Q(end_time__gt=F("start_time")), name="template_end_after_start"
            ),
            models.CheckConstraint(condition=Q(slot_minutes__gte=5), name="template_slot_minutes"),
        ]


class ScheduleException(models.Model):
    """A day the schedule does not run (closure, leave); public holidays come from the catalogue."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="exceptions")
    date = models.DateField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["schedule", "date"], name="exception_once_per_day")]


class SlotSpan(Func):
    """`cer_slot_span(schedule_id, start, end)`: one int8range per slot, [schedule*10^10 + start epoch,
    schedule*10^10 + end epoch) in whole seconds (rounded down). Two spans overlap when the slots share a
    schedule and overlap in time by a second or more, so a plain GiST range exclusion enforces "no
    overlap within a schedule" without the btree_gist extension (which the embedded PostgreSQL does not
    ship). Defined in migration 0003 (int8range: its GiST builds ~3.5x faster than 0001's numrange).
    Since migration 0004 the constraint is declared per month partition (apps/scheduling/partitions.py)."""

    function = "cer_slot_span"
    output_field = models.JSONField()  # only used inside the exclusion constraint


class Slot(models.Model):
    """One bookable time of a schedule.

    The table is partitioned by month on `start` (scheduling migration 0004; all partition DDL in
    `apps/scheduling/partitions.py`): its real primary key is (id, start), and the overlap rule
    ("no two live slots of one schedule overlap", `slot_no_overlap`) is an exclusion constraint on
    every partition plus a trigger for the slots at a month boundary, which Django does not see.
    """

    class Status(models.TextChoices):
        FREE = "free", "wolny"
        HELD = "held", "wstrzymany"
        BOOKED = "booked", "zajęty"
        BLOCKED = "blocked", "zablokowany"
        CANCELLED = "cancelled", "odwołany"

    class Kind(models.TextChoices):
        FIRST = "first", "pierwszorazowa"
        FOLLOW_UP = "follow_up", "kontynuacja"

    id = models.BigAutoField(primary_key=True)
    # Foreign keys without an index of their own where another index leads with the column, or with a
    # partial one where most rows have none (`Meta.indexes`; tests/core/test_indexes.py): every index
    # is paid by each booking, whose status change is not a HOT update, and by the national load.
    schedule = models.ForeignKey(Schedule, on_delete=models.PROTECT, related_name="slots", db_index=False)
    # Denormalised from the schedule/facility so the hottest query (search) touches one table.
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="+", db_index=False)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    practitioner = models.ForeignKey(
        Practitioner, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    voivodeship = models.ForeignKey(Voivodeship, on_delete=models.PROTECT, related_name="+", db_index=False)
    # Not indexed: no read selects slots by locality (search goes through the facility), and a
    # locality (TERYT reference data) is never deleted while slots name it; PROTECT's check of such a
    # delete scans the table.
    locality = models.ForeignKey(Locality, on_delete=models.PROTECT, related_name="+", db_index=False)
    lat = models.FloatField()
    lon = models.FloatField()
    start = models.DateTimeField()
    end = models.DateTimeField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FIRST)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.FREE)
    hold_until = models.DateTimeField(null=True, blank=True)
    held_by = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    from_template = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="slot_end_after_start"),
            models.CheckConstraint(
                condition=~Q(status="held") | Q(hold_until__isnull=False), name="slot_held_has_deadline"
            ),
            # The catalogue's longest slot: the overlap rule across month partitions counts on it.
            # (A difference of instants, exact: `start + interval '1 day'` would be 23 or 25 hours on a
            # DST day in a session whose time zone is Warsaw.)
            models.CheckConstraint(
                condition=LessThanOrEqual(
                    ExpressionWrapper(F("end") - F("start"), output_field=models.DurationField()),
                    dt.timedelta(minutes=SLOT_MAX_MINUTES),
                ),
                name="slot_max_length",
            ),
            models.UniqueConstraint(fields=["schedule", "start"], name="slot_unique_start"),
            # No two live slots of one schedule overlap in time: `slot_no_overlap`, per partition
            # (partitions.overlap_rule_sql) and across month boundaries (partitions.OVERLAP_TRIGGER_SQL).
        ]
        indexes = [
            # Search: earliest free first-time slots of a service, optionally by voivodeship. Partial,
            # so the index holds only what can be booked (a few % of a national schedule).
            # `id` ends each key so "ORDER BY start, id LIMIT n" reads the index in order, with no sort.
            models.Index(
                fields=["service", "start", "id"],
                name="slot_free_by_service",
                condition=Q(status="free", kind="first"),
            ),
            models.Index(
                fields=["service", "voivodeship", "start", "id"],
                name="slot_free_by_voiv",
                condition=Q(status="free", kind="first"),
            ),
            # The patient search's places: each place's first free slot of the service (one probe per
            # place of the area). Without it the probe read the place's schedule of every service, free
            # or not, in date order until it met one (docs/performance.md a).
            models.Index(
                fields=["facility", "service", "start"],
                name="slot_free_by_facility",
                condition=Q(status="free", kind="first"),
            ),
            models.Index(fields=["facility", "start"], name="slot_by_facility"),
            models.Index(fields=["hold_until"], name="slot_held_expiry", condition=Q(status="held")),
            # The SMART bulk files, one per voivodeship (a plain B-tree: Django's own index of a
            # character key would add a second, varchar_pattern_ops one for LIKE, which nothing uses).
            models.Index(fields=["voivodeship"], name="slot_by_voivodeship"),
            # A patient's holds, and the foreign keys' checks: only the rows that have one.
            models.Index(fields=["held_by"], name="slot_held_by", condition=Q(held_by__isnull=False)),
            models.Index(
                fields=["practitioner"], name="slot_by_practitioner", condition=Q(practitioner__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"slot {self.pk} {self.start:%Y-%m-%d %H:%M} {self.status}"
