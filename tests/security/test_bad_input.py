"""Bounded input (issue 15): every hostile value found by fuzzing answers 4xx problem+json, never a 500,
and changes nothing. Each case below made main answer 500 (or an HTML page) before."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.utils import timezone

from apps.integration.models import IdempotencyRecord
from apps.scheduling.models import Slot
from tests.factories import PatientFactory

DEEP = "[" * 100_000 + "]" * 100_000
EVIL_VALUES: list[Any] = [
    "\ud800",
    "a\x00b",
    "2026-09-01T08:00:00+23:00",
    "2026-09-01T08:00:00-16:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01",
    "9999-12-31",
    2**70,
    -(2**70),
    1e308,
    [[[[[[[[[[]]]]]]]]]],
    {"x": {"y": {"z": {}}}},
    "x" * 70_000,
    "",
    None,
    True,
]


def _write_operations(world) -> list[tuple[str, str, dict[str, Any]]]:
    """Each write operation with a body that would pass (dates ahead of today)."""
    day = (timezone.localdate() + dt.timedelta(days=10)).isoformat()
    slot = world.free_slots[0]
    booking = world.booking
    schedule = world.schedule
    return [
        ("POST", "/api/v1/schedules", {"service": world.service.code, "place": "A", "external_id": "x"}),
        (
            "PUT",
            f"/api/v1/schedules/{schedule.pk}/templates",
            {
                "templates": [{"weekday": 0, "start_time": "08:00", "end_time": "12:00", "valid_from": day}],
                "generate_until": day,
            },
        ),
        (
            "POST",
            f"/api/v1/schedules/{schedule.pk}/slots",
            {"slots": [{"start": f"{day}T08:00:00+01:00", "end": f"{day}T08:20:00+01:00"}]},
        ),
        ("POST", f"/api/v1/schedules/{schedule.pk}/close-day", {"day": day, "reason_code": "x"}),
        ("POST", f"/api/v1/slots/{slot.pk}/block", {"reason": "r"}),
        (
            "POST",
            "/api/v1/bookings",
            {"slot_id": slot.pk, "pesel": PatientFactory().pesel, "channel": "desk"},
        ),
        ("POST", f"/api/v1/bookings/{booking.pk}/cancel", {"reason_code": "x"}),
        ("POST", f"/api/v1/bookings/{booking.pk}/reschedule", {"slot_id": slot.pk}),
        ("POST", f"/api/v1/bookings/{booking.pk}/outcome", {"outcome": "attended"}),
        ("POST", "/api/v1/visits", {"visits": [{"visit_id": "v1", "visit_at": "2026-01-01T08:00:00+01:00"}]}),
        ("POST", "/api/v1/webhooks", {"url": "https://example.org/hook", "event_types": []}),
    ]


def _mutations(body: dict[str, Any]):
    for field in body:
        for value in EVIL_VALUES:
            yield field, {**body, field: value}
        inner = body[field]
        if isinstance(inner, list) and inner and isinstance(inner[0], dict):
            for sub in inner[0]:
                for value in EVIL_VALUES:
                    yield f"{field}.{sub}", {**body, field: [{**inner[0], sub: value}]}


def _assert_problem(response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.content[:300]!r}"
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json", what


def test_no_hostile_value_in_any_write_field_makes_a_500(world_a, api_a):
    slots_before = Slot.objects.count()
    for method, url, body in _write_operations(world_a):
        for field, mutated in _mutations(body):
            response = api_a.call(method, url, mutated)
            _assert_problem(response, f"{method} {url} {field}")
    assert Slot.objects.filter(start__year__in=[1, 9999]).count() == 0
    assert Slot.objects.count() >= slots_before


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        '{"a":' * 5000 + "1" + "}" * 5000,
        json.dumps({"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}),
        '{"channel": "\\ud800"}',
        '{"\\u0000": 1}',
        '{"slot_id": 1e999}',
        '{"slot_id": NaN}',
        "\xff\xfe",
    ],
)
def test_hostile_json_documents_are_refused_with_400(world_a, api_a, body):
    for method, url, _ in _write_operations(world_a):
        response = api_a.call(method, url, body, **{"Idempotency-Key": "k-" + str(abs(hash(body)))[:20]})
        _assert_problem(response, f"{method} {url}")
        assert response.status_code in (400, 413, 404, 409, 422), (url, response.status_code)


def test_deep_nesting_and_nul_are_refused_as_malformed(world_a, api_a):
    for body in (DEEP, '{"\\u0000": 1}', '{"channel": "\\ud800"}', '{"a":' * 100 + "1" + "}" * 100):
        response = api_a.post("/api/v1/bookings", body, **{"Idempotency-Key": "nul-" + str(len(body))})
        assert response.status_code == 400
        assert response.json()["code"] == "malformed_request"


def test_an_oversized_body_is_refused_with_413_before_parsing(world_a, api_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = api_a.post("/api/v1/bookings", {"slot_id": 1, "pad": "x" * 20_000})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_a_nul_in_an_unknown_key_with_an_idempotency_key_is_refused_and_a_retry_replays(world_a, api_a):
    url = f"/api/v1/slots/{world_a.free_slots[0].pk}/block"
    body = {"reason": "r", "x\u0000y": 1}
    first = api_a.post(url, body, **{"Idempotency-Key": "nul-key"})
    again = api_a.post(url, body, **{"Idempotency-Key": "nul-key"})
    assert first.status_code == again.status_code == 400
    assert first.json() == again.json()


def test_an_echoed_unknown_field_is_stored_as_valid_json(world_a, api_a):
    """Even text that passes the parser is stored so that jsonb accepts it (a replay equals the first)."""
    url = f"/api/v1/slots/{world_a.free_slots[0].pk}/block"
    body = {"reason": "r", "unknown\u2028field\U0001f600": 1}
    first = api_a.post(url, body, **{"Idempotency-Key": "echo-key"})
    again = api_a.post(url, body, **{"Idempotency-Key": "echo-key"})
    assert first.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"
    assert IdempotencyRecord.objects.get(key="echo-key").status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/bookings/abc",
        "/api/v1/bookings/99999999999999999999999",
        "/api/v1/schedules/1e3",
        "/api/v1/slots/-1/block",
        "/api/v1/nope",
        "/api/v1/",
        "/api/",
        "/api/v2/bookings",
        "/api/v1/bookings/1/cancel/extra",
    ],
)
def test_unknown_paths_and_non_integer_ids_under_api_answer_problem_json_404(api_a, path):
    response = api_a.get(path)
    assert response.status_code == 404, (path, response.status_code)
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"].endswith("not_found")
    response = api_a.post(path)
    assert response.status_code in (404, 405), (path, response.status_code)
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "query",
    [
        "date_from=9999-12-31&date_to=9999-12-31",
        "date_from=0001-01-01",
        "date_from=%00",
        "cursor=%ED%A0%80",
        "cursor=" + "A" * 199,
        "limit=99999999999999999999",
        "schedule_id=99999999999999999999",
        "service=%00",
        "status=%00",
    ],
)
def test_hostile_query_strings_answer_4xx_problem_json(world_a, api_a, query):
    for url in (
        "/api/v1/slots",
        "/api/v1/bookings",
        "/api/v1/changes",
        "/api/v1/visits",
        "/api/v1/schedules",
    ):
        response = api_a.get(f"{url}?{query}")
        _assert_problem(response, f"{url}?{query}")


def _publish(api, world, start: str, end: str):
    return api.post(f"/api/v1/schedules/{world.schedule.pk}/slots", {"slots": [{"start": start, "end": end}]})


@pytest.mark.parametrize("offset", ["+16:00", "-16:00", "+23:59"])
def test_a_utc_offset_beyond_15_59_is_refused_with_400(world_a, api_a, offset):
    day = (timezone.localdate() + dt.timedelta(days=10)).isoformat()
    response = _publish(api_a, world_a, f"{day}T08:00:00{offset}", f"{day}T08:20:00{offset}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_a_slot_in_year_9999_is_refused(world_a, api_a):
    response = _publish(api_a, world_a, "9999-12-30T08:00:00+01:00", "9999-12-30T08:20:00+01:00")
    assert response.status_code == 400
    assert not Slot.objects.filter(start__year=9999).exists()


def test_a_slot_beyond_the_services_publishing_horizon_is_refused_by_catalogue_data(world_a, api_a):
    service = world_a.service
    service.publish_horizon_days = service.min_horizon_days + 10
    service.save()
    far = timezone.localdate() + dt.timedelta(days=service.publish_horizon_days + 2)
    near = timezone.localdate() + dt.timedelta(days=service.publish_horizon_days - 2)

    refused = _publish(api_a, world_a, f"{far}T08:00:00+01:00", f"{far}T08:20:00+01:00")
    accepted = _publish(api_a, world_a, f"{near}T08:00:00+01:00", f"{near}T08:20:00+01:00")

    assert refused.status_code == 400
    assert refused.json()["code"] == "slot_beyond_horizon"
    assert accepted.status_code == 201, accepted.json()


def test_a_slot_longer_than_the_services_maximum_is_refused(world_a, api_a):
    day = timezone.localdate() + dt.timedelta(days=10)
    three_years = day + dt.timedelta(days=3 * 365)
    response = _publish(api_a, world_a, f"{day}T08:00:00+01:00", f"{three_years}T08:00:00+01:00")
    assert response.status_code == 400
    assert response.json()["code"] in ("slot_too_long", "slot_beyond_horizon")

    world_a.service.max_slot_minutes = 30
    world_a.service.save()
    response = _publish(api_a, world_a, f"{day}T08:00:00+01:00", f"{day}T08:45:00+01:00")
    assert response.status_code == 400
    assert response.json()["code"] == "slot_too_long"
    assert not Slot.objects.filter(start__date=day, end__date__gt=day).exists()


@pytest.mark.parametrize("path", ["/api/v1/bookings/abc", "/api/v1/nope", "/api/v1/schedules/1.5/slots"])
def test_unknown_api_paths_are_problem_json_even_under_debug(api_a, settings, path):
    settings.DEBUG = True  # the development server, where Django's own 404 page is HTML
    response = api_a.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_the_token_url_without_its_slash_is_no_500_under_debug(settings, issued_a):
    settings.DEBUG = True
    from django.test import Client

    response = Client().post("/api/v1/oauth/token", {"grant_type": "client_credentials"})
    assert response.status_code == 401
