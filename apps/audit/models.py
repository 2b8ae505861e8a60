"""Append-only record of every read of a patient's personal data.

Rows are never updated or deleted: a database trigger refuses UPDATE and DELETE (migration 0002), so
not even a bug or an admin action in the application can rewrite the trail. (TRUNCATE needs table
ownership, which the production application role must not have; test teardown uses it.)
"""

from __future__ import annotations

from django.db import models


class AccessLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=16)  # api_client, staff, patient, system
    actor_id = models.CharField(max_length=64)
    facility = models.ForeignKey(
        "catalog.Facility", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=100)  # endpoint or page
    purpose = models.CharField(max_length=100, blank=True)

    class Meta:
        indexes = [models.Index(fields=["patient", "at"])]
