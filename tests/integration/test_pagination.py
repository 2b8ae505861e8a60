"""Issue 17: every list of the API is a page with a cursor (five answered bare arrays)."""

from __future__ import annotations

import pytest

from tests.factories import ReasonCodeFactory

LISTS = [
    "/api/v1/services",
    "/api/v1/reason-codes",
    "/api/v1/entitlements",
    "/api/v1/webhooks",
    "/api/v1/schedules",
]


@pytest.mark.parametrize("url", LISTS)
def test_every_list_is_a_page_with_a_next_cursor(api_a, world_a, url):
    body = api_a.get(url).json()

    assert set(body) == {"results", "next"}


def test_a_reference_list_is_walked_page_by_page_without_gaps(api_a, db):
    codes = [f"CODE_{n}" for n in range(5)]
    for code in codes:
        ReasonCodeFactory(code=code, name_pl=code, name_en=code)

    seen, cursor = [], None
    for _ in range(10):
        url = "/api/v1/reason-codes?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api_a.get(url).json()
        seen += [r["code"] for r in page["results"]]
        cursor = page["next"]
        if cursor is None:
            break

    assert sorted(seen) == sorted(codes)


def test_the_delivery_log_is_a_page(api_a, world_a):
    from apps.integration.models import WebhookSubscription

    subscription = WebhookSubscription.objects.create(
        facility=world_a.facility, url="https://hooks.example.org/cer", secret_encrypted="x", event_types=[]
    )
    body = api_a.get(f"/api/v1/webhooks/{subscription.pk}/deliveries?limit=1").json()

    assert body == {"results": [], "next": None}


def test_the_schedules_are_walked_page_by_page(api_a, world_a):
    for n in range(3):
        response = api_a.post("/api/v1/schedules", {"service": world_a.service.code, "place": f"gab. {n}"})
        assert response.status_code == 201, response.content

    seen, url = [], "/api/v1/schedules?limit=2"
    while url:
        page = api_a.get(url).json()
        seen += [s["id"] for s in page["results"]]
        url = f"/api/v1/schedules?limit=2&cursor={page['next']}" if page["next"] else None

    assert len(seen) == len(set(seen)) == world_a.facility.schedules.count() >= 4


def test_a_forged_cursor_is_a_400_problem(api_a, db):
    response = api_a.get("/api/v1/services?cursor=not-a-cursor")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"
