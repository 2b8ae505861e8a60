"""The changes feed: facility events in commit order; under concurrent writers no gap, no duplicate."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from apps.outbox.models import OutboxEvent
from apps.outbox.services import event_record
from tests.factories.integration import access_token_create, api_client_create

from .conftest import Api


def _drain(
    api: Api, cursor: str | None = None, limit: int = 50, expect: int = 0
) -> tuple[list[dict], str | None]:
    """Read pages until empty (and, if `expect`, until that many events arrived).

    Events become visible when every older transaction in the PostgreSQL cluster has ended (see
    apps.outbox.models); on a shared server another database's open transaction can delay that,
    so the reader waits for visibility instead of asserting on time.
    """
    seen: list[dict] = []
    deadline = time.monotonic() + 60
    while True:
        url = f"/api/v1/changes?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(url).json()
        seen += page["results"]
        cursor = page["next"]
        if not page["results"]:
            if len(seen) >= expect or time.monotonic() > deadline:
                return seen, cursor
            time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_the_feed_returns_only_the_facilitys_events_in_order_and_keeps_the_cursor(api_a, world_a, api_b):
    own = list(OutboxEvent.objects.filter(facility=world_a.facility).order_by("txid", "id"))

    events, cursor = _drain(api_a, limit=1, expect=len(own))
    again, same_cursor = _drain(api_a, cursor)

    assert [e["id"] for e in events] == [e.id for e in own]
    assert again == []
    assert same_cursor == cursor
    assert _drain(api_b)[0] == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_leave_no_gap_and_no_duplicate_in_the_feed(facility_a):
    """GIVEN writer threads committing events in overlapping transactions (some slow),
    WHEN a reader polls the feed all the while,
    THEN it sees every event exactly once, in (txid, id) order."""
    issued = api_client_create(facility=facility_a)
    api = Api(access_token_create(issued))
    writers, per_writer = 4, 15
    start = threading.Barrier(writers + 1)

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                with transaction.atomic():
                    event_record(
                        type="test.event",
                        aggregate_type="t",
                        aggregate_id=n * 1000 + i,
                        facility_id=facility_a.pk,
                    )
                    if i % 3 == n % 3:
                        # keep this transaction open while others commit later ids
                        connection.cursor().execute("SELECT pg_sleep(0.02)")
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    seen: list[dict] = []
    cursor = None

    def poll() -> None:
        nonlocal cursor
        url = "/api/v1/changes?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(url).json()
        seen.extend(page["results"])
        cursor = page["next"]

    while any(t.is_alive() for t in threads):
        poll()
    for t in threads:
        t.join()
    rest, cursor = _drain(api, cursor, limit=7, expect=writers * per_writer - len(seen))
    seen.extend(rest)

    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)), "duplicate events in the feed"
    expected = set(OutboxEvent.objects.filter(facility=facility_a).values_list("id", flat=True))
    assert set(ids) == expected, "events missing from the feed"
    assert len(ids) == writers * per_writer
    order = {e.id: (e.txid, e.id) for e in OutboxEvent.objects.filter(id__in=ids)}
    assert [order[i] for i in ids] == sorted(order[i] for i in ids)
