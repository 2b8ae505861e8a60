"""Shared fixtures. Tests run on real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, see Makefile).

Fixed personas for permissions (STYLE.md rule 8): a patient, facility A's system, facility B's
system, NFZ staff. Apps add persona fixtures for their own interfaces in their test folders.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.factories import FacilityFactory, PatientFactory, ServiceFactory


@pytest.fixture(autouse=True)
def _clean_cache():
    """Redis is shared by the whole run: each test starts with an empty cache namespace."""
    cache.clear()
    yield


@pytest.fixture
def cardiology(db):
    return ServiceFactory()


@pytest.fixture
def mammography(db):
    return ServiceFactory(mammography=True)


@pytest.fixture
def patient(db):
    return PatientFactory()


@pytest.fixture
def facility_a(db):
    return FacilityFactory(name="Facility A")


@pytest.fixture
def facility_b(db):
    return FacilityFactory(name="Facility B")
