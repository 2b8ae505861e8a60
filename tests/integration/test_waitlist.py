"""The central waiting list through the facility API: join (known or new patient, referral, category,
entitlement with its document), read with the queue position, leave; scope and facility isolation."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.db import connection
from django.utils import timezone

from apps.audit.models import AccessLog
from apps.booking import services as booking
from apps.booking.models import Registration
from apps.core import partitions as core
from apps.core import pesel
from apps.outbox import partitions as outbox_partitions
from apps.outbox.models import OutboxEvent
from apps.patients.models import Patient, PatientEntitlement, Referral
from apps.scheduling.models import Slot
from tests.factories import (
    ContractFactory,
    EntitlementFactory,
    PatientFactory,
    PractitionerFactory,
    ReferralFactory,
    ScheduleFactory,
    ServiceFactory,
)
from tests.factories.integration import access_token_create, api_client_create

from .conftest import Api

NEW = pesel.generate(dt.date(1961, 4, 9), "F", 2345)
PERSON = {"first_name": "Maria", "last_name": "Wiśniewska", "phone": "+48600100200"}


def _join(api: Api, body: dict, **headers: str):
    return api.post("/api/v1/waitlist", body, **headers)


def test_a_known_patient_joins_and_the_entry_is_read_back_with_its_position(api_a, world_a):
    ahead = PatientFactory()
    booking.waitlist_join(patient=ahead, service=world_a.service)
    patient = PatientFactory()

    response = _join(
        api_a,
        {
            "pesel": patient.pesel,
            "service": world_a.service.code,
            "preferences": {"date_to": (timezone.localdate() + dt.timedelta(days=60)).isoformat()},
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "waiting" and body["position"] == 2 and body["category"] == "stable"
    assert body["patient"]["pesel"] == patient.pesel
    assert response["Location"] == f"/api/v1/waitlist/{body['id']}"
    read = api_a.get(f"/api/v1/waitlist/{body['id']}")
    assert read.status_code == 200 and read.json() == body
    entry = Registration.objects.get(pk=body["id"])
    assert entry.patient == patient and entry.status == "waiting"
    event = OutboxEvent.objects.get(type="registration.waiting", aggregate_id=entry.pk)
    assert event.facility_id == world_a.facility.pk
    assert AccessLog.objects.filter(patient=patient, actor_type="api_client").count() == 2


def test_a_new_person_is_created_through_the_registry_and_put_on_the_list(api_a, world_a):
    response = _join(api_a, {"pesel": NEW, "service": world_a.service.code, "patient": PERSON})

    assert response.status_code == 201, response.content
    patient = Patient.objects.get(pesel=NEW)
    assert patient.source == Patient.Source.FACILITY and patient.source_facility == world_a.facility
    assert patient.source_channel == "waitlist" and patient.sex == "F"
    assert Registration.objects.get(pk=response.json()["id"]).patient == patient


def test_an_unknown_pesel_without_the_person_is_404_with_the_hint(api_a, world_a):
    response = _join(api_a, {"pesel": NEW, "service": world_a.service.code})

    assert response.status_code == 404
    assert response.json()["code"] == "patient_not_found" and "`patient`" in response.json()["detail"]
    assert not Registration.objects.filter(status="waiting").exists()


def test_an_urgent_patient_with_an_entitlement_goes_first_and_the_document_is_recorded(api_a, world_a):
    stable = PatientFactory()
    booking.waitlist_join(patient=stable, service=world_a.service)
    EntitlementFactory(code="ZHDK")
    patient = PatientFactory()
    today = timezone.localdate()

    response = _join(
        api_a,
        {
            "pesel": patient.pesel,
            "service": world_a.service.code,
            "category": "urgent",
            "entitlement": {
                "code": "ZHDK",
                "document": "legitymacja ZHDK nr 123/2019",
                "valid_from": "2019-06-01",
                "valid_to": (today + dt.timedelta(days=365)).isoformat(),
            },
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["position"] == 1 and body["category"] == "urgent"
    assert body["entitlement"]["code"] == "ZHDK"
    assert body["entitlement"]["document"] == "legitymacja ZHDK nr 123/2019"
    recorded = PatientEntitlement.objects.get(patient=patient)
    assert recorded.document == "legitymacja ZHDK nr 123/2019"
    assert recorded.valid_from == dt.date(2019, 6, 1)
    assert recorded.source_facility == world_a.facility and recorded.recorded_at is not None
    entry = Registration.objects.get(pk=body["id"])
    assert entry.entitlement.code == "ZHDK" and entry.urgent


@pytest.mark.parametrize(
    ("entitlement", "code"),
    [
        ({"code": "NOPE", "document": "x", "valid_from": "2019-01-01"}, "unknown_entitlement"),
        (
            {"code": "ZHDK", "document": "x", "valid_from": "2019-01-01", "valid_to": "2020-01-01"},
            "entitlement_not_valid",
        ),
        ({"code": "ZHDK", "document": "x", "valid_from": "9999-12-31"}, "entitlement_not_valid"),
        ({"code": "ZHDK", "valid_from": "2019-01-01"}, "validation_error"),
        ({"code": "ZHDK", "document": "x" * 101, "valid_from": "2019-01-01"}, "validation_error"),
        ({"code": "ZHDK", "document": "a\u0000b", "valid_from": "2019-01-01"}, "malformed_request"),
        ({"code": "ZHDK", "document": "x", "valid_from": "10000-01-01"}, "validation_error"),
    ],
)
def test_a_bad_entitlement_is_400_and_nothing_is_recorded(api_a, world_a, entitlement, code):
    EntitlementFactory(code="ZHDK")
    patient = PatientFactory()

    response = _join(
        api_a, {"pesel": patient.pesel, "service": world_a.service.code, "entitlement": entitlement}
    )

    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not PatientEntitlement.objects.exists()
    assert not Registration.objects.filter(patient=patient).exists()


@pytest.mark.parametrize(
    ("preferences", "code"),
    [
        ({"voivodeship": "99"}, "waitlist_preference_unknown"),
        ({"locality": "0000000"}, "waitlist_preference_unknown"),
        ({"facility": "99/NO/0000"}, "waitlist_preference_unknown"),
        ({"practitioner": 999999999}, "waitlist_preference_unknown"),
        ({"date_to": "2000-01-01"}, "waitlist_window_invalid"),
        ({"date_from": "9999-12-31"}, "waitlist_window_invalid"),
        ({"date_from": "0001-01-01", "date_to": "0001-01-02"}, "waitlist_window_invalid"),
        ({"max_distance_km": 50}, "validation_error"),  # a distance needs a locality
        ({"max_distance_km": 0}, "validation_error"),
        ({"voivodeship": "mazowieckie"}, "validation_error"),
        ({"colour": "blue"}, "validation_error"),
    ],
)
def test_bad_preferences_are_400_and_change_nothing(api_a, world_a, preferences, code):
    patient = PatientFactory()

    response = _join(
        api_a, {"pesel": patient.pesel, "service": world_a.service.code, "preferences": preferences}
    )

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert not Registration.objects.filter(patient=patient).exists()


def test_preferences_are_kept_and_a_practitioner_brings_their_facility(api_a, world_a):
    practitioner = PractitionerFactory(facility=world_a.facility)
    patient = PatientFactory()

    response = _join(
        api_a,
        {
            "pesel": patient.pesel,
            "service": world_a.service.code,
            "preferences": {"voivodeship": "14", "practitioner": practitioner.pk, "date_from": "2026-01-01"},
        },
    )

    assert response.status_code == 201, response.content
    preferences = response.json()["preferences"]
    assert preferences["voivodeship"] == "14" and preferences["practitioner"] == practitioner.pk
    assert preferences["facility"] == world_a.facility.nfz_code
    assert preferences["date_from"] == "2026-01-01"


def test_an_invalid_pesel_is_400(api_a, world_a):
    response = _join(api_a, {"pesel": "12345678901", "service": world_a.service.code, "patient": PERSON})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_pesel"
    assert not Patient.objects.filter(pesel="12345678901").exists()


def test_an_unknown_service_changes_nothing(api_a, world_a):
    response = _join(api_a, {"pesel": NEW, "service": "NOPE", "patient": PERSON})

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_service"
    assert not Patient.objects.filter(pesel=NEW).exists()


def test_a_refused_join_of_a_new_person_leaves_no_patient(api_a, world_a):
    man = pesel.generate(dt.date(1961, 4, 9), "M", 2345)

    response = _join(api_a, {"pesel": man, "service": world_a.service.code, "patient": PERSON})

    assert response.status_code == 409
    assert response.json()["code"] == "not_eligible_sex"
    assert not Patient.objects.filter(pesel=man).exists()


def test_a_second_entry_for_the_same_service_is_refused_in_the_facilitys_words(api_a, world_a):
    response = _join(api_a, {"pesel": world_a.patient.pesel, "service": world_a.service.code})

    assert response.status_code == 409
    assert response.json()["code"] == "active_registration_exists"
    assert response.json()["title"].startswith("Pacjent ma już aktywną rejestrację")


@pytest.fixture
def cardiology_a(world_a):
    service = ServiceFactory()  # KARDIO_1: an e-referral is required
    ContractFactory(facility=world_a.facility, service=service)
    return service


def test_the_entry_holds_the_referral_and_leaving_frees_it(api_a, world_a, cardiology_a):
    patient = PatientFactory()
    referral = ReferralFactory(patient=patient, service=cardiology_a, category=Referral.Category.URGENT)

    joined = _join(
        api_a,
        {
            "pesel": patient.pesel,
            "service": cardiology_a.code,
            "referral_number": referral.number.lower(),
            "referral_code": referral.access_code,
        },
    )

    assert joined.status_code == 201, joined.content
    entry_id = joined.json()["id"]
    assert joined.json()["referral"] == {"number": referral.number, "status": "registered"}
    assert joined.json()["category"] == "urgent"
    referral.refresh_from_db()
    assert referral.status == Referral.Status.REGISTERED

    left = api_a.post(f"/api/v1/waitlist/{entry_id}/leave", {}, **{"Idempotency-Key": "leave-1"})
    again = api_a.post(f"/api/v1/waitlist/{entry_id}/leave", {}, **{"Idempotency-Key": "leave-1"})

    assert left.status_code == 200, left.content
    assert left.json()["status"] == "closed" and left.json()["position"] is None
    assert left.json()["closed_reason"] == "left_waitlist"
    assert left.json()["referral"]["status"] == "issued"
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    referral.refresh_from_db()
    assert referral.status == Referral.Status.ISSUED
    closed = OutboxEvent.objects.get(type="registration.closed", aggregate_id=entry_id)
    assert closed.facility_id == world_a.facility.pk
    # The freed referral books again.
    rejoined = _join(
        api_a,
        {
            "pesel": patient.pesel,
            "service": cardiology_a.code,
            "referral_number": referral.number,
            "referral_code": referral.access_code,
        },
    )
    assert rejoined.status_code == 201, rejoined.content


def test_a_referral_is_required_where_the_service_needs_one(api_a, world_a, cardiology_a):
    response = _join(api_a, {"pesel": PatientFactory().pesel, "service": cardiology_a.code})

    assert response.status_code == 400
    assert response.json()["code"] == "referral_required"


def test_leaving_an_entry_that_is_no_longer_waiting_is_409(api_a, world_a):
    patient = PatientFactory()
    entry_id = _join(api_a, {"pesel": patient.pesel, "service": world_a.service.code}).json()["id"]
    booking.waitlist_allocate_registration(registration_id=entry_id)

    read = api_a.get(f"/api/v1/waitlist/{entry_id}")
    response = api_a.post(f"/api/v1/waitlist/{entry_id}/leave", {})

    assert read.json()["status"] == "booked" and read.json()["position"] is None
    allocation = read.json()["allocation"]
    assert allocation["facility"] == world_a.facility.nfz_code and allocation["booking_id"] is not None
    assert response.status_code == 409
    assert response.json()["code"] == "waitlist_entry_not_waiting"
    assert Registration.objects.get(pk=entry_id).status == "booked"


def test_another_facility_cannot_read_or_remove_the_entry(api_a, api_b, world_a):
    entry_id = _join(api_a, {"pesel": PatientFactory().pesel, "service": world_a.service.code}).json()["id"]

    read = api_b.get(f"/api/v1/waitlist/{entry_id}")
    leave = api_b.post(f"/api/v1/waitlist/{entry_id}/leave", {})

    assert read.status_code == leave.status_code == 404
    assert read.json()["code"] == leave.json()["code"] == "waitlist_entry_not_found"
    assert Registration.objects.get(pk=entry_id).status == "waiting"


def test_an_entry_the_patient_made_is_not_visible_to_a_facility(api_a, world_a):
    own = booking.waitlist_join(patient=PatientFactory(), service=world_a.service)

    assert api_a.get(f"/api/v1/waitlist/{own.pk}").status_code == 404
    assert api_a.post(f"/api/v1/waitlist/{own.pk}/leave", {}).status_code == 404
    assert api_a.get("/api/v1/waitlist/99999999999999999999999").status_code == 404


def test_the_facility_keeps_its_entry_once_the_outbox_month_of_the_join_is_detached(api_a, world_a):
    """GIVEN an entry facility A put on the list, its join event in a month the outbox no longer keeps
    WHEN the daily job detaches that month THEN facility A still reads the entry, is still told of a
    change of its preferences, and can still remove it (who registered it is the entry's own)."""
    entry_id = _join(api_a, {"pesel": PatientFactory().pesel, "service": world_a.service.code}).json()["id"]
    january = dt.date(2020, 1, 1)
    core.partitions_ensure(outbox_partitions.EVENTS, january, january)
    OutboxEvent.objects.filter(aggregate_type="registration", aggregate_id=entry_id).update(
        created_at=dt.datetime(2020, 1, 15, tzinfo=dt.UTC)  # moved into January 2020's partition
    )
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the job's steps are transactions of their own
    today = timezone.localdate()
    keep = today.year * 12 + today.month - (2020 * 12 + 2)  # from February 2020 on

    report = outbox_partitions.partitions_maintain(now=timezone.now(), ahead=0, keep=keep)

    assert report.detached == ["outbox_outboxevent_p2020_01"]
    assert not OutboxEvent.objects.filter(aggregate_type="registration", aggregate_id=entry_id).exists()
    assert api_a.get(f"/api/v1/waitlist/{entry_id}").status_code == 200
    booking.waitlist_preferences_update(
        registration=Registration.objects.get(pk=entry_id),
        date_from=None,
        date_to=today + dt.timedelta(days=30),
        voivodeship=None,
        locality=None,
        max_distance_km=None,
        facility=None,
        practitioner=None,
    )
    changed = OutboxEvent.objects.get(type="registration.preferences_changed", aggregate_id=entry_id)
    assert changed.facility_id == world_a.facility.pk
    assert api_a.post(f"/api/v1/waitlist/{entry_id}/leave", {}).status_code == 200


def test_a_retried_join_is_replayed_not_doubled(api_a, world_a):
    body = {"pesel": NEW, "service": world_a.service.code, "patient": PERSON}

    first = _join(api_a, body, **{"Idempotency-Key": "join-1"})
    retry = _join(api_a, body, **{"Idempotency-Key": "join-1"})

    assert first.status_code == retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true" and retry.json() == first.json()
    assert Registration.objects.filter(patient__pesel=NEW).count() == 1


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/api/v1/waitlist", "waitlist:write"),
        ("GET", "/api/v1/waitlist/{id}", "waitlist:read"),
        ("POST", "/api/v1/waitlist/{id}/leave", "waitlist:write"),
    ],
)
def test_the_wrong_scope_is_403(api_a, world_a, method, path, scope):
    entry_id = _join(api_a, {"pesel": PatientFactory().pesel, "service": world_a.service.code}).json()["id"]
    others = [s for s in ("bookings:read", "bookings:write", "waitlist:read", "waitlist:write") if s != scope]
    api = Api(access_token_create(api_client_create(facility=world_a.facility, scopes=others)))

    url = path.format(id=entry_id)
    body = {"pesel": PatientFactory().pesel, "service": world_a.service.code}
    response = api.get(url) if method == "GET" else api.post(url, body)

    assert response.status_code == 403
    assert scope in response.json()["detail"]
    assert Registration.objects.filter(status="waiting").count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_allocation_of_an_entry_the_facility_made_reaches_its_changes_feed(facility_a):
    """GIVEN facility A puts a patient on the list while none of its slots is free,
    WHEN A publishes a slot and the list books it for the patient (after commit, as in production),
    THEN A's changes feed has the join and the allocation, and the entry reads as booked."""
    service = ServiceFactory(mammography=True)
    ContractFactory(facility=facility_a, service=service)
    schedule = ScheduleFactory(facility=facility_a, service=service)
    api = Api(access_token_create(api_client_create(facility=facility_a)))
    patient = PatientFactory()

    joined = _join(api, {"pesel": patient.pesel, "service": service.code})
    assert joined.status_code == 201, joined.content
    entry_id = joined.json()["id"]
    start = (timezone.now() + dt.timedelta(days=3)).replace(microsecond=0)
    published = api.post(
        f"/api/v1/schedules/{schedule.pk}/slots",
        {"slots": [{"start": start.isoformat(), "end": (start + dt.timedelta(minutes=20)).isoformat()}]},
    )
    assert published.status_code in (200, 201), published.content

    types: dict[str, dict] = {}
    deadline = time.monotonic() + 60
    while "appointment.allocated" not in types and time.monotonic() < deadline:
        for event in api.get("/api/v1/changes?limit=100").json()["results"]:
            types[event["type"]] = event
        time.sleep(0.05)

    assert types["registration.waiting"]["aggregate_id"] == entry_id
    allocated = types["appointment.allocated"]
    assert allocated["payload"]["registration_id"] == entry_id
    assert allocated["payload"]["channel"] == "waitlist"
    entry = api.get(f"/api/v1/waitlist/{entry_id}").json()
    assert entry["status"] == "booked"
    assert entry["allocation"]["booking_id"] == allocated["aggregate_id"]
    assert Slot.objects.get(schedule=schedule).status == "booked"
