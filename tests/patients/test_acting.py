"""Who may act for whom (issue 18): the registry's relationships judged on a day by
`apps.patients.services.acting_check` / `can_act_for`, and the local copy kept by `relationship_record`."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings

from apps.core.errors import DomainError
from apps.patients import registry
from apps.patients.models import Patient, Relationship
from apps.patients.services import (
    acting_check,
    age_on,
    can_act_for,
    dependants,
    eighteenth_birthday,
    guardians_for_notices,
)
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db
DAY = dt.date(2027, 3, 5)


def _record(representative, patient, kind=Relationship.Kind.PARENT, **kwargs):
    kwargs.setdefault("valid_from", patient.birth_date)
    return registry.relationship_record(representative=representative, patient=patient, kind=kind, **kwargs)


@pytest.fixture
def parent():
    return PatientFactory(birth_date=dt.date(1985, 1, 1), sex="F")


@pytest.fixture
def child():
    # 18 on 6 March 2027: a child on DAY (5 March), of age the next day.
    return PatientFactory(birth_date=dt.date(2009, 3, 6), sex="M", phone="", email="")


def test_anyone_acts_for_themselves(parent):
    assert acting_check(actor=parent, patient=parent, at=DAY) is None
    assert can_act_for(actor=parent, patient=parent.pk, at=DAY)


def test_a_parent_acts_for_a_child_until_the_day_before_the_18th_birthday(parent, child):
    relationship = _record(parent, child)
    assert acting_check(actor=parent, patient=child, at=DAY) == relationship
    assert can_act_for(actor=parent, patient=child.pk, at=DAY)
    with pytest.raises(DomainError) as refused:
        acting_check(actor=parent, patient=child, at=DAY + dt.timedelta(days=1))
    assert refused.value.code == "acting_child_adult" and refused.value.status == 403
    assert refused.value.message_in("pl").startswith("Ta osoba jest pełnoletnia od 6 marca 2027")
    assert "since 6 March 2027" in refused.value.message_in("en")


def test_age_is_legal_age_by_birthday_not_by_year_of_birth():
    assert age_on(birth_date=dt.date(2009, 12, 31), day=dt.date(2027, 1, 1)) == 17
    assert age_on(birth_date=dt.date(2009, 1, 1), day=dt.date(2027, 1, 1)) == 18
    leap = PatientFactory.build(birth_date=dt.date(2008, 2, 29))
    assert eighteenth_birthday(leap) == dt.date(2026, 3, 1)


def test_a_legal_guardian_is_judged_like_a_parent(parent, child):
    _record(parent, child, Relationship.Kind.LEGAL_GUARDIAN)
    assert can_act_for(actor=parent, patient=child, at=DAY)
    assert not can_act_for(actor=parent, patient=child, at=DAY + dt.timedelta(days=1))


def test_a_relationship_the_registry_ended_no_longer_counts(parent, child):
    _record(parent, child, Relationship.Kind.LEGAL_GUARDIAN, valid_to=DAY - dt.timedelta(days=1))
    with pytest.raises(DomainError) as refused:
        acting_check(actor=parent, patient=child, at=DAY)
    assert refused.value.code == "acting_not_allowed"


def test_an_authorisation_holds_from_its_first_to_its_last_day(parent):
    mother = PatientFactory(birth_date=dt.date(1950, 6, 1))
    _record(
        parent,
        mother,
        Relationship.Kind.AUTHORISATION,
        valid_from=DAY,
        valid_to=DAY + dt.timedelta(days=30),
    )
    assert not can_act_for(actor=parent, patient=mother, at=DAY - dt.timedelta(days=1))
    assert can_act_for(actor=parent, patient=mother, at=DAY)
    assert can_act_for(actor=parent, patient=mother, at=DAY + dt.timedelta(days=30))
    with pytest.raises(DomainError) as refused:
        acting_check(actor=parent, patient=mother, at=DAY + dt.timedelta(days=31))
    assert refused.value.code == "acting_authorisation_expired"
    assert "wygasło 4 kwietnia 2027" in refused.value.message_in("pl")


def test_an_authorisation_does_not_make_anyone_a_childs_representative(parent, child):
    _record(parent, child, Relationship.Kind.AUTHORISATION, valid_from=dt.date(2020, 1, 1))
    assert not can_act_for(actor=parent, patient=child, at=DAY)


def test_nobody_acts_for_a_stranger_nor_a_child_for_its_parent(parent, child):
    _record(parent, child)
    stranger = PatientFactory()
    for actor, patient in ((parent, stranger), (child, parent), (stranger, child)):
        with pytest.raises(DomainError) as refused:
            acting_check(actor=actor, patient=patient, at=DAY)
        assert refused.value.code == "acting_not_allowed"
    assert not can_act_for(actor=parent, patient=999_999_999, at=DAY)  # an id nobody has


def test_a_minor_parent_does_not_act_for_their_child():
    young = PatientFactory(birth_date=dt.date(2010, 1, 1))
    baby = PatientFactory(birth_date=dt.date(2026, 9, 1))
    _record(young, baby)
    assert not can_act_for(actor=young, patient=baby, at=DAY)
    assert can_act_for(actor=young, patient=baby, at=dt.date(2028, 1, 1))


def test_dependants_are_whom_one_may_act_for_today_with_when_it_ends(parent, child):
    _record(parent, child)
    younger = PatientFactory(birth_date=dt.date(2018, 7, 1), sex="F")
    _record(parent, younger)
    adult_son = PatientFactory(birth_date=dt.date(2005, 1, 1))
    _record(parent, adult_son)  # of age: not listed
    mother = PatientFactory(birth_date=dt.date(1950, 6, 1))
    _record(
        parent,
        mother,
        Relationship.Kind.AUTHORISATION,
        valid_from=dt.date(2025, 1, 1),
        valid_to=dt.date(2027, 12, 31),
    )
    found = dependants(actor=parent, at=DAY)
    assert [d.patient for d in found] == [mother, child, younger]
    assert [d.until for d in found] == [dt.date(2027, 12, 31), dt.date(2027, 3, 5), dt.date(2036, 6, 30)]
    assert dependants(actor=child, at=DAY) == []


def test_relationships_come_through_the_configured_registry_backend(parent, child):
    """A national backend answers relationships itself: CeR's pages judge what it says."""
    assert not can_act_for(actor=parent, patient=child, at=DAY)
    _StandIn.rows = [Relationship(pk=1, representative=parent, patient=child, kind="parent", valid_from=DAY)]
    with override_settings(CER_PATIENT_REGISTRY=f"{__name__}._StandIn"):
        assert can_act_for(actor=parent, patient=child, at=DAY)
        assert guardians_for_notices(patient=child, at=DAY) == [parent]
    assert not can_act_for(actor=parent, patient=child, at=DAY)


