"""Personas of the integration API: facility A's system, facility B's system (STYLE.md rule 8)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.booking import services as booking
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    PatientFactory,
    ReasonCodeFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)
from tests.factories.integration import access_token_create, api_client_create


class Api:
    """A test client speaking JSON with a bearer token."""

    def __init__(self, token: str | None = None) -> None:
        self.client = APIClient()
        self.token = token

    def call(self, method: str, url: str, body: Any = None, **headers: str):
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        if self.token:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {self.token}"
        data = None if body is None else (body if isinstance(body, (str, bytes)) else json.dumps(body))
        return getattr(self.client, method.lower())(url, data=data, content_type="application/json", **extra)

    def get(self, url: str, **headers: str):
        return self.call("GET", url, **headers)

    def post(self, url: str, body: Any = None, **headers: str):
        return self.call("POST", url, {} if body is None else body, **headers)


@dataclass
class World:
    """Facility A's data: a mammography schedule with free slots, one booking, one past booking."""

    facility: Any
    service: Any
    schedule: Any
    free_slots: list
    booking: Any
    past_booking: Any
    patient: Any


def _world(facility) -> World:
    service = ServiceFactory(mammography=True)
    ContractFactory(facility=facility, service=service)
    schedule = ScheduleFactory(facility=facility, service=service)
    slots = [SlotFactory(schedule=schedule) for _ in range(4)]
    past_slot = SlotFactory(
        schedule=schedule,
        start=timezone.now() - dt.timedelta(hours=3),
        end=timezone.now() - dt.timedelta(hours=3) + dt.timedelta(minutes=20),
    )
    ReasonCodeFactory()
    patient = PatientFactory()
    other = PatientFactory()
    appointment = booking.appointment_book(slot_id=slots[0].pk, patient=patient, channel="desk")
    past = booking.appointment_book(
        slot_id=past_slot.pk, patient=other, channel="phone", now=past_slot.start - dt.timedelta(days=2)
    )
    return World(facility, service, schedule, slots[1:], appointment, past, patient)


@pytest.fixture
def world_a(facility_a) -> World:
    return _world(facility_a)


@pytest.fixture
def issued_a(facility_a):
    return api_client_create(facility=facility_a, name="HIS A")


@pytest.fixture
def issued_b(facility_b):
    return api_client_create(facility=facility_b, name="HIS B")


@pytest.fixture
def api_a(issued_a) -> Api:
    return Api(access_token_create(issued_a))


@pytest.fixture
def api_b(issued_b) -> Api:
    return Api(access_token_create(issued_b))


@pytest.fixture
def anonymous() -> Api:
    return Api()


__all__ = ["Api", "FacilityFactory", "World"]
