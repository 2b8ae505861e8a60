"""The open `queues` resource in the NFZ "Terminy Leczenia" shape: computed by the beat job,
checked field by field against a fixture written from the published API description."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.booking import services as booking
from apps.core.periodic import declared_tasks
from apps.opendata.models import QueueStat
from apps.opendata.tasks import queue_stats_compute_task
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    LocalityFactory,
    PatientFactory,
    RegistrationFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
    VoivodeshipFactory,
)

pytestmark = pytest.mark.django_db
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "nfz_itl_queues_v1_3.json").read_text())
JSON_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


def check_shape(value: dict, spec: dict, where: str) -> None:
    assert set(value) == set(spec), f"{where}: {sorted(set(value) ^ set(spec))}"
    for name, allowed in spec.items():
        kinds = allowed if isinstance(allowed, list) else [allowed]
        item = value[name]
        ok = any(
            item is None
            if k == "null"
            else isinstance(item, JSON_TYPES[k]) and not (k == "integer" and isinstance(item, bool))
            for k in kinds
        )
        assert ok, f"{where}.{name} = {item!r}, expected {kinds}"


@pytest.fixture
def queues_world(db):
    mammo = ServiceFactory(mammography=True)
    krakow = LocalityFactory(
        simc="0950463",
        name="Kraków",
        voivodeship=VoivodeshipFactory(teryt="12", name="małopolskie", name_en="Lesser Poland"),
        lat=50.06,
        lon=19.94,
    )
    warsaw = FacilityFactory(name="Centrum Mammografii", phone="+48 22 555 00 11")
    cracow = FacilityFactory(name="Przychodnia Krakowska", locality=krakow)
    for facility in (warsaw, cracow):
        ContractFactory(facility=facility, service=mammo)
    schedule = ScheduleFactory(facility=warsaw, service=mammo)
    first = (timezone.now() + dt.timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    if first - timezone.now() > dt.timedelta(days=3):
        first -= dt.timedelta(days=1)  # two to three days ahead whatever the hour of the run (rounded up: 3)
    slots = [SlotFactory(schedule=schedule, start=first + dt.timedelta(minutes=20 * i)) for i in range(4)]
    # Two patients booked (stable): they are waiting for their visit there.
    for slot in slots[:2]:
        booking.appointment_book(slot_id=slot.pk, patient=PatientFactory(), channel="desk")
    # One urgent patient on the waiting list naming the Warsaw facility.
    RegistrationFactory(service=mammo, status="waiting", facility=warsaw, urgent=True)
    queue_stats_compute_task()
    return {"service": mammo, "warsaw": warsaw, "cracow": cracow, "first_free": slots[2].start}


def test_the_job_is_registered_in_the_periodic_task_registry():
    names = {spec["task"] for spec in declared_tasks()}
    assert "apps.opendata.tasks.queue_stats_compute_task" in names


def test_the_job_computes_first_free_date_waiting_and_queue_per_case(queues_world):
    stable = QueueStat.objects.get(facility=queues_world["warsaw"], case=1)
    urgent = QueueStat.objects.get(facility=queues_world["warsaw"], case=2)
    assert stable.first_free_date == timezone.localdate(queues_world["first_free"])
    assert stable.awaiting == 2
    assert urgent.awaiting == 1
    assert stable.average_period_days == 3  # booked today for a visit in three days (rounded up)
    cracow = QueueStat.objects.get(facility=queues_world["cracow"], case=1)
    assert cracow.first_free_date is None and cracow.awaiting == 0


def test_the_response_matches_the_published_nfz_shape_field_by_field(client, queues_world):
    response = client.get("/opendata/queues?case=1&format=json")
    assert response.status_code == 200
    body = json.loads(response.content)
    check_shape(body, FIXTURE["envelope"], "body")
    check_shape(body["meta"], FIXTURE["meta"], "meta")
    check_shape(body["links"], FIXTURE["links"], "links")
    assert body["data"]
    for queue in body["data"]:
        check_shape(queue, FIXTURE["queue"], "queue")
        attributes = queue["attributes"]
        check_shape(attributes, FIXTURE["queue-attributes"], "attributes")
        check_shape(attributes["statistics"], FIXTURE["statistics"], "statistics")
        check_shape(attributes["statistics"]["provider-data"], FIXTURE["provider-data"], "provider-data")
        check_shape(attributes["dates"], FIXTURE["dates"], "dates")
    warsaw = next(
        q for q in body["data"] if q["attributes"]["provider-code"] == queues_world["warsaw"].nfz_code
    )
    attrs = warsaw["attributes"]
    assert attrs["case"] == 1
    assert attrs["benefit"] == "MAMMOGRAFIA PRZESIEWOWA"
    assert attrs["locality"] == "WARSZAWA"
    assert attrs["phone"] == "+48 22 555 00 11"
    assert attrs["latitude"] == pytest.approx(52.2297)
    assert attrs["dates"]["date"] == timezone.localdate(queues_world["first_free"]).isoformat()
    assert attrs["dates"]["date-situation-as-at"] == timezone.now().date().isoformat()
    assert attrs["statistics"]["provider-data"]["awaiting"] == 2
    assert attrs["statistics"]["provider-data"]["average-period"] == 3


def test_filters_case_province_benefit_and_locality(client, queues_world):
    def providers(query):
        body = json.loads(client.get(f"/opendata/queues?{query}").content)
        return sorted(q["attributes"]["provider"] for q in body["data"])

    assert providers("case=1") == ["CENTRUM MAMMOGRAFII", "PRZYCHODNIA KRAKOWSKA"]
    assert providers("case=1&province=07") == ["CENTRUM MAMMOGRAFII"]  # NFZ 07 = mazowieckie
    assert providers("case=1&province=06") == ["PRZYCHODNIA KRAKOWSKA"]  # NFZ 06 = małopolskie
    assert providers("case=1&locality=krak") == ["PRZYCHODNIA KRAKOWSKA"]
    assert providers("case=1&benefit=mammografia") == ["CENTRUM MAMMOGRAFII", "PRZYCHODNIA KRAKOWSKA"]
    assert providers("case=1&benefit=kardiologia") == []
    urgent = json.loads(client.get("/opendata/queues?case=2&province=07").content)["data"]
    assert [q["attributes"]["statistics"]["provider-data"]["awaiting"] for q in urgent] == [1]


def test_paging_with_page_and_limit_and_links(client, queues_world):
    body = json.loads(client.get("/opendata/queues?case=1&limit=1").content)
    assert body["meta"]["count"] == 2 and body["meta"]["limit"] == 1 and body["meta"]["page"] == 1
    assert len(body["data"]) == 1
    assert body["links"]["prev"] is None
    assert body["links"]["next"] == "/opendata/queues?page=2&limit=1&case=1"
    assert body["links"]["last"] == "/opendata/queues?page=2&limit=1&case=1"
    second = json.loads(client.get(body["links"]["next"]).content)
    assert second["links"]["next"] is None
    assert second["data"][0]["id"] != body["data"][0]["id"]


def test_xml_carries_the_same_document(client, queues_world):
    response = client.get("/opendata/queues?case=1&format=xml&province=07")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    root = ET.fromstring(response.content)  # noqa: S314 (our own response)
    assert root.findtext("meta/count") == "1"
    queue = root.find("data/queue")
    assert queue.findtext("attributes/provider") == "CENTRUM MAMMOGRAFII"
    assert queue.findtext("attributes/statistics/provider-data/awaiting") == "2"
    assert queue.find("attributes/regon-provider").get("nil") == "true"


@pytest.mark.parametrize(
    "query",
    [
        "",  # case is required, as in the NFZ API
        "case=3",
        "case=1&province=17",
        "case=1&limit=26",
        "case=1&page=0",
        "case=1&format=csv",
        "case=1&api-version=9",
        "case=1&colour=red",
        "case=1&benefit=%00",
        "case=1&benefit=" + "x" * 101,
    ],
)
def test_bad_parameters_are_a_400_problem(client, queues_world, query):
    response = client.get(f"/opendata/queues?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["code"] == "opendata_invalid_parameter"


def test_answers_are_cached_until_the_job_runs_again(client, queues_world):
    first = client.get("/opendata/queues?case=1&province=07")
    assert first["Cache-Control"] == "public, max-age=300"
    QueueStat.objects.filter(case=1).update(awaiting=99)  # a change outside the job
    assert client.get("/opendata/queues?case=1&province=07").content == first.content
    queue_stats_compute_task()  # a new computation is a new version: the cache key changes
    assert client.get("/opendata/queues?case=1&province=07").content != first.content


@override_settings(CER_OPENDATA_RATE_LIMIT=3, CER_OPENDATA_RATE_WINDOW=60)
def test_it_is_rate_limited_per_address(client, queues_world):
    for _ in range(3):
        assert client.get("/opendata/queues?case=1").status_code == 200
    refused = client.get("/opendata/queues?case=1")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert refused["RateLimit"].startswith('"address";r=0;')
    assert refused["RateLimit-Policy"] == '"address";q=3;w=60'
    other = client.get("/opendata/queues?case=1", REMOTE_ADDR="10.1.2.3")
    assert other.status_code == 200
