"""Protocol: Idempotency-Key, rate limits, body size, malformed input -> problem+json, nothing changed."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from apps.booking.models import Appointment
from apps.core.errors import DomainError
from apps.integration.models import IdempotencyRecord
from apps.outbox.models import OutboxEvent
from apps.scheduling.models import Schedule
from tests.factories import PatientFactory


def _book(api, world, patient, key):
    body = {"slot_id": world.free_slots[0].pk, "pesel": patient.pesel, "channel": "desk"}
    return api.post("/api/v1/bookings", body, **{"Idempotency-Key": key})


def test_a_retried_booking_returns_the_first_response_and_books_once(api_a, world_a):
    patient = PatientFactory()

    first = _book(api_a, world_a, patient, "key-1")
    events = OutboxEvent.objects.count()
    retry = _book(api_a, world_a, patient, "key-1")

    assert first.status_code == 201
    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert retry["Location"] == first["Location"]
    assert Appointment.objects.filter(patient=patient).count() == 1
    assert OutboxEvent.objects.count() == events


def test_a_retried_refusal_is_replayed_too(api_a, world_a):
    first = _book(api_a, world_a, world_a.patient, "key-2")  # already has a booking: 409
    retry = _book(api_a, world_a, world_a.patient, "key-2")

    assert first.status_code == retry.status_code == 409
    assert retry.json() == first.json()
    assert retry["Content-Type"] == "application/problem+json"


def test_the_same_key_with_a_different_body_is_422(api_a, world_a):
    _book(api_a, world_a, PatientFactory(), "key-3")
    other = PatientFactory()

    response = _book(api_a, world_a, other, "key-3")

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert not Appointment.objects.filter(patient=other).exists()


def test_keys_are_per_client(api_a, api_b, world_a, mammo_b):
    api_a.post("/api/v1/schedules", {"service": world_a.service.code}, **{"Idempotency-Key": "shared"})
    response = api_b.post("/api/v1/schedules", {"service": mammo_b.code}, **{"Idempotency-Key": "shared"})

    assert response.status_code == 201
    assert IdempotencyRecord.objects.filter(key="shared").count() == 2


@pytest.fixture
def mammo_b(facility_b, world_a):
    from tests.factories import ContractFactory

    ContractFactory(facility=facility_b, service=world_a.service)
    return world_a.service


def test_a_server_error_is_not_stored_so_the_retry_runs_again(api_a, world_a, monkeypatch):
    from apps.integration.apis import schedules

    def boom(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(schedules.scheduling, "schedule_create", boom)
    api_a.client.raise_request_exception = False
    failed = api_a.post("/api/v1/schedules", {"service": world_a.service.code}, **{"Idempotency-Key": "k5"})
    monkeypatch.undo()
    retry = api_a.post("/api/v1/schedules", {"service": world_a.service.code}, **{"Idempotency-Key": "k5"})

    assert failed.status_code == 500
    assert retry.status_code == 201


def test_an_overlong_idempotency_key_is_400(api_a, world_a):
    response = _book(api_a, world_a, PatientFactory(), "x" * 300)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


@override_settings(CER_API_RATE_LIMIT=3, CER_API_RATE_WINDOW=60)
def test_the_rate_limit_answers_429_with_retry_after_and_ratelimit_headers(api_a, api_b, db):
    responses = [api_a.get("/api/v1/services") for _ in range(4)]

    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    # The current IETF draft's fields (draft-ietf-httpapi-ratelimit-headers-09), not the 2021-22 ones.
    assert responses[0]["RateLimit-Policy"] == '"client";q=3;w=60'
    remaining, reset = re.fullmatch(r'"client";r=(\d+);t=(\d+)', responses[0]["RateLimit"]).groups()
    assert remaining == "2" and 0 < int(reset) <= 60
    assert "RateLimit-Limit" not in responses[0] and "RateLimit-Remaining" not in responses[0]
    limited = responses[3]
    assert limited["Content-Type"] == "application/problem+json"
    assert limited.json()["code"] == "rate_limited"
    assert 0 < int(limited["Retry-After"]) <= 60
    assert limited["RateLimit"].startswith('"client";r=0;')
    assert api_b.get("/api/v1/services").status_code == 200  # per client


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_size_limit_is_413(api_a, world_a):
    body = {"service": world_a.service.code, "place": "x" * 2000}

    response = api_a.post("/api/v1/schedules", body, **{"Idempotency-Key": "big"})
    plain = api_a.post("/api/v1/schedules", body)

    assert response.status_code == 413
    assert plain.status_code == 413
    assert plain["Content-Type"] == "application/problem+json"
    assert Schedule.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "malformed_request"),
        ('{"service": 12, "place": ["a"]}', "validation_error"),
        ('{"service": "MAMMO_SCR", "colour": "red"}', "validation_error"),
        ("[]", "validation_error"),
        ('"just a string"', "validation_error"),
    ],
)
def test_malformed_or_wrong_input_is_a_400_problem(api_a, world_a, body, code):
    response = api_a.post("/api/v1/schedules", body)

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert Schedule.objects.count() == 1


def test_unknown_fields_are_named_in_the_errors(api_a, world_a):
    response = api_a.post(f"/api/v1/bookings/{world_a.booking.pk}/confirm", {"force": True})

    assert response.status_code == 400
    assert response.json()["errors"] == {"force": ["Nieznane pole."]}


def test_a_non_json_body_is_415(api_a, world_a):
    response = api_a.client.post(
        "/api/v1/schedules",
        data="service=X",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {api_a.token}",
    )

    assert response.status_code == 415
    assert response["Content-Type"] == "application/problem+json"


def test_an_unknown_api_url_is_a_404_problem(api_a, db):
    response = api_a.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_with_one_key_create_one_schedule(world_a, issued_a):
    """GIVEN two threads sending the same request with the same Idempotency-Key at once,
    THEN the second waits for the first, replays its response, and one schedule exists."""
    import threading

    from django.db import connection

    from tests.factories.integration import access_token_create

    from .conftest import Api

    token = access_token_create(issued_a)
    barrier = threading.Barrier(2)
    results: list = []

    def send() -> None:
        try:
            barrier.wait()
            api = Api(token)
            results.append(
                api.post("/api/v1/schedules", {"service": world_a.service.code}, **{"Idempotency-Key": "c1"})
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(r.status_code for r in results) == [201, 201]
    assert results[0].json() == results[1].json()
    assert Schedule.objects.count() == 2  # world_a's own and exactly one new


def test_idempotency_records_are_purged_after_a_day(api_a, world_a):
    import datetime as dt

    from django.utils import timezone

    from apps.integration.tasks import idempotency_purge_task

    api_a.post("/api/v1/schedules", {"service": world_a.service.code}, **{"Idempotency-Key": "old"})
    IdempotencyRecord.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
    api_a.post(
        "/api/v1/schedules", {"service": world_a.service.code, "place": "x"}, **{"Idempotency-Key": "new"}
    )

    assert idempotency_purge_task() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@override_settings(CER_API_RATE_LIMIT=2, CER_API_RATE_WINDOW=30)
def test_the_rate_limit_counts_per_window_and_its_counter_expires_with_the_window(db):
    import datetime as dt

    import time_machine

    from apps.core.cache import redis_client as _redis
    from apps.integration.ratelimit import rate_limit_hit

    with time_machine.travel(dt.datetime(2026, 11, 23, 12, 0, 5, tzinfo=dt.UTC), tick=False):
        first, second, third = (rate_limit_hit(client_id=7) for _ in range(3))

    assert (first.remaining, second.remaining, third.remaining) == (1, 0, 0)
    assert (first.exceeded, second.exceeded, third.exceeded) == (False, False, True)
    keys = _redis().keys("cer:api-rate:7:*")
    assert len(keys) == 1 and 0 < _redis().ttl(keys[0]) <= 31


@pytest.mark.django_db(transaction=True)
def test_a_request_refused_from_committed_state_opens_no_transaction(api_a, world_a):
    """A lost race (the slot already taken) is refused before the request's transaction begins: its
    reads run without BEGIN and COMMIT and nothing is claimed. A booking's claim, write and stored
    answer still run in one transaction."""
    from django.db import connection

    ran: list[tuple[bool, str]] = []

    def record(execute, sql, params, many, context):
        ran.append((connection.in_atomic_block, str(sql)))
        return execute(sql, params, many, context)

    taken = {"slot_id": world_a.booking.slot.pk, "pesel": PatientFactory().pesel, "channel": "desk"}
    free = {"slot_id": world_a.free_slots[0].pk, "pesel": PatientFactory().pesel, "channel": "desk"}
    with connection.execute_wrapper(record):
        refused = api_a.post("/api/v1/bookings", taken, **{"Idempotency-Key": "lost-race"})
        statements_refused = list(ran)
        ran.clear()
        booked = api_a.post("/api/v1/bookings", free, **{"Idempotency-Key": "won"})

    assert (refused.status_code, booked.status_code) == (409, 201)
    assert statements_refused and not any(in_transaction for in_transaction, _ in statements_refused)
    assert not IdempotencyRecord.objects.filter(key="lost-race").exists()
    table = IdempotencyRecord._meta.db_table
    claim_and_after = [i for i, (_, sql) in enumerate(ran) if f"INSERT INTO {table}" in sql]
    assert claim_and_after and all(in_transaction for in_transaction, _ in ran[claim_and_after[0] :])
    assert IdempotencyRecord.objects.get(key="won").status_code == 201


@pytest.mark.django_db
def test_a_claim_with_a_read_claims_as_alone_and_reads_what_the_read_reads_alone(issued_a):
    from apps.integration.idempotency import idempotency_claim_reading, idempotency_store
    from apps.integration.selectors import patient_by_pesel, patient_by_pesel_read, patient_from_read
    from apps.patients.models import Patient

    client, patient = issued_a.client, PatientFactory()
    claim = {"client": client, "method": "POST", "path": "/api/v1/bookings", "digest": "d" * 64}

    record_id, first, row = idempotency_claim_reading(
        **claim, key="k1", read=patient_by_pesel_read(pesel=patient.pesel)
    )
    found = patient_from_read(row)
    assert first is None and IdempotencyRecord.objects.get(pk=record_id).key == "k1"
    fields = [f.attname for f in Patient._meta.concrete_fields]
    orm = Patient.objects.get(pesel=patient.pesel)
    plain = patient_by_pesel(pesel=patient.pesel)
    assert (
        [getattr(found, f) for f in fields]
        == [getattr(plain, f) for f in fields]
        == [getattr(orm, f) for f in fields]
    )

    _, _, nobody = idempotency_claim_reading(
        **claim, key="k2", read=patient_by_pesel_read(pesel="70010100006")
    )
    assert nobody is not None and patient_from_read(nobody) is None  # the claim stands, nothing read

    with pytest.raises(DomainError) as in_progress:  # the same key again before its answer is stored
        idempotency_claim_reading(**claim, key="k1", read=patient_by_pesel_read(pesel=patient.pesel))
    assert in_progress.value.code == "idempotency_in_progress"
    idempotency_store(record_id=record_id, status_code=201, content=b'{"id": 1}', headers={})
    again = idempotency_claim_reading(**claim, key="k1", read=patient_by_pesel_read(pesel=patient.pesel))
    assert again[0] is None and again[1].pk == record_id and again[2] is None  # a retry: no read


def test_a_keyed_desk_booking_reads_its_patient_in_the_claims_statement(api_a, world_a):
    """Five statements besides BEGIN and COMMIT: the slot-taken check, the key's claim with the patient,
    the slot's facts, the booking's write, the stored answer with the access log."""
    import datetime as dt

    from django.db import connection

    from apps.core import pesel

    ran: list[str] = []

    def record(execute, sql, params, many, context):
        if "SAVEPOINT" not in sql:  # the test's own transaction makes the request's a savepoint
            ran.append(str(sql))
        return execute(sql, params, many, context)

    patient, unknown = PatientFactory(), pesel.generate(dt.date(1960, 1, 2), "F", 4321)
    taken = {"slot_id": world_a.booking.slot.pk, "pesel": patient.pesel, "channel": "desk"}
    assert api_a.post("/api/v1/bookings", taken).status_code == 409  # the principal is now cached
    with connection.execute_wrapper(record):
        booked = _book(api_a, world_a, patient, "claim-read")
    missing = [
        api_a.post(
            "/api/v1/bookings",
            {"slot_id": world_a.free_slots[1].pk, "pesel": unknown, "channel": "desk"},
            **{"Idempotency-Key": "nobody"},
        )
        for _ in range(2)
    ]

    assert booked.status_code == 201 and booked.json()["patient"]["pesel"] == patient.pesel
    table = IdempotencyRecord._meta.db_table
    by_pesel = "p.pesel = %s"  # selectors.PATIENT_BY_PESEL_SQL
    assert len(ran) == 5 and f"INSERT INTO {table}" in ran[1] and by_pesel in ran[1]
    assert not any(by_pesel in sql for sql in ran[2:])
    assert [m.status_code for m in missing] == [404, 404]  # refused after the claim, so stored
    assert missing[0].json()["code"] == "patient_not_found" and missing[1]["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_patient_read_beforehand_is_used_only_for_its_own_pesel(facility_a):
    from apps.integration.services import patient_for_facility

    named, other = PatientFactory(), PatientFactory()
    same = patient_for_facility(
        pesel=named.pesel, confirmed=None, facility=facility_a, channel="desk", found=named
    )
    assert same is named  # no second read
    right = patient_for_facility(
        pesel=named.pesel, confirmed=None, facility=facility_a, channel="desk", found=other
    )
    assert right.pk == named.pk
