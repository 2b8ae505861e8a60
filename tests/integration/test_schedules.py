"""Schedules, templates, slots: writes through the booking core, ETag/If-Match, bulk publish, reads."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.outbox.models import OutboxEvent
from apps.scheduling.models import Schedule, Slot, WeeklyTemplate
from tests.factories import ContractFactory, ScheduleFactory, ServiceFactory, SlotFactory

from .conftest import Api


@pytest.fixture
def mammo_a(facility_a):
    service = ServiceFactory(mammography=True)
    ContractFactory(facility=facility_a, service=service)
    return service


@pytest.fixture
def schedule_a(facility_a, mammo_a):
    return ScheduleFactory(facility=facility_a, service=mammo_a)


def _slots(n: int, *, days_ahead: int = 10, minutes: int = 10) -> list[dict]:
    base = (timezone.now() + dt.timedelta(days=days_ahead)).replace(minute=0, second=0, microsecond=0)
    step = dt.timedelta(minutes=minutes)
    return [
        {"start": (base + i * step).isoformat(), "end": (base + (i + 1) * step).isoformat()} for i in range(n)
    ]


def test_it_creates_a_schedule_with_an_etag_and_an_event(api_a, mammo_a, facility_a):
    response = api_a.post(
        "/api/v1/schedules", {"service": mammo_a.code, "place": "gab. 3", "external_id": "S1"}
    )

    assert response.status_code == 201, response.content
    schedule = Schedule.objects.get(pk=response.json()["id"])
    assert schedule.facility == facility_a
    assert response["ETag"] == f'"{schedule.version}"'
    assert response["Location"] == f"/api/v1/schedules/{schedule.pk}"
    assert OutboxEvent.objects.filter(type="schedule.created", facility=facility_a).count() == 1


def test_a_schedule_for_a_service_without_contract_is_refused(api_a, db):
    service = ServiceFactory(code="NO_CONTRACT")

    response = api_a.post("/api/v1/schedules", {"service": service.code})

    assert response.status_code == 409
    assert response.json()["code"] == "facility_not_contracted"
    assert not Schedule.objects.exists()


def test_an_unknown_service_is_a_404_problem(api_a, db):
    response = api_a.post("/api/v1/schedules", {"service": "NOPE"})

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_service"


def test_another_facilitys_practitioner_cannot_be_used(api_a, mammo_a, facility_b):
    from tests.factories import PractitionerFactory

    foreign = PractitionerFactory(facility=facility_b)

    response = api_a.post("/api/v1/schedules", {"service": mammo_a.code, "practitioner_id": foreign.pk})

    assert response.status_code == 404
    assert not Schedule.objects.exists()


def test_patch_needs_if_match_and_refuses_a_stale_etag(api_a, schedule_a):
    url = f"/api/v1/schedules/{schedule_a.pk}"
    etag = api_a.get(url)["ETag"]

    missing = api_a.call("PATCH", url, {"place": "A"})
    first = api_a.call("PATCH", url, {"place": "A"}, **{"If-Match": etag})
    second = api_a.call("PATCH", url, {"place": "B"}, **{"If-Match": etag})

    assert missing.status_code == 428
    assert first.status_code == 200
    assert first["ETag"] != etag
    assert second.status_code == 412
    assert second.json()["code"] == "precondition_failed"
    schedule_a.refresh_from_db()
    assert schedule_a.place == "A"


def test_templates_replace_with_if_match_and_generate_slots(api_a, schedule_a):
    url = f"/api/v1/schedules/{schedule_a.pk}/templates"
    monday = timezone.localdate() + dt.timedelta(days=7 - timezone.localdate().weekday())
    body = {
        "templates": [
            {
                "weekday": 0,
                "start_time": "08:00",
                "end_time": "10:00",
                "slot_minutes": 20,
                "valid_from": monday.isoformat(),
            }
        ],
        "generate_until": (monday + dt.timedelta(days=6)).isoformat(),
    }

    response = api_a.call("PUT", url, body, **{"If-Match": f'"{schedule_a.version}"'})
    stale = api_a.call("PUT", url, body, **{"If-Match": f'"{schedule_a.version}"'})

    assert response.status_code == 200, response.content
    assert response.json()["slots_created"] == 6
    assert WeeklyTemplate.objects.filter(schedule=schedule_a).count() == 1
    assert stale.status_code == 412


def test_templates_with_end_before_start_are_refused(api_a, schedule_a):
    response = api_a.call(
        "PUT",
        f"/api/v1/schedules/{schedule_a.pk}/templates",
        {
            "templates": [
                {"weekday": 0, "start_time": "10:00", "end_time": "08:00", "valid_from": "2026-12-01"}
            ]
        },
        **{"If-Match": f'"{schedule_a.version}"'},
    )

    assert response.status_code == 400
    assert not WeeklyTemplate.objects.exists()


def test_ten_thousand_slots_publish_in_one_request(api_a, schedule_a):
    slots = _slots(10_000, minutes=5)

    response = api_a.post(f"/api/v1/schedules/{schedule_a.pk}/slots", {"slots": slots})

    assert response.status_code == 201, response.content[:300]
    assert response.json() == {"created": 10_000, "skipped": 0}
    assert Slot.objects.filter(schedule=schedule_a).count() == 10_000
    assert OutboxEvent.objects.filter(type="slots.published").count() == 1


def test_a_republished_slot_is_skipped_not_doubled(api_a, schedule_a):
    slots = _slots(3)
    api_a.post(f"/api/v1/schedules/{schedule_a.pk}/slots", {"slots": slots})

    response = api_a.post(f"/api/v1/schedules/{schedule_a.pk}/slots", {"slots": slots})

    assert response.json() == {"created": 0, "skipped": 3}
    assert Slot.objects.count() == 3


@pytest.mark.parametrize(
    ("slots", "status", "code"),
    [
        ([{"start": "2020-01-01T08:00:00+01:00", "end": "2020-01-01T08:20:00+01:00"}], 409, "slot_in_past"),
        (
            [{"start": "2031-02-30T08:00:00+01:00", "end": "2031-02-30T08:20:00+01:00"}],
            400,
            "validation_error",
        ),
        ([{"start": "2031-01-02T08:00:00", "end": "2031-01-02T08:20:00"}], 400, "validation_error"),
        (
            [{"start": "2031-01-02T08:20:00+01:00", "end": "2031-01-02T08:00:00+01:00"}],
            400,
            "validation_error",
        ),
        (
            [{"start": "2031-01-02T08:00:00+01:00", "end": "2031-01-02T08:20:00+01:00", "room": 1}],
            400,
            "validation_error",
        ),
        ([{"start": 5, "end": None}], 400, "validation_error"),
        ("not a list", 400, "validation_error"),
        ([], 400, "validation_error"),
        (
            [
                {"start": "2027-11-02T08:00:00+01:00", "end": "2027-11-02T08:30:00+01:00"},
                {"start": "2027-11-02T08:20:00+01:00", "end": "2027-11-02T08:40:00+01:00"},
            ],
            409,
            "schedule_overlap",
        ),
    ],
)
def test_bad_slots_are_refused_and_nothing_is_published(api_a, schedule_a, slots, status, code):
    response = api_a.post(f"/api/v1/schedules/{schedule_a.pk}/slots", {"slots": slots})

    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert not Slot.objects.exists()


def test_block_and_unblock_a_slot(api_a, schedule_a):
    slot = SlotFactory(schedule=schedule_a)

    blocked = api_a.post(f"/api/v1/slots/{slot.pk}/block", {"reason": "equipment service"})
    again = api_a.post(f"/api/v1/slots/{slot.pk}/block", {})
    unblocked = api_a.post(f"/api/v1/slots/{slot.pk}/unblock")

    assert blocked.json()["status"] == "blocked"
    assert again.status_code == 200
    assert unblocked.json()["status"] == "free"
    assert OutboxEvent.objects.filter(type="slot.blocked").count() == 1


def test_close_day_withdraws_free_slots(api_a, schedule_a):
    slot = SlotFactory(schedule=schedule_a, start=timezone.now() + dt.timedelta(days=3))
    from tests.factories import ReasonCodeFactory

    ReasonCodeFactory()
    day = timezone.localdate(slot.start).isoformat()

    response = api_a.post(
        f"/api/v1/schedules/{schedule_a.pk}/close-day", {"day": day, "reason_code": "DOCTOR_ILLNESS"}
    )

    assert response.status_code == 200, response.content
    assert response.json()["slots_closed"] == 1
    slot.refresh_from_db()
    assert slot.status == Slot.Status.CANCELLED


def test_close_day_refuses_a_past_day_and_an_unknown_reason(api_a, schedule_a):
    past = api_a.post(
        f"/api/v1/schedules/{schedule_a.pk}/close-day", {"day": "2020-01-01", "reason_code": "DOCTOR_ILLNESS"}
    )
    unknown = api_a.post(
        f"/api/v1/schedules/{schedule_a.pk}/close-day",
        {"day": (timezone.localdate() + dt.timedelta(days=2)).isoformat(), "reason_code": "NOPE"},
    )

    assert past.status_code == 400
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "unknown_reason"


def test_slot_list_filters_and_pages_with_a_cursor(api_a, schedule_a, facility_b):
    slots = [SlotFactory(schedule=schedule_a) for _ in range(5)]
    SlotFactory(schedule=ScheduleFactory(facility=facility_b, service=schedule_a.service))
    Slot.objects.filter(pk=slots[4].pk).update(status="blocked")

    seen: list[int] = []
    url = "/api/v1/slots?status=free&limit=2"
    while url:
        page = api_a.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = f"/api/v1/slots?status=free&limit=2&cursor={page['next']}" if page["next"] else ""

    assert seen == [s.pk for s in slots[:4]]


@pytest.mark.parametrize(
    "query",
    [
        "date_from=2026-02-30",
        "date_from=2026-05-02&date_to=2026-05-01",
        "cursor=%21%21",
        "limit=0",
        "status=nonsense",
        "cursor=WzEsMl0",
    ],
)
def test_bad_list_queries_are_400_problems(api_a, db, query):
    response = api_a.get(f"/api/v1/slots?{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_reference_data_is_readable_by_any_client(api_a, mammo_a):
    from tests.factories import EntitlementFactory, ReasonCodeFactory

    ReasonCodeFactory()
    EntitlementFactory()

    assert mammo_a.code in [s["code"] for s in api_a.get("/api/v1/services").json()["results"]]
    assert api_a.get("/api/v1/reason-codes").json()["results"][0]["code"] == "DOCTOR_ILLNESS"
    assert api_a.get("/api/v1/entitlements").json()["results"][0]["code"] == "ZHDK"


def test_an_unknown_method_is_a_405_problem(api_a, db):
    response = api_a.call("DELETE", "/api/v1/services")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"


__all__ = ["Api"]
