"""Read replicas (issue 19, apps/core/dbrouter.py): search, the open-data reads and staff reports read
from `replica` when one is configured; writes and everything else from `default`; a browser that has
just written reads from `default` for a short while (read-your-writes).

The main test runs against a real streaming replica: a primary and a replica started on loopback with
this machine's PostgreSQL binaries (initdb, pg_basebackup -R), holding a copy of the test database.
Replay on the replica is paused to make its lag certain instead of a matter of timing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connections, transaction
from django.http import HttpResponse, JsonResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from apps.booking.services import appointment_book
from apps.catalog.models import Service
from apps.core.dbrouter import (
    COOKIE,
    DEFAULT,
    LAG_SQL,
    REPLICA,
    PrimaryAfterWriteMiddleware,
    ReplicaHealth,
    ReplicaRouter,
    health,
    read_alias,
    replica_reads,
    replica_usable,
)
from apps.scheduling.models import Slot
from apps.scheduling.selectors import slot_search
from tests.factories import ContractFactory, PatientFactory, ScheduleFactory, ServiceFactory, SlotFactory

from .streaming import StreamingPair, bindir, server_major, server_user

pytestmark = pytest.mark.slow


# --- without a replica: nothing changes --------------------------------------------------------


@pytest.mark.django_db
def test_without_a_replica_every_read_goes_to_default_and_no_cookie_is_set(settings):
    assert REPLICA not in settings.DATABASES
    with replica_reads():
        assert read_alias() == DEFAULT
        assert ReplicaRouter().db_for_read(Slot) is None
    response = PrimaryAfterWriteMiddleware(lambda request: HttpResponse(status=201))(
        RequestFactory().post("/")
    )
    assert COOKIE not in response.cookies


def test_a_replica_is_usable_while_it_answers_within_the_allowed_lag(settings):
    settings.CER_REPLICA_MAX_LAG_SECONDS = 30
    state = ReplicaHealth()
    assert state.usable  # until a check says otherwise
    state.record(lag=29.5)
    assert state.usable and state.lag == 29.5
    state.record(lag=30.5)
    assert not state.usable
    state.record(lag=0.0)
    assert state.usable
    state.record(lag=None)  # could not be asked
    assert not state.usable
    state.mark_down()
    assert not state.usable and not state.check_due()  # the next check waits CER_REPLICA_CHECK_SECONDS


def test_the_replica_is_asked_at_most_once_per_check_interval_whatever_the_threads(settings):
    settings.CER_REPLICA_CHECK_SECONDS = 60
    state = ReplicaHealth()
    due = []
    threads = [threading.Thread(target=lambda: due.append(state.check_due())) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(due) == [False] * 15 + [True]


@pytest.mark.django_db
def test_without_a_replica_configured_nothing_is_asked():
    assert REPLICA not in connections.settings
    assert replica_usable() is False


def test_the_replica_is_never_migrated_nor_written_to():
    router = ReplicaRouter()
    assert router.allow_migrate(REPLICA, "booking") is False
    assert router.allow_migrate(DEFAULT, "booking") is None
    assert router.db_for_write(Slot) == DEFAULT


# --- a real streaming replica -------------------------------------------------------------------


@pytest.fixture(scope="module")
def streaming_pair(django_db_setup, django_db_blocker) -> Iterator[StreamingPair]:
    bin_dir, user = bindir(server_major(connections["default"].settings_dict)), server_user()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup): set CER_PG_BINDIR")
    if user is None:
        pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
    pair = StreamingPair(bin_dir, user)
    try:
        with django_db_blocker.unblock():
            pair.start(connections[DEFAULT].settings_dict)
        yield pair
    finally:
        pair.stop()


@contextmanager
def pointed_at(pair: StreamingPair) -> Iterator[None]:
    """`default` is the pair's primary and `replica` its replica for the duration of the block."""
    configured = connections.settings  # the same dict as settings.DATABASES
    saved_settings, saved_default = configured[DEFAULT], connections[DEFAULT]
    configured[DEFAULT] = pair.settings_for(saved_settings, pair.primary_port)
    configured[REPLICA] = pair.settings_for(saved_settings, pair.replica_port)
    connections[DEFAULT] = connections.create_connection(DEFAULT)
    health.reset()
    try:
        yield
    finally:
        health.reset()
        for alias in (DEFAULT, REPLICA):
            connections[alias].close()
        del connections[REPLICA]
        del configured[REPLICA]
        configured[DEFAULT] = saved_settings
        connections[DEFAULT] = saved_default


