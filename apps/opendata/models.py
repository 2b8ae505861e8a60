"""Open data: waiting-time statistics per queue (NFZ "Terminy Leczenia" shape) and research extracts.

`QueueStat` rows are recomputed by a beat job (`tasks.queues_compute_task`) from the schedule and the
registrations; the public `queues` resource only reads them. `ResearchExtract` keeps each
de-identified extract in the database (CSV and Parquet), so any web instance can serve the staff
download (DESIGN.md section 6: no state in local files).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class QueueStat(models.Model):
    class Case(models.IntegerChoices):
        STABLE = 1, "stabilny"
        URGENT = 2, "pilny"

    id = models.BigAutoField(primary_key=True)
    facility = models.ForeignKey("catalog.Facility", on_delete=models.CASCADE, related_name="+")
    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="+")
    case = models.PositiveSmallIntegerField(choices=Case.choices)
    first_free_date = models.DateField(null=True, blank=True)
    awaiting = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    average_period_days = models.PositiveIntegerField(null=True, blank=True)
    stats_month = models.CharField(max_length=7)  # YYYY-MM the statistics describe
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["facility", "service", "case"], name="queue_stat_once"),
            models.CheckConstraint(condition=Q(case__in=[1, 2]), name="queue_stat_case"),
        ]
        indexes = [models.Index(fields=["case", "service"], name="queue_stat_case_service")]


class ResearchExtract(models.Model):
    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    period_from = models.DateField()
    period_to = models.DateField()
    k = models.PositiveSmallIntegerField()
    rows = models.PositiveIntegerField()
    suppressed = models.PositiveIntegerField()
    csv = models.BinaryField()
    parquet = models.BinaryField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(k__gte=2), name="extract_k_at_least_2"),
            models.CheckConstraint(
                condition=Q(period_to__gte=models.F("period_from")), name="extract_period"
            ),
        ]
