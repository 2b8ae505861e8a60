"""Codings of our services in other code systems (NFZ benefit codes where they exist), kept as data.

Every service is always coded in CeR's own published code system (`/fhir/CodeSystem/service-type`);
these rows add the codings a FHIR client may know better, edited by NFZ staff in the admin.
"""

from __future__ import annotations

from django.db import models


class ServiceCoding(models.Model):
    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="+")
    system = models.URLField(max_length=200, help_text="The code system's canonical URI")
    code = models.CharField(max_length=64)
    display = models.CharField(max_length=200, blank=True)
    source = models.TextField(blank=True, help_text="Where this mapping comes from")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["service", "system", "code"], name="service_coding_once"),
        ]

    def __str__(self) -> str:
        return f"{self.system}|{self.code}"
