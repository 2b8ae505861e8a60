import datetime as dt

import pytest
from django.utils import timezone

from apps.catalog.models import ReasonCode
from tests.factories import ContractFactory, ReasonCodeFactory, ReferralFactory, ScheduleFactory, SlotFactory


@pytest.fixture(autouse=True)
def reason_codes(db):
    for code, kind in [
        ("DOCTOR_ILLNESS", ReasonCode.Kind.FACILITY_CANCEL),
        ("PATIENT_REQUEST", ReasonCode.Kind.PATIENT_CANCEL),
        ("NO_SHOW", ReasonCode.Kind.NO_SHOW),
        ("NO_SHOW_AUTO", ReasonCode.Kind.NO_SHOW),
        ("UNCONFIRMED_RELEASED", ReasonCode.Kind.RELEASE),
    ]:
        ReasonCodeFactory(code=code, kind=kind, name_pl=code, name_en=code)


@pytest.fixture
def schedule(db, cardiology, facility_a):
    ContractFactory(facility=facility_a, service=cardiology)
    return ScheduleFactory(facility=facility_a, service=cardiology)


@pytest.fixture
def make_slot(schedule):
    def make(**kwargs):
        kwargs.setdefault("schedule", schedule)
        return SlotFactory(**kwargs)

    return make


@pytest.fixture
def referral(patient, cardiology):
    return ReferralFactory(patient=patient, service=cardiology, access_code="4321")


def in_days(days: float, hour: int = 10) -> dt.datetime:
    base = timezone.localtime() + dt.timedelta(days=days)
    return base.replace(hour=hour, minute=0, second=0, microsecond=0)
