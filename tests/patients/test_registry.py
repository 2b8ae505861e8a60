"""The patient registry: a person the desk identifies becomes a patient once, with the source kept."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.test import override_settings

from apps.core import pesel
from apps.core.errors import DomainError
from apps.patients import registry
from apps.patients.models import Patient
from tests.factories import FacilityFactory, PatientFactory

NEW_PESEL = pesel.generate(dt.date(1958, 3, 2), "M", 321)


def _identify(facility, **overrides):
    fields = {
        "pesel": NEW_PESEL,
        "first_name": "Jan",
        "last_name": "Wiśniewski",
        "phone": "+48 600-100-200",
        "email": "jan@example.org",
        "source": registry.Source.facility_api(facility, "phone"),
    }
    return registry.patient_identify(**{**fields, **overrides})


def test_a_new_person_is_created_with_sex_and_birth_date_from_the_pesel_and_the_facility_as_source(
    facility_a,
):
    patient = _identify(facility_a)

    patient.refresh_from_db()
    assert (patient.first_name, patient.last_name) == ("Jan", "Wiśniewski")
    assert patient.sex == "M" and patient.birth_date == dt.date(1958, 3, 2)
    assert patient.phone == "+48600100200" and patient.email == "jan@example.org"
    assert patient.source == Patient.Source.FACILITY
    assert patient.source_facility == facility_a and patient.source_channel == "phone"
    assert patient.created_at is not None


def test_a_known_patient_is_returned_unchanged_only_missing_contact_details_are_filled(facility_a):
    known = PatientFactory(pesel=NEW_PESEL, sex="M", first_name="Janusz", phone="", email="")

    patient = _identify(facility_b := FacilityFactory(), first_name="Jan", last_name="Inny")

    known.refresh_from_db()
    assert patient.pk == known.pk and Patient.objects.count() == 1
    assert (known.first_name, known.last_name) == ("Janusz", "Kowalska")
    assert known.phone == "+48600100200" and known.email == "jan@example.org"
    assert known.source == "" and known.source_facility is None  # who created it is not rewritten
    assert facility_b != facility_a


def test_contact_details_already_recorded_are_never_overwritten(facility_a):
    known = PatientFactory(pesel=NEW_PESEL, sex="M", phone="+48111222333", email="own@example.org")

    _identify(facility_a)

    known.refresh_from_db()
    assert (known.phone, known.email) == ("+48111222333", "own@example.org")


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"pesel": "12345678901"}, "invalid_pesel", "pesel"),
        ({"pesel": "1234"}, "invalid_pesel", "pesel"),
        ({"first_name": "  "}, "validation_error", "first_name"),
        ({"last_name": "x" * 101}, "validation_error", "last_name"),
        ({"first_name": "Jan\x00"}, "validation_error", "first_name"),
        ({"last_name": "Nowak\ud800"}, "validation_error", "last_name"),
        ({"phone": "call me"}, "validation_error", "phone"),
        ({"phone": "+48" + "1" * 30}, "validation_error", "phone"),
        ({"email": "not-an-address"}, "validation_error", "email"),
        ({"email": "a\x00@example.org"}, "validation_error", "email"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_created(facility_a, overrides, code, field):
    with pytest.raises(DomainError) as caught:
        _identify(facility_a, **overrides)

    assert (caught.value.code, caught.value.field) == (code, field)
    assert not Patient.objects.exists()


def test_find_knows_only_recorded_patients(db):
    known = PatientFactory()

    assert registry.patient_find(pesel=known.pesel) == known
    assert registry.patient_find(pesel=NEW_PESEL) is None


class _NationalStandIn:
    """Another backend, as a national one would be plugged in (it knows one person)."""

    def patient_find(self, *, pesel: str) -> Patient | None:
        return Patient.objects.filter(pesel=pesel, last_name="Z rejestru").first()

    def patient_identify(self, *, pesel, first_name, last_name, phone="", email="", source) -> Patient:
        info = registry.pesel_check(pesel)
        return Patient.objects.create(
            pesel=pesel,
            first_name=first_name,
            last_name="Z rejestru",
            birth_date=info.birth_date,
            sex=info.sex,
            source=Patient.Source.REGISTRY,
        )

    def relationships_of(self, *, representative: Patient) -> list:
        return []

    def representatives_of(self, *, patient: Patient) -> list:
        return []


class _NotARegistry:
    pass


def test_the_backend_is_the_one_the_setting_names(facility_a):
    with override_settings(CER_PATIENT_REGISTRY=f"{__name__}._NationalStandIn"):
        patient = _identify(facility_a)
    assert patient.last_name == "Z rejestru" and patient.source == Patient.Source.REGISTRY

    with override_settings(CER_PATIENT_REGISTRY=f"{__name__}._NotARegistry"), pytest.raises(TypeError):
        registry.patient_registry()


@pytest.mark.django_db(transaction=True)
def test_two_desks_identifying_the_same_new_person_at_once_make_one_patient():
    """GIVEN two facilities identifying the same unknown PESEL in concurrent transactions,
    WHEN both commit, THEN there is one patient and both got it."""
    facilities = [FacilityFactory(), FacilityFactory()]
    barrier = threading.Barrier(2)
    got: list[int] = []
    errors: list[BaseException] = []

    def desk(facility) -> None:
        try:
            barrier.wait(timeout=10)
            got.append(_identify(facility).pk)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=desk, args=(f,)) for f in facilities]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert Patient.objects.filter(pesel=NEW_PESEL).count() == 1
    assert got == [Patient.objects.get(pesel=NEW_PESEL).pk] * 2