def _search(service: Service) -> set[int]:
    return {slot.pk for slot in slot_search(service=service, limit=50)}


def test_search_reads_the_replica_and_a_patient_who_has_just_booked_reads_the_primary(
    streaming_pair, django_db_blocker
):
    pair = streaming_pair
    with django_db_blocker.unblock(), pointed_at(pair):
        service = Service.objects.filter(code="MAMMO").first() or ServiceFactory(mammography=True)
        schedule = ScheduleFactory(service=service)
        ContractFactory(facility=schedule.facility, service=service)
        slots = SlotFactory.create_batch(2, schedule=schedule)
        patient = PatientFactory(sex="F")
        pair.wait_replayed()

        # GIVEN a replica that has everything: search is answered by the replica alone
        with (
            CaptureQueriesContext(connections[REPLICA]) as on_replica,
            CaptureQueriesContext(connections[DEFAULT]) as on_default,
        ):
            assert _search(service) >= {s.pk for s in slots}
        assert on_replica.captured_queries and not on_default.captured_queries
        # ... but never inside a transaction on the primary (a read a write depends on)
        with transaction.atomic(), replica_reads():
            assert read_alias() == DEFAULT

        # WHEN the replica falls behind and the patient books (on the primary: writes never go elsewhere)
        pair.replay(paused=True)
        try:
            appointment_book(slot_id=slots[0].pk, patient=patient, channel="web")
            assert Slot.objects.using(DEFAULT).get(pk=slots[0].pk).status != Slot.Status.FREE

            # THEN others, reading the replica, still see the slot free (it is one step behind) ...
            assert slots[0].pk in _search(service)

            # ... while the patient's browser, marked by its successful POST, reads the primary
            def book(request):
                return HttpResponse(status=201)

            def search(request):
                return JsonResponse({"ids": sorted(_search(service))})

            posted = PrimaryAfterWriteMiddleware(book)(RequestFactory().post("/book"))
            cookie = posted.cookies[COOKIE]
            assert cookie["max-age"] and cookie["httponly"]
            request = RequestFactory().get("/search")
            request.COOKIES[COOKIE] = cookie.value
            mine = json.loads(PrimaryAfterWriteMiddleware(search)(request).content)["ids"]
            assert slots[0].pk not in mine and slots[1].pk in mine
            theirs = json.loads(PrimaryAfterWriteMiddleware(search)(RequestFactory().get("/search")).content)[
                "ids"
            ]
            assert slots[0].pk in theirs
            refused = PrimaryAfterWriteMiddleware(lambda r: HttpResponse(status=409))(
                RequestFactory().post("/")
            )
            assert COOKIE not in refused.cookies  # a refused write leaves no mark

            # The open-data resource reads the replica too, through the whole middleware stack
            with CaptureQueriesContext(connections[REPLICA]) as on_replica:
                assert Client().get("/opendata/queues?case=1").status_code == 200
            assert on_replica.captured_queries
        finally:
            pair.replay(paused=False)

        # WHEN the replica catches up, THEN everyone sees the booking. Under load (a CI run beside a
        # national benchmark) the search once still showed the slot just after the replay position had
        # passed the primary's, and the cause is not pinned down: it is given a moment, not forever.
        pair.wait_replayed()
        deadline = time.monotonic() + 15
        while slots[0].pk in _search(service) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert slots[0].pk not in _search(service)


