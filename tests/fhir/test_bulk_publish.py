"""SMART Scheduling Links STU1 bulk publication, checked against the spec's required fields
(specification.md of smart-on-fhir/smart-scheduling-links) and validated with fhir.resources."""

from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from apps.scheduling.models import Slot
from tests.factories.portal import SignedInPatientFactory

from .conftest import fhir_valid

pytestmark = pytest.mark.django_db

SMART = "http://fhir-registry.smarthealthit.org/StructureDefinition/"
# The spec's timestamp: to the second at least, with an offset (Z allowed for UTC).
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def ndjson(response) -> list[dict]:
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/fhir+ndjson"
    text = b"".join(response.streaming_content).decode()
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(line.strip() for line in text.splitlines())
    for resource in lines:
        fhir_valid(resource)
        assert ID.match(resource["id"])
    return lines


def manifest(client, query: str = ""):
    response = client.get(f"/fhir/$bulk-publish{query}")
    assert response.status_code == 200
    return response, json.loads(response.content)


def test_the_manifest_has_the_required_fields_and_one_slot_file_per_voivodeship(client, fhir_world):
    response, body = manifest(client)
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "public, max-age=300"
    assert TIMESTAMP.match(body["transactionTime"])
    assert body["request"] == "http://testserver/fhir/$bulk-publish"
    types = [o["type"] for o in body["output"]]
    assert types.count("Location") == 1 and types.count("Schedule") == 1
    slot_files = {tuple(o["extension"]["state"]): o["url"] for o in body["output"] if o["type"] == "Slot"}
    assert slot_files == {
        ("PL-12",): "http://testserver/fhir/bulk/Slot-12.ndjson",
        ("PL-14",): "http://testserver/fhir/bulk/Slot-14.ndjson",
    }
    for output in body["output"]:
        assert output["url"].startswith("http://")


def test_location_and_schedule_files_have_the_spec_fields(client, fhir_world):
    _, body = manifest(client)
    files = {o["type"]: o["url"] for o in body["output"] if o["type"] != "Slot"}
    locations = ndjson(client.get(path_of(files["Location"])))
    assert {r["id"] for r in locations} == {str(fhir_world.facility.pk), str(fhir_world.far_facility.pk)}
    for location in locations:
        assert location["resourceType"] == "Location"
        assert location["name"] and location["identifier"]
        assert location["telecom"] and all(t["system"] in ("phone", "url") for t in location["telecom"])
        assert {"line", "city", "state"} <= set(location["address"])
    schedules = ndjson(client.get(path_of(files["Schedule"])))
    by_id = {s["id"]: s for s in schedules}
    assert by_id[str(fhir_world.schedule.pk)]["actor"][0] == {
        "reference": f"Location/{fhir_world.facility.pk}"
    }
    assert all(s["serviceType"][0]["coding"] for s in schedules)


def test_slot_files_hold_free_and_busy_slots_of_their_voivodeship_with_booking_extensions(client, fhir_world):
    slots = ndjson(client.get("/fhir/bulk/Slot-14.ndjson"))
    by_id = {s["id"]: s for s in slots}
    assert set(by_id) == {str(s.pk) for s in fhir_world.free} | {str(fhir_world.booked.pk)}
    assert by_id[str(fhir_world.booked.pk)]["status"] == "busy"
    free = by_id[str(fhir_world.free[0].pk)]
    assert free["status"] == "free"
    assert free["schedule"] == {"reference": f"Schedule/{fhir_world.schedule.pk}"}
    assert TIMESTAMP.match(free["start"]) and TIMESTAMP.match(free["end"])
    ext = {e["url"]: e for e in free["extension"]}
    assert ext[SMART + "booking-phone"]["valueString"] == "+48 22 123 45 67"
    assert ext[SMART + "booking-deep-link"]["valueUrl"] == f"http://testserver/slots/{free['id']}/"
    far = ndjson(client.get("/fhir/bulk/Slot-12.ndjson"))
    assert [s["id"] for s in far] == [str(fhir_world.far_free.pk)]
    assert [e["url"] for e in far[0]["extension"]] == [SMART + "booking-deep-link"]  # no phone there


def test_the_deep_link_opens_the_patient_page_that_books_that_slot(client, fhir_world):
    slot = fhir_world.free[3]
    lines = ndjson(client.get("/fhir/bulk/Slot-14.ndjson"))
    link = next(
        e["valueUrl"]
        for s in lines
        if s["id"] == str(slot.pk)
        for e in s["extension"]
        if e["url"].endswith("deep-link")
    )
    anonymous = client.get(path_of(link))
    assert "Zaloguj" in anonymous.content.decode() or "login" in anonymous.content.decode()
    client.force_login(SignedInPatientFactory(birth_date=dt.date(1970, 5, 17), sex="F").user)
    page = client.get(path_of(link))
    assert page.status_code == 200
    assert f'action="/slots/{slot.pk}/hold/' in page.content.decode()
    held = client.post(f"/slots/{slot.pk}/hold/")
    assert held.status_code == 302
    slot.refresh_from_db()
    assert slot.status == "held"


def test_since_keeps_only_slots_changed_since_then_and_is_passed_on_by_the_manifest(client, fhir_world):
    cutoff = timezone.now() + dt.timedelta(seconds=1)
    Slot.objects.filter(pk=fhir_world.free[2].pk).update(updated_at=cutoff + dt.timedelta(minutes=1))
    since = cutoff.isoformat().replace("+", "%2B")
    _, body = manifest(client, f"?_since={since}")
    url = next(o["url"] for o in body["output"] if o.get("extension", {}).get("state") == ["PL-14"])
    assert "_since=" in url
    changed = ndjson(client.get(path_of(url)))
    assert [s["id"] for s in changed] == [str(fhir_world.free[2].pk)]
    assert client.get("/fhir/$bulk-publish?_since=yesterday").status_code == 400
    assert client.get("/fhir/bulk/Slot-14.ndjson?_since=2026-01-01").status_code == 400


def test_etag_answers_304_until_a_slot_changes(client, fhir_world):
    first = client.get("/fhir/bulk/Slot-14.ndjson")
    etag = first["ETag"]
    assert first["Cache-Control"] == "public, max-age=300"
    again = client.get("/fhir/bulk/Slot-14.ndjson", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    Slot.objects.filter(pk=fhir_world.free[0].pk).update(status="booked", updated_at=timezone.now())
    changed = client.get("/fhir/bulk/Slot-14.ndjson", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag


def test_an_unknown_voivodeship_file_is_a_404_operation_outcome(client, fhir_world):
    response = client.get("/fhir/bulk/Slot-99.ndjson")
    assert response.status_code == 404
    fhir_valid(json.loads(response.content))


def test_the_fast_line_writer_gives_the_same_instants_as_the_resource_mapper_across_dst(db):
    """The writer memoises the Warsaw offset per UTC hour: the hours around both DST changes must
    still get their own offsets (2027-03-28 02:00 -> 03:00, 2027-10-31 03:00 -> 02:00)."""
    from apps.fhir.bulk import SlotLineWriter
    from apps.fhir.resources import instant

    writer = SlotLineWriter(base="http://testserver", teryt="14")
    for day in (dt.datetime(2027, 3, 28, tzinfo=dt.UTC), dt.datetime(2027, 10, 31, tzinfo=dt.UTC)):
        for minutes in range(0, 6 * 60, 20):
            value = day + dt.timedelta(minutes=minutes)
            local, suffix = writer._local(value)
            assert f"{local.isoformat(timespec='seconds')}{suffix}" == instant(value)
