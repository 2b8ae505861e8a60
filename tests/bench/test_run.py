"""The bench runner's plumbing (no timings): the signed-in patient session it hands to the load
generator, the load generator's GET mode with paths and headers, and the command line."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlparse

import pytest
from django.test import Client

from bench import loadgen
from bench.run import Sizes, _patient_session_cookie, main


def test_the_session_cookie_signs_the_patient_in_to_the_portal(patient):
    cookie = _patient_session_cookie()
    assert Client().get("/appointments/").status_code == 302  # not signed in: to the sign-in page
    response = Client(HTTP_COOKIE=cookie).get("/appointments/")
    assert response.status_code == 200
    patient.refresh_from_db()
    assert response.wsgi_request.user == patient.user


def test_the_load_generator_sends_the_headers_and_takes_the_paths_in_turn(live_server):
    url = urlparse(live_server.url)
    result = loadgen.run_get(
        {
            "host": url.hostname,
            "port": url.port,
            "threads": 2,
            "requests": 6,
            "warmup": 2,
            "paths": ["/api/v1/ping", "/healthz"],
            "headers": {"Accept": "application/json"},
        }
    )
    assert result["statuses"] == {200: 6}  # the 2 warm-up requests are not counted
    assert len(result["latencies"]) == 6


def test_only_accepts_the_known_workloads(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "search,nonsense"])
    assert exit_info.value.code == 2
    assert "unknown workload(s) nonsense" in capsys.readouterr().err


def test_the_quick_run_is_smaller_than_the_full_one_which_publishes_a_million_slots_at_scale_one():
    quick, full = Sizes.for_run(quick=True, scale=0.005), Sizes.for_run(quick=False, scale=1.0)
    assert full.publish_per_call * full.publish_batches == 1_000_000
    assert Sizes.for_run(quick=False, scale=0.1).publish_batches == 10
    assert quick.storm_slots < full.storm_slots and quick.days < full.days
    assert quick.storm_runs == 1 and full.storm_runs == 3  # the full run reports the median storm


def test_make_bench_gets_its_own_embedded_database_and_odd_names_are_refused():
    from scripts.services import StartError, exec_arguments

    assert exec_arguments(["--database", "cer_bench", "--", "python", "-m", "bench.run"]) == (
        "cer_bench",
        ["python", "-m", "bench.run"],
    )
    assert exec_arguments(["--", "pytest"]) == ("cer", ["pytest"])
    for name in ("cer; DROP DATABASE cer", "Cer", "bąk"):
        with pytest.raises(StartError):
            exec_arguments(["--database", name, "--", "x"])


def test_the_storm_patients_of_every_run_have_new_pesels(db):
    from bench.run import _storm_patients

    first = {p.pesel for p in _storm_patients(5)}
    second = {p.pesel for p in _storm_patients(7)}  # another size than the run before

    assert len(first) == 5 and len(second) == 7 and not first & second


def test_cpu_per_request_splits_web_database_and_client_and_counts_new_backends_from_zero():
    from bench.run import CpuMeter, cpu_per

    before = {"web": 10.0, "db": {101: 5.0}, "client": 1.0}
    after = {"web": 12.0, "db": {101: 5.5, 102: 0.3}, "client": 1.2}  # 102 connected in between

    spent = CpuMeter.spent(before, after)

    assert spent == pytest.approx({"web": 2.0, "db": 0.8, "client": 0.2})
    assert cpu_per(spent, 100) == "20.0 / 8.0 / 2.0"
    assert cpu_per({"web": None, "db": None, "client": 0.2}, 100) == "n/a / n/a / 2.0"


def test_the_storm_loop_books_every_slot_once_with_tokens_fetched_beforehand(live_server, mammography):
    from apps.booking.models import Appointment
    from tests.factories import PatientFactory, ScheduleFactory, SlotFactory
    from tests.factories.integration import api_client_create

    schedule = ScheduleFactory(service=mammography)
    slots = SlotFactory.create_batch(3, schedule=schedule)
    patients = PatientFactory.create_batch(5)
    issued = api_client_create(facility=schedule.facility, scopes=["bookings:write"])
    url = urlparse(live_server.url)
    base = {"host": url.hostname, "port": url.port, "threads": 4}
    clients = {"a": {"client_id": issued.client_id, "client_secret": issued.client_secret}}

    tokens = loadgen.run_tokens({**base, "clients": clients})["tokens"]
    job = {"tokens": tokens, "slots": [(s.pk, "a") for s in slots], "patients": [p.pesel for p in patients]}
    result = loadgen.run_book({**base, **job})

    assert set(tokens) == {"a"}
    assert result["booked"] == 3
    assert set(result["statuses"]) <= {"201", "409 slot_not_free"}
    assert Appointment.objects.filter(slot__in=slots).count() == 3

    # The floor of a booking request: the same slots again, every answer a refusal with its own key.
    from apps.integration.models import IdempotencyRecord

    stored = IdempotencyRecord.objects.count()
    headers = {"Authorization": f"Bearer {tokens['a']}", "Content-Type": "application/json"}
    posts = [
        [
            "/api/v1/bookings",
            {"slot_id": s.pk, "pesel": p.pesel, "channel": "desk"},
            {**headers, "Idempotency-Key": "*"},
        ]
        for s, p in zip(slots, patients, strict=False)
    ]
    refused = loadgen.run_get({**base, "requests": 6, "posts": posts, "expect": 409})
    assert refused["statuses"] == {409: 6} and refused["ok"] == 6
    assert Appointment.objects.filter(slot__in=slots).count() == 3
    assert IdempotencyRecord.objects.count() == stored  # refused before any key was claimed


def test_the_uncontended_storm_books_each_patient_on_their_own_slot_without_a_lost_race(
    live_server, mammography
):
    from apps.booking.models import Appointment
    from tests.factories import PatientFactory, ScheduleFactory, SlotFactory
    from tests.factories.integration import api_client_create

    schedule = ScheduleFactory(service=mammography)
    slots = SlotFactory.create_batch(4, schedule=schedule)
    patients = PatientFactory.create_batch(5)  # one more than there are slots: the last one stays home
    issued = api_client_create(facility=schedule.facility, scopes=["bookings:write"])
    url = urlparse(live_server.url)
    base = {"host": url.hostname, "port": url.port, "threads": 3}
    clients = {"a": {"client_id": issued.client_id, "client_secret": issued.client_secret}}
    tokens = loadgen.run_tokens({**base, "clients": clients})["tokens"]

    result = loadgen.run_book(
        {
            **base,
            "tokens": tokens,
            "slots": [(s.pk, "a") for s in slots],
            "patients": [p.pesel for p in patients],
            "uncontended": True,
        }
    )

    assert result["booked"] == 4 and result["statuses"] == {"201": 4}  # no lost race, no retry
    assert len(result["all_latencies"]) == 4
    booked = dict(Appointment.objects.filter(slot__in=slots).values_list("slot_id", "patient_id"))
    assert booked == {s.pk: p.pk for s, p in zip(slots, patients, strict=False)}


def test_a_series_of_storms_is_summed_and_its_median_storm_reported():
    from bench.run import _storms_summary

    runs = [
        {"booked": 10, "wall_s": 1.0, "latencies": [0.1], "statuses": {"201": 10, "409 slot_not_free": 4}},
        {"booked": 10, "wall_s": 0.5, "latencies": [0.2], "statuses": {"201": 10, "500": 1}},
        {"booked": 10, "wall_s": 2.0, "latencies": [], "statuses": {"201": 10}},
    ]

    summary = _storms_summary(runs)

    assert summary["per_s"] == [10.0, 20.0, 5.0] and summary["median_per_s"] == 10.0
    assert summary["latencies"] == [0.1] and summary["booked"] == 30
    assert summary["conflicts"] == 4 and summary["errors"] == {"500": 1}
    assert _storms_summary(runs[2:])["latencies"] == [0.0]  # a storm without a booking


def test_the_partitions_of_freshly_published_slots_are_analyzed(db):
    from django.db import connection

    from bench.run import _slots_analyze
    from tests.factories import SlotFactory

    slots = SlotFactory.create_batch(3)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM scheduling_slot WHERE id = ANY(%s)",
            [[s.pk for s in slots]],
        )
        holding = sorted(name for (name,) in cursor.fetchall())

    assert _slots_analyze([s.pk for s in slots]) == holding
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(reltuples) FROM pg_class WHERE relname = ANY(%s)", [holding])
        assert cursor.fetchone()[0] >= 3  # the statistics count the new slots


def test_the_partitions_of_published_schedules_are_analyzed(db):
    """After the publish workload: the partitions holding its schedules' slots (DEFAULT included)."""
    from django.db import connection

    from bench.run import _slots_analyze
    from tests.factories import SlotFactory

    far = SlotFactory(
        start=dt.datetime(2031, 3, 3, 9, tzinfo=dt.UTC), end=dt.datetime(2031, 3, 3, 9, 20, tzinfo=dt.UTC)
    )
    assert _slots_analyze([far.schedule_id], column="schedule_id") == ["scheduling_slot_default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'scheduling_slot_default'")
        assert cursor.fetchone()[0] >= 1
    with pytest.raises(ValueError):
        _slots_analyze([far.schedule_id], column="facility_id; DROP TABLE x")


