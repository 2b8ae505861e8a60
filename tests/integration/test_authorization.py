"""The authorisation matrix for every endpoint: own facility, other facility, no credentials,
expired, revoked, wrong scope."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken

from apps.booking.services import waitlist_join
from apps.integration.models import ApiClient, WebhookDelivery, WebhookSubscription
from apps.integration.services import api_client_revoke, webhook_subscription_create
from apps.outbox.models import OutboxEvent
from apps.reconciliation.models import ReportedVisit
from apps.scheduling.models import Schedule
from tests.factories.integration import access_token_create, api_client_create

from .conftest import Api, World


@dataclass(frozen=True)
class Endpoint:
    method: str
    url: Callable[[World, dict], str]
    scope: str  # "" = any valid credentials
    body: Callable[[World, dict], Any] | None = None
    per_object: bool = True  # the URL names an object of facility A


def _tomorrow() -> str:
    return (timezone.localdate() + dt.timedelta(days=1)).isoformat()


def _future(hours: int) -> str:
    return (timezone.now() + dt.timedelta(days=30, hours=hours)).replace(microsecond=0).isoformat()


ENDPOINTS = {
    "services": Endpoint("GET", lambda w, x: "/api/v1/services", "", per_object=False),
    "reason-codes": Endpoint("GET", lambda w, x: "/api/v1/reason-codes", "", per_object=False),
    "entitlements": Endpoint("GET", lambda w, x: "/api/v1/entitlements", "", per_object=False),
    "changes": Endpoint("GET", lambda w, x: "/api/v1/changes", "changes:read", per_object=False),
    "schedules-list": Endpoint("GET", lambda w, x: "/api/v1/schedules", "schedules:read", per_object=False),
    "schedules-create": Endpoint(
        "POST",
        lambda w, x: "/api/v1/schedules",
        "schedules:write",
        lambda w, x: {"service": w.service.code, "place": "room 2"},
        per_object=False,
    ),
    "schedule": Endpoint("GET", lambda w, x: f"/api/v1/schedules/{w.schedule.pk}", "schedules:read"),
    "schedule-update": Endpoint(
        "PATCH",
        lambda w, x: f"/api/v1/schedules/{w.schedule.pk}",
        "schedules:write",
        lambda w, x: {"place": "B"},
    ),
    "schedule-templates": Endpoint(
        "PUT",
        lambda w, x: f"/api/v1/schedules/{w.schedule.pk}/templates",
        "schedules:write",
        lambda w, x: {"templates": [], "generate_until": _tomorrow()},
    ),
    "schedule-slots": Endpoint(
        "POST",
        lambda w, x: f"/api/v1/schedules/{w.schedule.pk}/slots",
        "schedules:write",
        lambda w, x: {"slots": [{"start": _future(0), "end": _future(1)}]},
    ),
    "schedule-close-day": Endpoint(
        "POST",
        lambda w, x: f"/api/v1/schedules/{w.schedule.pk}/close-day",
        "schedules:write",
        lambda w, x: {
            "day": (timezone.localdate() + dt.timedelta(days=60)).isoformat(),
            "reason_code": "DOCTOR_ILLNESS",
        },
    ),
    "schedule-cancel-session": Endpoint(
        "POST",
        lambda w, x: f"/api/v1/schedules/{w.schedule.pk}/cancel-session",
        "bookings:write",
        lambda w, x: {
            "day": (timezone.localdate() + dt.timedelta(days=60)).isoformat(),
            "reason_code": "DOCTOR_ILLNESS",
        },
    ),
    "slots": Endpoint("GET", lambda w, x: "/api/v1/slots", "schedules:read", per_object=False),
    "slot-block": Endpoint(
        "POST", lambda w, x: f"/api/v1/slots/{w.free_slots[0].pk}/block", "schedules:write", lambda w, x: {}
    ),
    "slot-unblock": Endpoint(
        "POST", lambda w, x: f"/api/v1/slots/{w.free_slots[0].pk}/unblock", "schedules:write", lambda w, x: {}
    ),
    "bookings": Endpoint("GET", lambda w, x: "/api/v1/bookings", "bookings:read", per_object=False),
    "bookings-create": Endpoint(
        "POST",
        lambda w, x: "/api/v1/bookings",
        "bookings:write",
        lambda w, x: {"slot_id": w.free_slots[0].pk, "pesel": x["pesel"], "channel": "desk"},
    ),
    "booking": Endpoint("GET", lambda w, x: f"/api/v1/bookings/{w.booking.pk}", "bookings:read"),
    "booking-cancel": Endpoint(
        "POST",
        lambda w, x: f"/api/v1/bookings/{w.booking.pk}/cancel",
        "bookings:write",
        lambda w, x: {"reason_code": "DOCTOR_ILLNESS"},
    ),
    "booking-reschedule": Endpoint(
        "POST",
        lambda w, x: f"/api/v1/bookings/{w.booking.pk}/reschedule",
        "bookings:write",
        lambda w, x: {"slot_id": w.free_slots[1].pk},
    ),
    "booking-confirm": Endpoint(
        "POST", lambda w, x: f"/api/v1/bookings/{w.booking.pk}/confirm", "bookings:write", lambda w, x: {}
    ),
    "booking-outcome": Endpoint(
        "POST",
        lambda w, x: f"/api/v1/bookings/{w.past_booking.pk}/outcome",
        "outcomes:write",
        lambda w, x: {"outcome": "attended"},
    ),
    "visits": Endpoint("GET", lambda w, x: "/api/v1/visits", "visits:write", per_object=False),
    "visits-report": Endpoint(
        "POST",
        lambda w, x: "/api/v1/visits",
        "visits:write",
        lambda w, x: {
            "visits": [
                {
                    "visit_id": "HIS-1",
                    "pesel": x["pesel"],
                    "service_code": w.service.code,
                    "visit_at": "2026-07-14T09:00:00+02:00",
                }
            ]
        },
        per_object=False,
    ),
    "waitlist-join": Endpoint(
        "POST",
        lambda w, x: "/api/v1/waitlist",
        "waitlist:write",
        lambda w, x: {"pesel": x["pesel"], "service": w.service.code},
        per_object=False,
    ),
    "waitlist-entry": Endpoint("GET", lambda w, x: f"/api/v1/waitlist/{x['waitlist']}", "waitlist:read"),
    "waitlist-leave": Endpoint(
        "POST", lambda w, x: f"/api/v1/waitlist/{x['waitlist']}/leave", "waitlist:write", lambda w, x: {}
    ),
    "webhooks": Endpoint("GET", lambda w, x: "/api/v1/webhooks", "webhooks:manage", per_object=False),
    "webhooks-create": Endpoint(
        "POST",
        lambda w, x: "/api/v1/webhooks",
        "webhooks:manage",
        lambda w, x: {"url": "https://his.example.org/hook"},
        per_object=False,
    ),
    "webhook": Endpoint("DELETE", lambda w, x: f"/api/v1/webhooks/{x['webhook']}", "webhooks:manage"),
    "webhook-deliveries": Endpoint(
        "GET", lambda w, x: f"/api/v1/webhooks/{x['webhook']}/deliveries", "webhooks:manage"
    ),
    "webhook-test": Endpoint(
        "POST", lambda w, x: f"/api/v1/webhooks/{x['webhook']}/test", "webhooks:manage", lambda w, x: {}
    ),
    "webhook-redeliver": Endpoint(
        "POST",
        lambda w, x: f"/api/v1/webhook-deliveries/{x['delivery']}/redeliver",
        "webhooks:manage",
        lambda w, x: {},
    ),
}


@pytest.fixture
def extras(world_a, issued_a) -> dict[str, Any]:
    from tests.factories import PatientFactory

    created = webhook_subscription_create(
        facility=world_a.facility, client=issued_a.client, url="https://his.example.org/x", event_types=[]
    )
    event = OutboxEvent.objects.filter(facility=world_a.facility).first()
    delivery = WebhookDelivery.objects.create(
        subscription=created.subscription, event=event, event_created_at=event.created_at, status="failed"
    )
    entry = waitlist_join(patient=PatientFactory(), service=world_a.service, registered_by=world_a.facility)
    return {
        "webhook": created.subscription.pk,
        "delivery": delivery.pk,
        "pesel": PatientFactory().pesel,
        "waitlist": entry.pk,
    }


def _call(api: Api, endpoint: Endpoint, world: World, extras: dict, **headers: str):
    body = endpoint.body(world, extras) if endpoint.body else None
    if endpoint.method == "GET":
        return api.get(endpoint.url(world, extras), **headers)
    if endpoint.method in ("PATCH", "PUT"):
        headers.setdefault("If-Match", f'"{world.schedule.version}"')
    return api.call(endpoint.method, endpoint.url(world, extras), body, **headers)


def _is_problem(response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == status


CASES = sorted(ENDPOINTS)


@pytest.mark.parametrize("name", CASES)
def test_own_facility_is_allowed(name, world_a, extras, api_a):
    response = _call(api_a, ENDPOINTS[name], world_a, extras)

    assert response.status_code in (200, 201, 202, 204), (name, response.content[:400])


@pytest.mark.parametrize("name", CASES)
def test_another_facility_sees_nothing_of_facility_a(name, world_a, extras, api_b):
    endpoint = ENDPOINTS[name]
    before = OutboxEvent.objects.count()

    response = _call(api_b, endpoint, world_a, extras)

    if endpoint.per_object:
        _is_problem(response, 404)
        assert OutboxEvent.objects.count() == before
    elif endpoint.method == "GET":
        assert response.status_code == 200
        body = response.json()
        rows = body["results"] if isinstance(body, dict) else body
        if name in FACILITY_LISTS:
            assert rows == [], name
        assert world_a.patient.pesel not in response.content.decode()
    else:  # a create: whatever happens, it never lands in facility A
        assert Schedule.objects.filter(facility=world_a.facility).count() == 1
        assert not ReportedVisit.objects.filter(facility=world_a.facility).exists()
        assert WebhookSubscription.objects.filter(facility=world_a.facility).count() == 1


FACILITY_LISTS = {"changes", "schedules-list", "slots", "bookings", "visits", "webhooks"}


@pytest.mark.parametrize("name", CASES)
def test_no_credentials_is_401(name, world_a, extras, anonymous):
    response = _call(anonymous, ENDPOINTS[name], world_a, extras)

    _is_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("name", CASES)
def test_an_unknown_token_is_401(name, world_a, extras):
    _is_problem(_call(Api("not-a-token"), ENDPOINTS[name], world_a, extras), 401)


@pytest.mark.parametrize("name", CASES)
def test_expired_credentials_are_401(name, world_a, extras, api_a, issued_a):
    ApiClient.objects.filter(pk=issued_a.client.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )

    _is_problem(_call(api_a, ENDPOINTS[name], world_a, extras), 401)


@pytest.mark.parametrize("name", CASES)
def test_an_expired_token_is_401(name, world_a, extras, api_a):
    AccessToken.objects.update(expires=timezone.now() - dt.timedelta(seconds=1))

    _is_problem(_call(api_a, ENDPOINTS[name], world_a, extras), 401)


@pytest.mark.parametrize("name", CASES)
def test_revoked_credentials_are_401(name, world_a, extras, issued_a):
    token = access_token_create(issued_a)
    api_client_revoke(client_id=issued_a.client_id)

    _is_problem(_call(Api(token), ENDPOINTS[name], world_a, extras), 401)


@pytest.mark.parametrize("name", [n for n in CASES if ENDPOINTS[n].scope])
def test_a_token_without_the_operation_scope_is_403(name, world_a, extras):
    endpoint = ENDPOINTS[name]
    others = [s for s in ("schedules:read", "bookings:read", "visits:write") if s != endpoint.scope]
    issued = api_client_create(facility=world_a.facility, scopes=others)
    before = OutboxEvent.objects.count()

    response = _call(Api(access_token_create(issued)), endpoint, world_a, extras)

    _is_problem(response, 403)
    assert endpoint.scope in response.json()["detail"]
    assert OutboxEvent.objects.count() == before
