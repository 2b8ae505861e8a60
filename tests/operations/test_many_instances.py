"""CeR on several machines (issue 19): two web servers, two Celery workers and two beats against one
PostgreSQL database and one Redis, all on loopback with the production settings.

GIVEN web1 and web2 (gunicorn), worker1 and worker2, beat1 and beat2, started together
WHEN  patients race for the same slots through both web servers
THEN  every slot is booked exactly once (the database decides, not a process)
WHEN  the webhook fan-out and the reminder run are sent several times, to whichever worker takes them
THEN  every booking reaches the facility's receiver once, and every reminder is sent once
WHEN  a periodic task is due every second
THEN  one beat sends it (every tick from one sender), and when that beat is SIGKILLed the standby
      takes over and keeps sending (docs/scaling.md, apps/core/beat.py)

One test, one cluster: the processes start once (about 10-20 s on a loaded 2-core box).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.booking.models import Appointment
from apps.catalog.models import Service
from apps.integration.models import WebhookDelivery
from apps.integration.services import webhook_subscription_create
from apps.notifications.models import Message
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    PatientFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)
from tests.factories.integration import access_token_create, api_client_create

from .cluster import Cluster, database_url, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SLOTS = 3
RIVALS = 6  # patients racing for each slot, alternating between the two web servers


class Receiver:
    """The facility's webhook endpoint on 127.0.0.1: counts each delivered event."""

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.events[self.headers["CeR-Event-Id"]] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def cluster(tmp_path, receiver):
    c = Cluster(
        database_url=database_url(connection.settings_dict),
        tmp=tmp_path,
        secret_key=settings.SECRET_KEY,
        extra_env={
            "CER_WEBHOOK_ALLOW_HTTP": "true",
            "CER_WEBHOOK_ALLOW_PRIVATE": "true",
            "CER_WEBHOOK_PORTS": str(receiver.port),
            "CER_WEBHOOK_SECRET_KEY": settings.CER_WEBHOOK_SECRET_KEY or "",
        },
    )
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _post(port: int, path: str, body: dict[str, Any], token: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST",
            path,
            json.dumps(body),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _heartbeats(cluster: Cluster) -> list[tuple[str, str]]:
    """(time, sending beat) of every heartbeat the workers ran, in time order."""
    found = [
        (entry["ts"], entry.get("beat", ""))
        for worker in cluster.workers
        for entry in worker.log_entries()
        if entry.get("message") == "beat heartbeat"
    ]
    return sorted(found)


def test_two_of_everything_against_one_database_and_one_redis(cluster, receiver):
    service = Service.objects.filter(code="MAMMO").first() or ServiceFactory(mammography=True)
    assert 1 in (service.reminder_offsets_days or [])
    facility = FacilityFactory()
    ContractFactory(facility=facility, service=service)
    schedule = ScheduleFactory(facility=facility, service=service)
    soon = timezone.now() + dt.timedelta(hours=20)  # the 1-day reminder is due for these visits
    slots = [SlotFactory(schedule=schedule, start=soon + dt.timedelta(minutes=20 * i)) for i in range(SLOTS)]
    issued = api_client_create(facility=facility)
    token = access_token_create(issued)
    webhook_subscription_create(
        facility=facility, client=issued.client, url=receiver.url, event_types=["appointment.booked"]
    )

    # --- the booking race, across both web servers ----------------------------------------------
    jobs = [(slot.pk, PatientFactory(sex="F").pesel) for slot in slots for _ in range(RIVALS)]
    statuses: dict[int, list[int]] = {slot.pk: [] for slot in slots}
    lock = threading.Lock()
    start = threading.Barrier(len(jobs))

    def book(index: int, slot_id: int, pesel: str) -> None:
        web = cluster.webs[index % 2]
        assert web.port is not None
        start.wait()
        status = _post(
            web.port, "/api/v1/bookings", {"slot_id": slot_id, "pesel": pesel, "channel": "desk"}, token
        )
        with lock:
            statuses[slot_id].append(status)

    threads = [threading.Thread(target=book, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for slot_id, answers in statuses.items():
        assert sorted(answers) == [201] + [409] * (RIVALS - 1), (slot_id, answers)
    booked = Counter(Appointment.objects.filter(slot__in=slots).values_list("slot_id", flat=True))
    assert booked == {slot.pk: 1 for slot in slots}

    # --- webhooks: the fan-out sent four times, taken by either worker ---------------------------
    appointment_ids = [
        str(a) for a in Appointment.objects.filter(slot__in=slots).values_list("id", flat=True)
    ]

    def all_delivered() -> bool:
        for _ in range(2):
            cluster.send_task("apps.integration.tasks.webhooks_fan_out_task")
        return (
            WebhookDelivery.objects.filter(
                event__aggregate_id__in=appointment_ids, status=WebhookDelivery.Status.DELIVERED
            ).count()
            == SLOTS
        )

    wait_for(all_delivered, timeout=60, what="three webhook deliveries", every=1.0)
    for _ in range(2):
        cluster.send_task("apps.integration.tasks.webhooks_fan_out_task")
        cluster.send_task("apps.integration.tasks.webhooks_retry_due_task")
    deliveries = WebhookDelivery.objects.filter(event__aggregate_id__in=appointment_ids)
    event_ids = {str(e) for e in deliveries.values_list("event_id", flat=True)}
    wait_for(lambda: set(receiver.events) >= event_ids, timeout=30, what="the receiver to see every event")
    # Sent once more to both workers: still one delivery and one request per event.
    for delivery_id in deliveries.values_list("id", flat=True):
        cluster.send_task("apps.integration.tasks.webhook_deliver_task", delivery_id)
        cluster.send_task("apps.integration.tasks.webhook_deliver_task", delivery_id)
    assert deliveries.count() == SLOTS
    assert all(d.attempts == 1 for d in deliveries)

    # --- reminders: the run sent four times ------------------------------------------------------
    Appointment.objects.filter(slot__in=slots).update(created_at=timezone.now() - dt.timedelta(days=5))
    for _ in range(4):
        cluster.send_task("apps.notifications.tasks.reminders_send_task")
    reminders = Message.objects.filter(kind="reminder_1d", appointment__slot__in=slots)
    channels = 3  # SMS, e-mail and in-app for each patient

    def reminders_settled() -> bool:
        return (
            reminders.count() == SLOTS * channels
            and not reminders.filter(state__in=[Message.State.PENDING, Message.State.SENDING]).exists()
        )

    wait_for(reminders_settled, timeout=60, what="the reminders to be sent", every=0.5)
    for message_id in reminders.exclude(channel="in_app").values_list("id", flat=True):
        cluster.send_task("apps.notifications.tasks.message_deliver_task", message_id)
    per_key = Counter(reminders.values_list("key", flat=True))
    assert set(per_key.values()) == {1}
    assert set(reminders.values_list("state", flat=True)) == {Message.State.SENT}
    assert set(reminders.exclude(channel="in_app").values_list("attempts", flat=True)) == {1}

    # --- beat: one sender per tick, then the standby after SIGKILL --------------------------------
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="test: heartbeat", task="apps.operations.tasks.beat_heartbeat_task", interval=every_second
    )
    wait_for(lambda: len(_heartbeats(cluster)) >= 4, timeout=60, what="four heartbeats")
    senders = {beat for _, beat in _heartbeats(cluster)}
    assert len(senders) == 1, senders  # two active beats would each send every tick
    (active_identity,) = senders
    active = next(b for b in cluster.beats if active_identity.endswith(f":{b.pid}"))
    standby = next(b for b in cluster.beats if b is not active)
    assert standby.alive()

    active.kill()  # SIGKILL: no goodbye, PostgreSQL ends the session and frees the lock
    killed_at = timezone.now().isoformat(timespec="milliseconds")
    taken_over = wait_for(
        lambda: [beat for _, beat in _heartbeats(cluster) if beat.endswith(f":{standby.pid}")],
        timeout=60,
        what="the standby beat to take over",
    )
    assert taken_over
    time.sleep(2.5)  # a few more ticks from the new active beat
    after = [(ts, beat) for ts, beat in _heartbeats(cluster) if ts > killed_at]
    first_standby = next(i for i, (_, beat) in enumerate(after) if beat.endswith(f":{standby.pid}"))
    # Once the standby sends, it is the only sender; and it sent nothing while the other was alive.
    assert all(beat.endswith(f":{standby.pid}") for _, beat in after[first_standby:])
    assert not any(beat.endswith(f":{standby.pid}") for ts, beat in _heartbeats(cluster) if ts < killed_at)
    # The row `make chaos` prints for this scenario (pytest -s): ticks sent, by how many beats at a time.
    print(
        f"\n{'scenario':<40} {'ticks':>5} {'senders per tick':>16}  fault\n"
        f"{'two beats, one active (advisory lock)':<40} {len(_heartbeats(cluster)):>5} {1:>16}  "
        "active beat SIGKILLed; the standby took over"
    )
