"""Issue 17: HTTP by the book. Strong If-Match with `*`, If-None-Match with 304 on reads, bookings
honour If-Match, HEAD and OPTIONS with a correct Allow, the current IETF RateLimit fields."""

from __future__ import annotations

import re

import pytest

from apps.booking.models import Appointment


@pytest.fixture
def schedule_url(world_a):
    return f"/api/v1/schedules/{world_a.schedule.pk}"


def test_a_weak_etag_never_matches_if_match(api_a, world_a, schedule_url):
    version = api_a.get(schedule_url)["ETag"].strip('"')

    response = api_a.call("PATCH", schedule_url, {"place": "B"}, **{"If-Match": f'W/"{version}"'})

    assert response.status_code == 412
    world_a.schedule.refresh_from_db()
    assert world_a.schedule.place != "B"


def test_if_match_star_matches_the_current_representation(api_a, world_a, schedule_url):
    response = api_a.call("PATCH", schedule_url, {"place": "gab. 3"}, **{"If-Match": "*"})

    assert response.status_code == 200, response.content
    assert response.json()["place"] == "gab. 3"


def test_if_match_accepts_a_list_of_tags(api_a, world_a, schedule_url):
    current = api_a.get(schedule_url)["ETag"]

    response = api_a.call("PATCH", schedule_url, {"place": "gab. 4"}, **{"If-Match": f'"999", {current}'})

    assert response.status_code == 200, response.content


def test_if_none_match_answers_304_while_the_etag_is_current(api_a, world_a, schedule_url):
    current = api_a.get(schedule_url)["ETag"]

    unchanged = api_a.get(schedule_url, **{"If-None-Match": current})
    weak = api_a.get(schedule_url, **{"If-None-Match": f"W/{current}"})
    api_a.call("PATCH", schedule_url, {"place": "gab. 5"}, **{"If-Match": current})
    changed = api_a.get(schedule_url, **{"If-None-Match": current})

    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged["ETag"] == current
    assert weak.status_code == 304  # If-None-Match compares weakly
    assert changed.status_code == 200 and changed["ETag"] != current


def test_a_booking_has_an_etag_and_answers_304(api_a, world_a):
    url = f"/api/v1/bookings/{world_a.booking.pk}"
    first = api_a.get(url)

    assert first["ETag"] == f'"{world_a.booking.version}"'
    assert api_a.get(url, **{"If-None-Match": first["ETag"]}).status_code == 304


def test_a_booking_transition_with_a_stale_if_match_is_412_and_changes_nothing(api_a, world_a):
    url = f"/api/v1/bookings/{world_a.booking.pk}"
    stale = api_a.get(url)["ETag"]
    confirmed = api_a.post(f"{url}/confirm", **{"If-Match": stale})
    assert confirmed.status_code == 200 and confirmed["ETag"] != stale

    refused = api_a.post(f"{url}/cancel", {"reason_code": "DOCTOR_ILLNESS"}, **{"If-Match": stale})

    assert refused.status_code == 412
    assert refused.json()["code"] == "precondition_failed"
    assert Appointment.objects.get(pk=world_a.booking.pk).status == "confirmed"
    current = api_a.post(
        f"{url}/cancel", {"reason_code": "DOCTOR_ILLNESS"}, **{"If-Match": confirmed["ETag"]}
    )
    assert current.status_code == 200, current.content


def test_head_is_the_get_without_a_body(api_a, world_a):
    get = api_a.get(f"/api/v1/bookings/{world_a.booking.pk}")
    head = api_a.call("HEAD", f"/api/v1/bookings/{world_a.booking.pk}")

    assert head.status_code == 200
    assert head.content == b""
    assert head["ETag"] == get["ETag"]
    assert head["Content-Length"] == str(len(get.content))
    assert "RateLimit" in head


def test_options_answers_the_allowed_methods(api_a, anonymous, world_a):
    response = anonymous.call("OPTIONS", "/api/v1/bookings")

    assert response.status_code == 204
    assert response["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert api_a.call("OPTIONS", f"/api/v1/bookings/{world_a.booking.pk}/cancel")["Allow"] == "OPTIONS, POST"


def test_a_405_names_every_allowed_method(api_a, db):
    response = api_a.call("DELETE", "/api/v1/services")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert response.json()["code"] == "method_not_allowed"


def test_the_rate_limit_fields_follow_the_current_ietf_draft(api_a, db):
    response = api_a.get("/api/v1/services")

    assert re.fullmatch(r'"client";q=\d+;w=\d+', response["RateLimit-Policy"])
    assert re.fullmatch(r'"client";r=\d+;t=\d+', response["RateLimit"])


def test_templates_generated_up_to_a_past_day_are_refused_not_silently_empty(api_a, world_a, schedule_url):
    body = {
        "templates": [{"weekday": 0, "start_time": "08:00", "end_time": "12:00", "valid_from": "2026-09-01"}],
        "generate_until": "2026-09-30",
    }

    response = api_a.call("PUT", f"{schedule_url}/templates", body, **{"If-Match": "*"})

    assert response.status_code == 400
    assert "generate_until" in response.json()["errors"]
