from __future__ import annotations

import io

import pytest

from apps.core import pesel
from apps.patients.models import Patient, PatientEntitlement, Referral
from apps.portal import demo
from tests.factories import EntitlementFactory, ServiceFactory


@pytest.fixture(autouse=True)
def _credentials_elsewhere(tmp_path, monkeypatch):
    import apps.core.demo as core_demo

    monkeypatch.setattr(core_demo, "CREDENTIALS_FILE", tmp_path / "demo-credentials.txt")


@pytest.mark.django_db
def test_demo_seed_creates_the_personas_once_and_says_how_to_sign_in():
    ServiceFactory()  # KARDIO_1
    EntitlementFactory()  # ZHDK
    out = io.StringIO()
    demo.demo_seed(out=out)
    demo.demo_seed(out=io.StringIO())
    patients = Patient.objects.filter(last_name__startswith="Demo-")
    assert patients.count() == 4
    assert all(pesel.is_valid(p.pesel) for p in patients)
    assert Referral.objects.filter(patient__last_name="Demo-Kardiologia").count() == 1
    assert PatientEntitlement.objects.filter(patient__last_name="Demo-ZHDK").count() == 1
    assert "/dev/outbox/" in out.getvalue()
    from apps.core.demo import credentials_read

    remembered = "\n".join(credentials_read().values())  # seed_demo prints these at the end
    assert all(p.pesel in remembered for p in patients)
    assert Referral.objects.get(patient__last_name="Demo-Kardiologia").access_code in remembered
