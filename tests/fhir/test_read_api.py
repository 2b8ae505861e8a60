"""The public FHIR R4 read API: every body validated by fhir.resources (R4B), paging by `next`
links, OperationOutcome for every refusal, and a CapabilityStatement that lists exactly what is
exercised here."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache

from apps.fhir.models import ServiceCoding
from apps.fhir.resources import SERVICE_SYSTEM

from .conftest import fhir_json, fhir_valid

pytestmark = pytest.mark.django_db

# Every (resource, interaction or search parameter) these tests (and test_appointments.py) exercise.
EXERCISED = {
    ("Location", "read"),
    ("Location", "search-type"),
    ("Location", "_count"),
    ("HealthcareService", "read"),
    ("HealthcareService", "search-type"),
    ("HealthcareService", "_count"),
    ("Schedule", "read"),
    ("Schedule", "search-type"),
    ("Schedule", "service-type"),
    ("Schedule", "_count"),
    ("Slot", "read"),
    ("Slot", "search-type"),
    ("Slot", "service-type"),
    ("Slot", "start"),
    ("Slot", "status"),
    ("Slot", "schedule"),
    ("Slot", "_count"),
    ("Appointment", "read"),
    ("Appointment", "search-type"),
    ("Appointment", "date"),
    ("Appointment", "status"),
    ("Appointment", "_count"),
    ("CodeSystem", "read"),
}


def entries(body):
    return [e["resource"] for e in body.get("entry", [])]


def next_link(body):
    return next((link["url"] for link in body["link"] if link["relation"] == "next"), None)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_the_capability_statement_lists_exactly_what_the_tests_exercise(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = fhir_json(response)
    listed = set()
    for resource in statement["rest"][0]["resource"]:
        listed |= {(resource["type"], i["code"]) for i in resource["interaction"]}
        listed |= {(resource["type"], p["name"]) for p in resource.get("searchParam", [])}
    assert listed == EXERCISED
    assert statement["fhirVersion"] == "4.0.1"
    assert [op["name"] for op in statement["rest"][0]["operation"]] == ["bulk-publish"]


def test_locations_carry_address_position_and_phone_and_page_with_next_links(client, fhir_world):
    first = fhir_json(client.get("/fhir/Location?_count=1"))
    assert first["type"] == "searchset"
    assert len(entries(first)) == 1
    second = fhir_json(client.get(path_of(next_link(first))))
    assert next_link(second) is None
    got = {r["id"]: r for r in entries(first) + entries(second)}
    assert set(got) == {str(fhir_world.facility.pk), str(fhir_world.far_facility.pk)}
    near = got[str(fhir_world.facility.pk)]
    assert near["address"]["city"] == "Warszawa"
    assert near["address"]["state"] == "PL-14"
    assert near["position"]["latitude"] == pytest.approx(52.2297)
    assert {"system": "phone", "value": "+48 22 123 45 67"} in near["telecom"]
    assert near["identifier"][0]["value"] == fhir_world.facility.nfz_code
    read = fhir_json(client.get(f"/fhir/Location/{fhir_world.far_facility.pk}"))
    assert read["address"]["state"] == "PL-12"


def test_healthcare_services_are_the_contracted_services_with_our_code_system_and_nfz_codes(
    client, fhir_world
):
    ServiceCoding.objects.create(
        service=fhir_world.service,
        system="https://nfz.gov.pl/benefit",
        code="MAMMO-NFZ",
        display="Mammografia",
    )
    first = fhir_json(client.get("/fhir/HealthcareService?_count=2"))
    assert len(entries(first)) == 2
    rest = fhir_json(client.get(path_of(next_link(first))))
    ids = {r["id"] for r in entries(first) + entries(rest)}
    f, far = fhir_world.facility.pk, fhir_world.far_facility.pk
    s, o = fhir_world.service.pk, fhir_world.other_service.pk
    assert ids == {f"{f}-{s}", f"{f}-{o}", f"{far}-{s}", f"{far}-{o}"}
    one = fhir_json(client.get(f"/fhir/HealthcareService/{f}-{s}"))
    codings = one["type"][0]["coding"]
    assert {"system": SERVICE_SYSTEM, "code": "MAMMO_SCR", "display": "Mammografia przesiewowa"} in codings
    assert {"system": "https://nfz.gov.pl/benefit", "code": "MAMMO-NFZ", "display": "Mammografia"} in codings
    assert one["location"] == [{"reference": f"Location/{f}"}]


def test_the_service_code_system_is_published(client, fhir_world):
    body = fhir_json(client.get("/fhir/CodeSystem/service-type"))
    assert body["url"] == SERVICE_SYSTEM
    assert {c["code"] for c in body["concept"]} == {"MAMMO_SCR", "KARDIO_1"}


def test_schedules_search_by_service_type(client, fhir_world):
    body = fhir_json(client.get(f"/fhir/Schedule?service-type={SERVICE_SYSTEM}|MAMMO_SCR&_count=10"))
    assert [r["id"] for r in entries(body)] == [str(fhir_world.schedule.pk)]
    schedule = fhir_json(client.get(f"/fhir/Schedule/{fhir_world.schedule.pk}"))
    assert {"reference": f"Location/{fhir_world.facility.pk}"} in schedule["actor"]
    assert schedule["comment"] == "Pracownia 2"


def test_slot_search_filters_by_service_start_status_and_schedule_and_pages(client, fhir_world):
    w = fhir_world
    start = w.free[1].start.isoformat()
    end = w.free[4].start.isoformat()
    query = {
        "service-type": "MAMMO_SCR",
        "status": "free",
        "schedule": f"Schedule/{w.schedule.pk}",
        "_count": "2",
    }
    url = "/fhir/Slot?" + "&".join(f"{k}={v}" for k, v in query.items())
    url += "&start=ge" + start.replace("+", "%2B") + "&start=lt" + end.replace("+", "%2B")
    page1 = fhir_json(client.get(url))
    assert [r["id"] for r in entries(page1)] == [str(w.free[1].pk), str(w.free[2].pk)]
    nxt = next_link(page1)
    assert parse_qs(urlsplit(nxt).query)["_count"] == ["2"]
    page2 = fhir_json(client.get(path_of(nxt)))
    assert [r["id"] for r in entries(page2)] == [str(w.free[3].pk)]
    assert next_link(page2) is None
    slot = entries(page1)[0]
    assert slot["status"] == "free"
    assert slot["start"].endswith(("+01:00", "+02:00"))
    urls = {e["url"] for e in slot["extension"]}
    assert urls == {
        "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link",
        "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-phone",
    }
    busy = fhir_json(client.get("/fhir/Slot?status=busy"))
    assert [r["id"] for r in entries(busy)] == [str(w.booked.pk)]
    assert "extension" not in entries(busy)[0]
    other = fhir_json(client.get("/fhir/Slot?service-type=KARDIO_1"))
    assert [r["id"] for r in entries(other)] == [str(w.far_free.pk)]
    read = fhir_json(client.get(f"/fhir/Slot/{w.free[0].pk}"))
    assert read["schedule"] == {"reference": f"Schedule/{w.schedule.pk}"}


@pytest.mark.parametrize(
    ("url", "status", "issue"),
    [
        ("/fhir/Slot?colour=red", 400, "invalid"),
        ("/fhir/Slot?start=2026-01-01", 400, "invalid"),
        ("/fhir/Slot?start=ge0000-01-01", 400, "invalid"),
        ("/fhir/Slot?start=ge9999-12-31T23:59:59-14:00", 400, "invalid"),
        ("/fhir/Slot?start=lt0001-01-01T00:00:00%2B14:00", 400, "invalid"),
        ("/fhir/Slot?status=%00", 400, "invalid"),
        ("/fhir/Slot?status=%ED%A0%80", 400, "invalid"),
        ("/fhir/Slot?status=gone", 400, "invalid"),
        ("/fhir/Slot?_count=0", 400, "invalid"),
        ("/fhir/Slot?_count=501", 400, "invalid"),
        ("/fhir/Slot?_cursor=garbage", 400, "invalid"),
        ("/fhir/Slot?schedule=Schedule/x", 400, "invalid"),
        ("/fhir/Slot?service-type=http://other|X", 400, "invalid"),
        ("/fhir/Slot/999999999", 404, "not-found"),
        ("/fhir/Slot/abc", 404, "not-found"),
        ("/fhir/Location/1-2", 404, "not-found"),
        ("/fhir/HealthcareService/1", 404, "not-found"),
        ("/fhir/CodeSystem/other", 404, "not-found"),
        ("/fhir/Patient/1", 404, "not-found"),
    ],
)
def test_bad_requests_get_an_operation_outcome_never_a_500(client, fhir_world, url, status, issue):
    response = client.get(url)
    assert response.status_code == status
    body = fhir_json(response)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == issue


def test_errors_speak_the_requests_language(client, fhir_world):
    pl = fhir_json(client.get("/fhir/Slot?colour=red", HTTP_ACCEPT_LANGUAGE="pl"))
    en = fhir_json(client.get("/fhir/Slot?colour=red", HTTP_ACCEPT_LANGUAGE="en"))
    assert pl["issue"][0]["diagnostics"] == "Nieobsługiwany parametr wyszukiwania: colour."
    assert en["issue"][0]["diagnostics"] == "Unsupported search parameter: colour."


def test_writes_are_refused_with_an_operation_outcome(client, fhir_world):
    response = client.post("/fhir/Slot", data="{}", content_type="application/fhir+json")
    assert response.status_code == 405
    assert fhir_json(response)["issue"][0]["code"] == "not-supported"


def test_public_resources_are_cached(client, fhir_world):
    first = client.get(f"/fhir/Location/{fhir_world.facility.pk}")
    assert first["Cache-Control"] == "public, max-age=60"
    fhir_world.facility.name = "Renamed"
    fhir_world.facility.save()
    again = json.loads(client.get(f"/fhir/Location/{fhir_world.facility.pk}").content)
    assert again["name"] != "Renamed"  # served from the cache for max-age
    cache.clear()
    fresh = json.loads(client.get(f"/fhir/Location/{fhir_world.facility.pk}").content)
    assert fresh["name"] == "Renamed"


def test_every_bundle_entry_validates_as_its_resource(client, fhir_world):
    for url in ("/fhir/Location", "/fhir/HealthcareService", "/fhir/Schedule", "/fhir/Slot"):
        body = fhir_json(client.get(url))
        assert body["entry"], url
        for entry in body["entry"]:
            fhir_valid(entry["resource"])


SAMPLE_VALUES = {
    "_count": "2",
    "service-type": "MAMMO_SCR",
    "start": "ge2026-01-01",
    "date": "ge2026-01-01",
    "status": {"Slot": "free", "Appointment": "booked"},
    "schedule": None,  # filled from the world
}


def test_the_capability_statement_tells_the_truth_about_each_search_parameter(client, fhir_world):
    """Each listed parameter is accepted (200, a valid Bundle); each resource refuses a parameter the
    statement does not list; each listed read answers a known id."""
    from tests.factories.integration import access_token_create, api_client_create

    token = access_token_create(api_client_create(facility=fhir_world.facility))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    ids = {
        "Location": fhir_world.facility.pk,
        "HealthcareService": f"{fhir_world.facility.pk}-{fhir_world.service.pk}",
        "Schedule": fhir_world.schedule.pk,
        "Slot": fhir_world.free[0].pk,
        "Appointment": fhir_world.appointment.pk,
        "CodeSystem": "service-type",
    }
    statement = fhir_json(client.get("/fhir/metadata"))
    for resource in statement["rest"][0]["resource"]:
        name = resource["type"]
        headers = auth if name == "Appointment" else {}
        interactions = {i["code"] for i in resource["interaction"]}
        if "read" in interactions:
            assert client.get(f"/fhir/{name}/{ids[name]}", **headers).status_code == 200, name
        if "search-type" not in interactions:
            assert client.get(f"/fhir/{name}", **headers).status_code == 404, name
            continue
        for param in resource["searchParam"]:
            value = SAMPLE_VALUES[param["name"]]
            if isinstance(value, dict):
                value = value[name]
            if param["name"] == "schedule":
                value = f"Schedule/{fhir_world.schedule.pk}"
            response = client.get(f"/fhir/{name}?{param['name']}={value}", **headers)
            assert response.status_code == 200, (name, param["name"])
            assert fhir_json(response)["type"] == "searchset"
        refused = client.get(f"/fhir/{name}?identifier=x", **headers)
        assert refused.status_code == 400, name