@contextmanager
def sent_to(alias: str) -> Iterator[list[str]]:
    """The statements the block sends to `alias`, without the router's own lag checks. (Unlike
    CaptureQueriesContext it does not connect first: the replica may be down.)"""
    sent: list[str] = []

    def record(execute, sql, params, many, context):
        if sql != LAG_SQL:
            sent.append(sql)
        return execute(sql, params, many, context)

    with connections[alias].execute_wrapper(record):
        yield sent


def test_a_replica_that_falls_too_far_behind_or_goes_away_is_left_for_the_primary_until_it_is_back(
    streaming_pair, django_db_blocker, settings, caplog
):
    pair = streaming_pair
    settings.CER_REPLICA_CHECK_SECONDS = 0  # every read asks the replica first
    settings.CER_REPLICA_MAX_LAG_SECONDS = 30
    caplog.set_level(logging.WARNING, logger="apps.core.dbrouter")
    with django_db_blocker.unblock(), pointed_at(pair):
        service = Service.objects.filter(code="MAMMO").first() or ServiceFactory(mammography=True)
        schedule = ScheduleFactory(service=service)
        ContractFactory(facility=schedule.facility, service=service)
        slots = SlotFactory.create_batch(2, schedule=schedule)
        patient = PatientFactory(sex="F")
        pair.wait_replayed()

        def search_on() -> tuple[set[int], list[str], list[str]]:
            with sent_to(REPLICA) as on_replica, sent_to(DEFAULT) as on_default:
                found = _search(service)
            return found, on_replica, on_default

        found, replica_reads_, primary_reads = search_on()
        assert replica_reads_ and not primary_reads and health.lag is not None

        # WHEN the replica falls further behind than CER_REPLICA_MAX_LAG_SECONDS
        settings.CER_REPLICA_MAX_LAG_SECONDS = 0.5
        pair.replay(paused=True)
        try:
            appointment_book(slot_id=slots[0].pk, patient=patient, channel="web")
            time.sleep(1.2)
            # THEN search reads the primary (and sees the booking), not the stale replica
            found, replica_reads_, primary_reads = search_on()
            assert primary_reads and not replica_reads_
            assert slots[0].pk not in found and slots[1].pk in found
            assert not health.usable and health.lag is not None and health.lag > 0.5
        finally:
            pair.replay(paused=False)
        # WHEN it has caught up THEN reads go back to it
        pair.wait_replayed()
        found, replica_reads_, primary_reads = search_on()
        assert replica_reads_ and not primary_reads and slots[0].pk not in found
        assert "behind" in caplog.text and "is back" in caplog.text

        # WHEN the replica goes away between two checks (its connection, open in this thread, is cut)
        settings.CER_REPLICA_MAX_LAG_SECONDS = 30
        settings.CER_REPLICA_CHECK_SECONDS = 60
        health.reset()
        assert _search(service)  # checked now: the next check is a minute away
        pair.replica_down()
        try:
            # THEN the read that meets the dead connection is made again on the primary: the same answer
            found, _, primary_reads = search_on()
            assert primary_reads and slots[1].pk in found and slots[0].pk not in found
            assert not health.usable
            # ... the next ones go straight to the primary, and the patient's search page still works
            found, _, primary_reads = search_on()
            assert primary_reads and slots[1].pk in found
            page = Client().get(f"/?service={service.pk}")
            assert page.status_code == 200
            assert "cannot be reached" in caplog.text
            # ... and a process that last found it well and opens a new connection to it (none can be
            # opened) does the same
            health.reset()
            health.record(lag=0.0)
            assert health.check_due()  # now counts as the check: the next is a minute away
            connections[REPLICA].close()
            found, _, primary_reads = search_on()
            assert primary_reads and slots[1].pk in found and not health.usable
        finally:
            pair.replica_up()
        # WHEN it is back, THEN the next check sends reads to it again
        settings.CER_REPLICA_CHECK_SECONDS = 0
        found, replica_reads_, primary_reads = search_on()
        assert replica_reads_ and not primary_reads and slots[1].pk in found
        assert health.usable
