"""The FHIR world: two facilities in two voivodeships, each with a contracted service, a schedule,
free and booked slots; an independent validator (`fhir.resources`, R4B models) for every body."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class

from apps.booking import services as booking
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    LocalityFactory,
    PatientFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
    VoivodeshipFactory,
)


def fhir_valid(body: dict[str, Any]) -> Any:
    """Validate a FHIR body with the R4B models; returns the parsed model (raises when invalid)."""
    model = get_fhir_model_class(body["resourceType"])
    return model.model_validate(body)


def fhir_json(response) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/fhir+json"), response["Content-Type"]
    body = json.loads(response.content)
    fhir_valid(body)
    return body


@dataclass
class FhirWorld:
    service: Any
    other_service: Any
    facility: Any
    far_facility: Any
    schedule: Any
    far_schedule: Any
    free: list
    booked: Any
    appointment: Any
    patient: Any
    far_free: Any


@pytest.fixture
def fhir_world(db) -> FhirWorld:
    service = ServiceFactory(mammography=True)
    other = ServiceFactory()  # cardiology
    krakow = LocalityFactory(
        simc="0950463",
        name="Kraków",
        voivodeship=VoivodeshipFactory(teryt="12", name="małopolskie", name_en="Lesser Poland"),
        lat=50.06,
        lon=19.94,
    )
    facility = FacilityFactory(phone="+48 22 123 45 67")
    far = FacilityFactory(locality=krakow, phone="")
    for f in (facility, far):
        ContractFactory(facility=f, service=service)
    ContractFactory(facility=facility, service=other)
    schedule = ScheduleFactory(facility=facility, service=service, place="Pracownia 2")
    far_schedule = ScheduleFactory(facility=far, service=other)
    ContractFactory(facility=far, service=other)
    base = (timezone.now() + dt.timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)
    free = [
        SlotFactory(
            schedule=schedule,
            start=base + dt.timedelta(minutes=20 * i),
            end=base + dt.timedelta(minutes=20 * i + 20),
        )
        for i in range(5)
    ]
    to_book = SlotFactory(
        schedule=schedule, start=base - dt.timedelta(hours=1), end=base - dt.timedelta(minutes=40)
    )
    far_free = SlotFactory(schedule=far_schedule, start=base, end=base + dt.timedelta(minutes=20))
    patient = PatientFactory()
    appointment = booking.appointment_book(slot_id=to_book.pk, patient=patient, channel="desk")
    to_book.refresh_from_db()
    return FhirWorld(
        service, other, facility, far, schedule, far_schedule, free, to_book, appointment, patient, far_free
    )
