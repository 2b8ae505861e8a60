"""The patient registry's hand-written SQL (apps/patients/sql.py) against its plain-ORM twin (issue 19)."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.patients import sql
from apps.patients.models import Relationship
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_whom_a_person_may_act_for_is_what_the_orm_reads():
    parent, other = PatientFactory(), PatientFactory()
    children = [PatientFactory(birth_date=dt.date(2015, 1, 1) + dt.timedelta(days=n)) for n in range(3)]
    for n, (child, kind) in enumerate(zip(children, Relationship.Kind.values, strict=True)):
        Relationship.objects.create(
            representative=parent, patient=child, kind=kind, valid_from=dt.date(2020, 1, 3 - n)
        )
    Relationship.objects.create(
        representative=parent, patient=other, kind="authorisation", valid_from=dt.date(2020, 1, 1)
    )  # the same day as a child's: then by id
    Relationship.objects.create(
        representative=other, patient=children[0], kind="parent", valid_from=dt.date(2021, 1, 1)
    )
    for representative in (parent, other, children[1]):
        orm = list(Relationship.objects.filter(representative=representative).select_related("patient"))
        found = sql.relationships_of(representative_id=representative.pk)
        assert [(_fields(r), _fields(r.patient)) for r in found] == [
            (_fields(r), _fields(r.patient)) for r in orm
        ]
    assert len(sql.relationships_of(representative_id=parent.pk)) == 4
