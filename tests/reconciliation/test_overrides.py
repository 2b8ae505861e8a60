"""Staff overrides: mandatory justification, the rules' verdict kept, an append-only trail that later
runs of the same period honour."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, ProgrammingError, connection, transaction

from apps.core.errors import DomainError
from apps.reconciliation.models import Override, Reason, Verdict
from apps.reconciliation.services import verdict_override
from tests.factories.reconciliation import ReportedVisitFactory
from tests.reconciliation.conftest import reconcile

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst():
    return User.objects.create_user("analyst", password="not-used-here-1")


@pytest.fixture
def ineligible_verdict(patient, cardiology, facility_a):
    visit = ReportedVisitFactory(patient=patient, service=cardiology, facility=facility_a)
    run = reconcile()
    return Verdict.objects.get(run=run, visit=visit)


@pytest.mark.parametrize("justification", ["", "   \n "])
def test_an_override_needs_a_justification(ineligible_verdict, analyst, justification):
    with pytest.raises(DomainError) as refused:
        verdict_override(
            verdict=ineligible_verdict, new_eligible=True, user=analyst, justification=justification
        )

    assert refused.value.code == "justification_required" and refused.value.field == "justification"
    ineligible_verdict.refresh_from_db()
    assert ineligible_verdict.final_eligible is False and not Override.objects.exists()


def test_the_database_refuses_an_override_without_justification(ineligible_verdict, analyst):
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        Override.objects.create(
            verdict=ineligible_verdict,
            verdict_period_start=ineligible_verdict.period_start,
            visit=ineligible_verdict.visit,
            visit_at=ineligible_verdict.visit.visit_at,
            original_eligible=False,
            original_reason="no_registration",
            new_eligible=True,
            user=analyst,
            justification=" ",
        )
    assert "override_justification_required" in str(refused.value)


def test_an_override_keeps_the_original_verdict_and_records_who_when_why(ineligible_verdict, analyst):
    override = verdict_override(
        verdict=ineligible_verdict,
        new_eligible=True,
        user=analyst,
        justification="  Registration lost during the CeR outage of 14 July (incident 7731).  ",
    )

    ineligible_verdict.refresh_from_db()
    assert (ineligible_verdict.eligible, ineligible_verdict.reason) == (False, Reason.NO_REGISTRATION)
    assert (ineligible_verdict.final_eligible, ineligible_verdict.override_id) == (True, override.pk)
    assert (override.original_eligible, override.original_reason, override.new_eligible) == (
        False,
        "no_registration",
        True,
    )
    assert override.user == analyst and override.at is not None
    assert override.justification == "Registration lost during the CeR outage of 14 July (incident 7731)."


def test_overriding_to_the_current_value_is_refused(ineligible_verdict, analyst):
    with pytest.raises(DomainError) as refused:
        verdict_override(verdict=ineligible_verdict, new_eligible=False, user=analyst, justification="why")

    assert refused.value.code == "override_unchanged"


def test_a_second_override_supersedes_and_both_stay_in_the_trail(ineligible_verdict, analyst):
    first = verdict_override(verdict=ineligible_verdict, new_eligible=True, user=analyst, justification="a")
    second = verdict_override(verdict=ineligible_verdict, new_eligible=False, user=analyst, justification="b")

    ineligible_verdict.refresh_from_db()
    assert ineligible_verdict.override_id == second.pk and ineligible_verdict.final_eligible is False
    assert list(ineligible_verdict.overrides.order_by("id")) == [first, second]
    assert second.original_reason == "no_registration"  # always the rules' verdict


def test_the_trail_cannot_be_rewritten(ineligible_verdict, analyst):
    override = verdict_override(
        verdict=ineligible_verdict, new_eligible=True, user=analyst, justification="a"
    )

    for statement in (
        "UPDATE reconciliation_override SET justification = 'x' WHERE id = %s",
        "DELETE FROM reconciliation_override WHERE id = %s",
    ):
        with (
            pytest.raises(ProgrammingError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [override.pk])
    assert Override.objects.get(pk=override.pk).justification == "a"


def test_a_later_run_of_the_period_applies_the_override(ineligible_verdict, analyst):
    override = verdict_override(
        verdict=ineligible_verdict, new_eligible=True, user=analyst, justification="a"
    )

    later = Verdict.objects.get(run=reconcile(), visit=ineligible_verdict.visit)

    assert later.run_id != ineligible_verdict.run_id
    assert (later.eligible, later.reason) == (False, Reason.NO_REGISTRATION)
    assert (later.final_eligible, later.override_id) == (True, override.pk)
