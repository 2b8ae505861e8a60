"""Acting for another person: who may book, cancel and wait on someone else's behalf, and on which day.

The relationships come from the patient registry (`registry.relationships_of`), never from what the
person who acts types in. The rules, judged on a given day (Europe/Warsaw) by `acting_check`, which
every path that acts for another person calls (`can_act_for` is its yes/no form):

- a parent or legal guardian acts for a child until the child's 18th birthday, counted from the birth
  date the child's PESEL encodes (Civil Code art. 10: full age at 18; parental authority ends then,
  Family and Guardianship Code art. 92), while the registry's record is valid;
- an authorised person acts for the adult who authorised them while the authorisation is valid
  (`valid_from` to `valid_to`, both inclusive). A child is represented by a parent, not by an
  authorisation;
- the one who acts is an adult (a minor parent has no parental authority: Family and Guardianship
  Code art. 94 par. 1);
- anyone acts for themselves.

A refusal is a `DomainError`: `acting_not_allowed` says nothing about the person (an id posted for
someone with no relationship is refused exactly like an unknown one), `acting_child_adult` and
`acting_authorisation_expired` explain a relationship that existed and has ended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import timezone

from apps.core.errors import DomainError

from . import registry
from .models import Patient, Relationship

ADULT_AGE = 18
FOR_CHILDREN = (Relationship.Kind.PARENT, Relationship.Kind.LEGAL_GUARDIAN)


def age_on(*, birth_date: dt.date, day: dt.date) -> int:
    """Full years on `day` (the birthday counts: this is legal age, not the screening programmes'
    age by year of birth)."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def adult_on(patient: Patient, day: dt.date) -> bool:
    return age_on(birth_date=patient.birth_date, day=day) >= ADULT_AGE


def eighteenth_birthday(patient: Patient) -> dt.date:
    born = patient.birth_date
    try:
        return born.replace(year=born.year + ADULT_AGE)
    except ValueError:  # born on 29 February: of age on 1 March of a common year
        return dt.date(born.year + ADULT_AGE, 3, 1)


def _day(at: dt.datetime | dt.date | None) -> dt.date:
    if at is None:
        return timezone.localdate()
    if isinstance(at, dt.datetime):
        return timezone.localdate(at)
    return at


def _valid_on(relationship: Relationship, day: dt.date) -> bool:
    return relationship.valid_from <= day and (relationship.valid_to is None or day <= relationship.valid_to)


def _refusal(relationship: Relationship, actor: Patient, day: dt.date) -> DomainError | None:
    """Why this relationship does not let `actor` act for its patient on `day` (None: it does)."""
    if not adult_on(actor, day) or not _valid_on(relationship, day):
        ended = relationship.valid_to is not None and relationship.valid_to < day
        if relationship.kind == Relationship.Kind.AUTHORISATION and ended:
            return DomainError("acting_authorisation_expired", date=relationship.valid_to)
        return DomainError("acting_not_allowed")
    if relationship.kind in FOR_CHILDREN:
        if adult_on(relationship.patient, day):
            return DomainError("acting_child_adult", date=eighteenth_birthday(relationship.patient))
        return None
    if not adult_on(relationship.patient, day):
        return DomainError("acting_not_allowed")  # an authorisation is an adult's
    return None


def acting_check(
    *,
    actor: Patient,
    patient: Patient | int,
    at: dt.datetime | dt.date | None = None,
    relationships: Iterable[Relationship] | None = None,
) -> Relationship | None:
    """May `actor` act for `patient` on the day of `at`? Returns the relationship that allows it (None
    when they act for themselves); raises `DomainError` when they may not. `relationships`: the actor's
    relationships already read from the registry on this request (else they are read now)."""
    patient_id = patient if isinstance(patient, int) else patient.pk
    if patient_id == actor.pk:
        return None
    day = _day(at)
    if relationships is None:
        relationships = registry.relationships_of(representative=actor)
    candidates = [r for r in relationships if r.patient_id == patient_id]
    if not candidates:
        raise DomainError("acting_not_allowed")
    refusals = []
    # A parent's or guardian's right first: it needs no authorisation to be in force.
    for relationship in sorted(candidates, key=lambda r: (r.kind not in FOR_CHILDREN, r.valid_from, r.pk)):
        refusal = _refusal(relationship, actor, day)
        if refusal is None:
            return relationship
        refusals.append(refusal)
    # The most telling reason: the child came of age, or the authorisation ended, before "not allowed".
    refusals.sort(key=lambda e: e.code == "acting_not_allowed")
    raise refusals[0]


def can_act_for(*, actor: Patient, patient: Patient | int, at: dt.datetime | dt.date | None = None) -> bool:
    try:
        acting_check(actor=actor, patient=patient, at=at)
    except DomainError:
        return False
    return True


@dataclass(frozen=True)
class Dependant:
    """A person `actor` may act for on the day asked, and through which relationship."""

    patient: Patient
    relationship: Relationship
    # The last day the right holds, when it is known to end: the day before the 18th birthday, or the
    # authorisation's last day.
    until: dt.date | None


def dependants(
    *,
    actor: Patient,
    at: dt.datetime | dt.date | None = None,
    relationships: Iterable[Relationship] | None = None,
) -> list[Dependant]:
    """Everyone `actor` may act for on the day of `at` (never themselves), in a stable order."""
    day = _day(at)
    if relationships is None:
        relationships = registry.relationships_of(representative=actor)
    found: dict[int, Dependant] = {}
    for relationship in relationships:
        if relationship.patient_id in found or _refusal(relationship, actor, day) is not None:
            continue
        ends = [relationship.valid_to] if relationship.valid_to else []
        if relationship.kind in FOR_CHILDREN:
            ends.append(eighteenth_birthday(relationship.patient) - dt.timedelta(days=1))
        found[relationship.patient_id] = Dependant(
            patient=relationship.patient, relationship=relationship, until=min(ends) if ends else None
        )
    return sorted(found.values(), key=lambda d: (d.patient.birth_date, d.patient.pk))


def guardians_for_notices(*, patient: Patient, at: dt.datetime | dt.date | None = None) -> list[Patient]:
    """Whose contact details a child's messages go to: the parents and legal guardians who may act for
    the child on that day (empty for an adult, or a child the registry names no one for)."""
    day = _day(at)
    if adult_on(patient, day):
        return []  # no registry read for the great majority of messages
    guardians = []
    for relationship in registry.representatives_of(patient=patient):
        if relationship.kind not in FOR_CHILDREN:
            continue
        relationship.patient = patient
        allowed = _refusal(relationship, relationship.representative, day) is None
        if allowed and relationship.representative not in guardians:
            guardians.append(relationship.representative)
    return guardians
