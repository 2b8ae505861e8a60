"""Issue 17: in development an integrator can make a visit that has already started, to try the
outcome report; the command is refused wherever demo data is off (production)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.factories import ContractFactory, PatientFactory, ScheduleFactory, ServiceFactory


@pytest.fixture
def desk(facility_a):
    service = ServiceFactory(mammography=True)
    ContractFactory(facility=facility_a, service=service)
    ScheduleFactory(facility=facility_a, service=service)
    return facility_a, service, PatientFactory()


def _make(facility, service, patient) -> int:
    out = io.StringIO()
    call_command(
        "demo_past_visit",
        facility=facility.nfz_code,
        service=service.code,
        pesel=patient.pesel,
        stdout=out,
    )
    return int(out.getvalue().split()[1].rstrip(":"))


def test_a_past_visit_can_be_given_its_outcome(api_a, desk):
    booking_id = _make(*desk)

    response = api_a.post(f"/api/v1/bookings/{booking_id}/outcome", {"outcome": "attended"})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "attended"


@override_settings(CER_DEMO_DATA=False)
def test_it_is_refused_without_demo_data(desk):
    with pytest.raises(CommandError, match="CER_DEMO_DATA"):
        _make(*desk)