def test_the_session_cookie_signs_in_a_patient_with_nothing_live_in_the_searched_service(db):
    """The search workload measures the search, not the "already waiting" notice: a patient waiting for
    KARDIO_1 is passed over."""
    from tests.factories import PatientFactory, RegistrationFactory, ServiceFactory

    kardio = ServiceFactory(code="KARDIO_1")
    waiting, free = PatientFactory(), PatientFactory()
    RegistrationFactory(patient=waiting, service=kardio, status="waiting")
    response = Client(HTTP_COOKIE=_patient_session_cookie()).get("/appointments/")
    assert response.status_code == 200
    free.refresh_from_db()
    assert response.wsgi_request.user == free.user


def test_concurrent_cancellations_end_every_booking_once_and_report_a_failure(transactional_db, monkeypatch):
    """The waiting-list workload's cancellations from several connections at once (each thread its
    own): every booking ends cancelled by the patient and its slot is queued for the waiting list; a
    cancellation that fails (a booking already ended) fails the measurement instead of being counted."""
    from apps.booking.models import Appointment, FreedSlot
    from apps.core import after_commit

    # The drain each commit asks for is not run: under the test settings a Celery task runs eagerly, and
    # Celery marks a process-wide flag around an eager task, which tasks run from several threads at
    # once leave set (every later `.get()` in this process would then be refused).
    asked: list[str] = []
    monkeypatch.setitem(
        after_commit._handlers, after_commit.FREED_SLOTS_QUEUED, lambda: asked.append("drain")
    )
    from apps.catalog.models import ReasonCode
    from apps.scheduling.models import Slot
    from bench.run import _cancel_concurrently
    from tests.factories import AppointmentFactory, ReasonCodeFactory, ServiceFactory

    ReasonCodeFactory(code="PATIENT_REQUEST", kind=ReasonCode.Kind.PATIENT_CANCEL)
    service = ServiceFactory(code="BENCH_CANCEL", referral_required=False)
    appointments = [
        AppointmentFactory(slot__schedule__service=service, slot__status="booked") for _ in range(12)
    ]

    took = _cancel_concurrently(appointments, 4)

    assert took > 0
    assert set(Appointment.objects.values_list("status", flat=True)) == {"cancelled_by_patient"}
    slots = Slot.objects.filter(pk__in=[a.slot_id for a in appointments])
    assert list(slots.values_list("status", flat=True)) == ["free"] * 12  # each given back
    assert sorted(FreedSlot.objects.values_list("slot_id", flat=True)) == sorted(
        a.slot_id for a in appointments
    )
    assert len(asked) == 12  # each commit asked for a drain
    with pytest.raises(RuntimeError, match="a concurrent cancellation failed"):
        _cancel_concurrently(appointments[:2], 2)


def test_a_queue_left_before_the_waiting_list_workload_is_drained_first(db):
    """Slots another run (or a probe) freed and left queued would be drained with the workload's own
    and take their candidates first: the workload re-assigns them before it starts, and says how many."""
    from django.utils import timezone

    from apps.booking.models import FreedSlot
    from bench.run import _queue_drain_untimed
    from tests.factories import SlotFactory

    for slot in SlotFactory.create_batch(2):
        FreedSlot.objects.create(slot_id=slot.pk, freed_at=timezone.now())

    assert _queue_drain_untimed() == 2
    assert not FreedSlot.objects.exists()
    assert _queue_drain_untimed() == 0
