"""Sign-in state of the patient pages (demo/development one-time codes)."""

from __future__ import annotations

from django.db import models


class LoginCode(models.Model):
    """A one-time sign-in code (demo/development sign-in). Only its keyed hash is stored."""

    id = models.BigAutoField(primary_key=True)
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="+")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["patient", "created_at"], name="logincode_recent")]
