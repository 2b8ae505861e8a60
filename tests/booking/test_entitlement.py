"""The out-of-turn entitlement a registration gets: valid on the day, strongest first (catalogue data)."""

from __future__ import annotations

import datetime as dt

from apps.booking.sql import entitlement_for
from tests.factories import EntitlementFactory, PatientEntitlementFactory, PatientFactory

DAY = dt.date(2026, 6, 1)


def test_a_patient_without_entitlements_has_none(db):
    assert entitlement_for(patient=PatientFactory(), on=DAY) is None


def test_only_entitlements_valid_on_the_day_count(db):
    patient = PatientFactory()
    strong = EntitlementFactory(code="INW_WOJ", priority=30)
    PatientEntitlementFactory(patient=patient, entitlement=strong, valid_from=DAY + dt.timedelta(days=1))
    ended = DAY - dt.timedelta(days=1)
    PatientEntitlementFactory(
        patient=patient, entitlement=strong, valid_from=dt.date(2020, 1, 1), valid_to=ended
    )
    assert entitlement_for(patient=patient, on=DAY) is None

    PatientEntitlementFactory(
        patient=patient, entitlement=strong, valid_from=dt.date(2025, 1, 1), valid_to=DAY
    )

    assert entitlement_for(patient=patient, on=DAY) == strong


def test_the_strongest_entitlement_wins_and_equal_ones_go_by_code(db):
    patient, other = PatientFactory(), PatientFactory()
    PatientEntitlementFactory(patient=patient, entitlement=EntitlementFactory(code="ZHDK", priority=10))
    PatientEntitlementFactory(patient=patient, entitlement=EntitlementFactory(code="KOMB", priority=20))
    PatientEntitlementFactory(patient=patient, entitlement=EntitlementFactory(code="CIEZ", priority=20))
    PatientEntitlementFactory(patient=other, entitlement=EntitlementFactory(code="INW_WOJ", priority=30))

    assert entitlement_for(patient=patient, on=DAY).code == "CIEZ"
