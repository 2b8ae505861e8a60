"""The staff pages are for NFZ staff only: not anonymous visitors, patients or facility API clients."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from tests.factories import PatientFactory
from tests.factories.staff import otp_verified

pytestmark = pytest.mark.django_db

PAGES = [
    ("staff:runs", {}),
    ("staff:trends", {}),
    ("staff:compliance", {}),
    ("staff:imports", {}),
    ("staff:run", {"run_id": 1}),
    ("staff:facility_visits", {"run_id": 1, "facility_id": 1}),
    ("staff:verdict", {"verdict_id": 1}),
    ("staff:import", {"batch_id": 1}),
]


def test_the_migration_creates_the_staff_group_with_its_permissions():
    # The test database may have been flushed by a transaction=True test: run the migration's step.
    migration = importlib.import_module("apps.staff.migrations.0001_nfz_staff_group")
    Group.objects.filter(name="nfz_staff").delete()

    migration.forward(django_apps, None)
    migration.forward(django_apps, None)  # idempotent

    group = Group.objects.get(name="nfz_staff")
    assert group.permissions.count() == 5
    assert set(group.permissions.values_list("codename", flat=True)) == {
        "review_reconciliation",
        "start_reconciliation",
        "override_verdict",
        "import_visits",
        "export_verdicts",
    }


@pytest.mark.parametrize(("name", "kwargs"), PAGES)
def test_an_anonymous_visitor_is_sent_to_the_staff_login(client, name, kwargs):
    response = client.get(reverse(name, kwargs=kwargs))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("staff:login"))


@pytest.mark.parametrize(("name", "kwargs"), PAGES)
def test_a_logged_in_patient_is_refused(client, name, kwargs):
    user = User.objects.create_user("patient-user", password="not-used-here-1")
    PatientFactory(user=user)
    client.force_login(user)

    assert client.get(reverse(name, kwargs=kwargs)).status_code == 403


def test_a_patient_cannot_start_a_run_or_upload(client):
    user = User.objects.create_user("patient-user", password="not-used-here-1")
    client.force_login(user)

    assert client.post(reverse("staff:run_start"), {"month": "2026-07"}).status_code == 403
    assert client.post(reverse("staff:imports"), {}).status_code == 403


def test_a_facility_api_client_token_opens_nothing(client, facility_a):
    from oauth2_provider.models import get_access_token_model, get_application_model

    application = get_application_model().objects.create(
        name=f"HIS {facility_a.nfz_code}",
        client_type="confidential",
        authorization_grant_type="client-credentials",
    )
    token = get_access_token_model().objects.create(
        application=application,
        token="facility-a-token-abcdef",
        expires=timezone.now() + dt.timedelta(hours=1),
        scope="visits:write bookings:read",
    )

    response = client.get(reverse("staff:runs"), HTTP_AUTHORIZATION=f"Bearer {token.token}")

    assert response.status_code == 302 and response["Location"].startswith(reverse("staff:login"))


def test_staff_in_the_group_get_in(staff_client):
    response = staff_client.get(reverse("staff:runs"))

    assert response.status_code == 200
    assert "Przebiegi rozliczeń" in response.content.decode()


def test_a_reviewer_without_override_permission_cannot_override(client, reconciled_month):
    from django.contrib.auth.models import Permission

    reviewer = User.objects.create_user("reviewer", password="not-used-here-1")
    reviewer.user_permissions.add(Permission.objects.get(codename="review_reconciliation"))
    otp_verified(client, reviewer)
    verdict = reconciled_month["run"].verdicts.first()
    url = reverse("staff:verdict", kwargs={"verdict_id": verdict.pk})

    page = client.get(url)
    refused = client.post(url, {"new_eligible": "yes", "justification": "x"})
    export = client.get(
        reverse(
            "staff:facility_visits", kwargs={"run_id": verdict.run_id, "facility_id": verdict.facility_id}
        ),
        {"export": "csv"},
    )

    assert page.status_code == 200 and "Zmień werdykt" not in page.content.decode()
    assert refused.status_code == 403 and not verdict.overrides.exists()
    assert export.status_code == 403


def test_the_staff_login_page_logs_staff_in(client, staff_user):
    staff_user.set_password("correct horse battery staple")
    staff_user.save()

    response = client.post(
        reverse("staff:login"), {"username": "analyst", "password": "correct horse battery staple"}
    )

    # The password leads to the second factor's set-up (this user has no authenticator yet).
    assert response.status_code == 302 and response["Location"] == reverse("staff:otp_setup")
    assert client.get(reverse("staff:runs"))["Location"].startswith(reverse("staff:otp"))
