import pytest
from django.contrib.auth import get_user_model

from apps.catalog.models import Service
from tests.factories import AppointmentFactory, FacilityFactory, ServiceFactory
from tests.factories.staff import otp_verified

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("nfz-admin", "a@example.org", "not-used-in-prod-123")
    return otp_verified(client, user)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/catalog/service/",
        "/admin/catalog/facility/",
        "/admin/catalog/entitlement/",
        "/admin/catalog/contract/",
        "/admin/catalog/holiday/",
        "/admin/catalog/reasoncode/",
        "/admin/scheduling/slot/",
        "/admin/booking/appointment/",
        "/admin/booking/registration/",
    ],
)
def test_reference_and_booking_lists_render(admin_client, url):
    FacilityFactory()
    AppointmentFactory()
    assert admin_client.get(url).status_code == 200


def test_editing_a_service_rule_in_the_admin_bumps_its_rule_version(admin_client):
    service = ServiceFactory()
    page = admin_client.get(f"/admin/catalog/service/{service.pk}/change/")
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update(
        confirm_deadline_hours=24,
        no_show_after_hours=48,
        reminder_offsets_days="7,1",
        cer_from="2026-01-01",
        obligatory_from="2026-07-01",
    )
    response = admin_client.post(f"/admin/catalog/service/{service.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    service.refresh_from_db()
    assert (service.confirm_deadline_hours, service.no_show_after_hours) == (24, 48)
    assert service.rule_version == 2


def test_anonymous_users_cannot_reach_the_admin(client):
    response = client.get("/admin/catalog/service/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert Service.objects.count() == 0
