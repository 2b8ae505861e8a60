"""Whom the signed-in person is booking for (issue 18): themselves, a child, or an adult who authorised them.

The choice lives in the session (a patient id, never a PESEL) and every patient page re-checks it
against the patient registry with `apps.patients.services.acting_check` on each request, so a child
who turned 18 or an authorisation that expired since the choice was made is refused at the next
click. A write form also carries the id it was shown for (`acting_for`): a form from a tab showing
"booking for Jan" acts for Jan even if another tab chose someone else since, and the session follows
the last form sent. Each request made for another person is written to the access log: who acted,
for whom, on which page, through which relationship.

The booking services never learn who clicked: they get the person acted for as the patient, so every
booking rule (age, sex, screening interval, e-referral) is judged on that person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.services import access_record
from apps.core.errors import DomainError
from apps.patients import registry
from apps.patients.models import Patient, Relationship
from apps.patients.services import Dependant, acting_check, dependants

SESSION_ACTING_FOR = "portal_acting_for"
FIELD = "acting_for"  # the hidden field of write forms, and the choice form's radio group


@dataclass
class Acting:
    actor: Patient  # who is signed in
    patient: Patient  # for whom they act (the actor themselves by default)
    relationship: Relationship | None  # None: for themselves
    options: list[Dependant] = field(default_factory=list)  # whom else they may act for today

    @property
    def other(self) -> bool:
        return self.patient.pk != self.actor.pk

    @property
    def shown(self) -> bool:
        """The "booking for" line is shown to anyone who may act for someone (and whenever they do)."""
        return self.other or bool(self.options)

    @property
    def label(self) -> str:
        return person_label(self.patient, self.relationship)


def person_label(patient: Patient, relationship: Relationship | None) -> str:
    """ "Jan Kowalski (syn)" / "Jan Kowalski (son)"; "Anna Kowalska (Ty)" for oneself."""
    name = f"{patient.first_name} {patient.last_name}"
    if relationship is None:
        return _("%(name)s (you)") % {"name": name}
    return f"{name} ({relation_word(patient, relationship)})"


def relation_word(patient: Patient, relationship: Relationship) -> str:
    female = patient.sex == Patient.Sex.FEMALE
    if relationship.kind == Relationship.Kind.PARENT:
        return _("daughter") if female else _("son")
    if relationship.kind == Relationship.Kind.LEGAL_GUARDIAN:
        return _("under your guardianship")
    return _("you are authorised")


def _session_choice(request: HttpRequest) -> int | None:
    value = request.session.get(SESSION_ACTING_FOR)
    return value if isinstance(value, int) else None


def _posted_choice(request: HttpRequest) -> int | None:
    """The id a write form was shown for; a value that is not an id is refused like a stranger's."""
    if request.method != "POST" or FIELD not in request.POST:
        return None
    try:
        return int(request.POST[FIELD])
    except ValueError:
        return 0  # never a patient id: refused as acting_not_allowed


def resolve(
    request: HttpRequest,
    actor: Patient,
    *,
    patient_id: int | None = None,
    from_form: bool = True,
    now: dt.datetime | None = None,
) -> Acting:
    """Whom this request acts for: `patient_id` if given (the owner of the appointment or waiting-list
    entry the URL names), else the id the form posted (`from_form`), else the session's choice, else
    the actor. Raises `DomainError` (acting_*) when the registry does not allow it; nothing is stored
    then."""
    now = now or timezone.now()
    relationships = registry.relationships_of(representative=actor)
    options = dependants(actor=actor, at=now, relationships=relationships)
    explicit = patient_id if patient_id is not None else (_posted_choice(request) if from_form else None)
    wanted = explicit if explicit is not None else _session_choice(request)
    if wanted is None or wanted == actor.pk:
        acting = Acting(actor=actor, patient=actor, relationship=None, options=options)
    else:
        try:
            relationship = acting_check(actor=actor, patient=wanted, at=now, relationships=relationships)
        except DomainError:
            if explicit is None or explicit == _session_choice(request):
                request.session.pop(SESSION_ACTING_FOR, None)  # the stored choice no longer holds
            raise
        assert relationship is not None
        acting = Acting(actor=actor, patient=relationship.patient, relationship=relationship, options=options)
    if explicit is not None:
        choose(request, acting)
    return acting


def choose(request: HttpRequest, acting: Acting) -> None:
    if acting.other:
        request.session[SESSION_ACTING_FOR] = acting.patient.pk
    else:
        request.session.pop(SESSION_ACTING_FOR, None)


def current(request: HttpRequest) -> Acting | None:
    """The choice as the page shows it (no form, no URL owner): cached on the request. None when no
    patient is signed in; a choice that no longer holds shows as the actor themselves."""
    cached = getattr(request, "cer_acting", None)
    if cached is not None:
        return cached
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    from .selectors import patient_for_user

    actor = patient_for_user(user_id=user.pk)
    if actor is None:
        return None
    try:
        acting = resolve(request, actor, from_form=False)
    except DomainError:
        acting = resolve(request, actor, patient_id=actor.pk)
    request.cer_acting = acting  # type: ignore[attr-defined]
    return acting


def audit(request: HttpRequest, acting: Acting, *, action: str) -> None:
    """Who acted for whom (the access log is append-only): one row per request made for another."""
    if not acting.other or acting.relationship is None:
        return
    access_record(
        actor_type="patient",
        actor_id=f"patient:{acting.actor.pk}",
        patient_ids=[acting.patient.pk],
        action=action[:100],
        purpose=f"acting for: {acting.relationship.kind} (relationship {acting.relationship.pk})",
    )