class _StandIn(registry.LocalRegistry):
    rows: list[Relationship] = []

    def relationships_of(self, *, representative: Patient) -> list[Relationship]:
        return [r for r in self.rows if r.representative_id == representative.pk]

    def representatives_of(self, *, patient: Patient) -> list[Relationship]:
        return [r for r in self.rows if r.patient_id == patient.pk]


def test_recording_is_idempotent_and_a_reference_refreshes_the_copy(parent):
    mother = PatientFactory(birth_date=dt.date(1950, 6, 1))
    first = _record(parent, mother, Relationship.Kind.AUTHORISATION, valid_from=DAY, reference="ikp-77")
    again = _record(
        parent, mother, Relationship.Kind.AUTHORISATION, valid_from=DAY, valid_to=DAY, reference="ikp-77"
    )
    assert again.pk == first.pk and Relationship.objects.count() == 1
    assert Relationship.objects.get().valid_to == DAY and again.source == Patient.Source.REGISTRY
    child = PatientFactory(birth_date=dt.date(2015, 1, 1))
    assert _record(parent, child).pk == _record(parent, child).pk


def test_bad_relationships_are_refused_by_the_database_too(parent):
    with pytest.raises(DomainError):
        _record(parent, parent)
    with pytest.raises(DomainError):
        _record(parent, PatientFactory(), valid_from=DAY, valid_to=DAY - dt.timedelta(days=1))
    for fields in (
        {"patient": parent, "valid_from": DAY},
        {"patient": PatientFactory(), "valid_from": DAY, "valid_to": DAY - dt.timedelta(days=1)},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            Relationship.objects.create(representative=parent, kind="parent", **fields)


def test_a_childs_messages_go_to_its_parents_while_it_is_a_child(parent, child):
    _record(parent, child)
    father = PatientFactory(birth_date=dt.date(1983, 1, 1), sex="M")
    _record(father, child, Relationship.Kind.LEGAL_GUARDIAN)
    mother_of_parent = PatientFactory(birth_date=dt.date(1950, 1, 1))
    _record(mother_of_parent, parent, Relationship.Kind.AUTHORISATION, valid_from=dt.date(2020, 1, 1))
    assert guardians_for_notices(patient=child, at=DAY) == [parent, father]
    assert guardians_for_notices(patient=child, at=DAY + dt.timedelta(days=1)) == []
    assert guardians_for_notices(patient=parent, at=DAY) == []  # an adult's stay their own
