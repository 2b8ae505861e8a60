from __future__ import annotations

import datetime as dt
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
    ServiceFactory(code="KARDIO_PED_1")
    EntitlementFactory()  # ZHDK
    out = io.StringIO()
    demo.demo_seed(out=out)
    demo.demo_seed(out=io.StringIO())
    patients = Patient.objects.filter(last_name__startswith="Demo-")
    assert patients.count() == 8  # four personas and a family of four
    assert all(pesel.is_valid(p.pesel) for p in patients)
    assert Referral.objects.filter(patient__last_name="Demo-Kardiologia").count() == 1
    assert PatientEntitlement.objects.filter(patient__last_name="Demo-ZHDK").count() == 1
    assert "/dev/outbox/" in out.getvalue()
    from apps.core.demo import credentials_read

    remembered = "\n".join(credentials_read().values())  # seed_demo prints these at the end
    assert all(p.pesel in remembered for p in patients)
    assert Referral.objects.get(patient__last_name="Demo-Kardiologia").access_code in remembered


@pytest.mark.django_db
def test_the_demo_family_shows_acting_for_two_children_and_an_authorising_mother():
    from apps.patients.models import Relationship
    from apps.patients.services import can_act_for, dependants

    ServiceFactory(code="KARDIO_PED_1")
    demo.demo_seed(out=io.StringIO())
    demo.demo_seed(out=io.StringIO())
    family = {p.first_name: p for p in Patient.objects.filter(last_name="Demo-Rodzina")}
    assert set(family) == {"Anna", "Jan", "Ola", "Halina"}
    assert Relationship.objects.count() == 3
    mother = family["Anna"]
    assert {d.patient.first_name for d in dependants(actor=mother)} == {"Jan", "Ola", "Halina"}
    # Ola comes of age 20 days after the first run: then her mother may no longer book for her.
    from django.utils import timezone

    later = timezone.localdate() + demo.DAUGHTER_COMES_OF_AGE_IN
    assert can_act_for(actor=mother, patient=family["Ola"], at=later - dt.timedelta(days=1))
    assert not can_act_for(actor=mother, patient=family["Ola"], at=later)
    assert can_act_for(actor=mother, patient=family["Jan"], at=later)
    assert Referral.objects.filter(patient=family["Jan"], service__code="KARDIO_PED_1").count() == 1
    from apps.core.demo import credentials_read

    assert mother.pesel in credentials_read()["patient:family"]
