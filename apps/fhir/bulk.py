"""SMART Scheduling Links (STU1) bulk publication: `/fhir/$bulk-publish` and its NDJSON files.

The manifest lists one Location file, one Schedule file and one Slot file per voivodeship (the
`state` extension of each output names it as ISO 3166-2:PL, so a slot finder working in one region
downloads only that region). Files are streamed (StreamingHttpResponse over a server-side cursor,
`selectors.bulk_slot_rows`), so a national Slot file costs the same memory as a small one.

Freshness: `Cache-Control: max-age` tells clients how often to poll (the spec's hint); each file has
an ETag made from the row count and the newest `updated_at` of what it holds (slot changes by the
booking services set `updated_at`), and `If-None-Match` with it answers 304 without streaming.
`_since` (a FHIR instant) keeps only slots changed since then, for incremental clients.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Max, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils import timezone

from apps.core.errors import DomainError
from apps.scheduling.models import Slot

from . import params, resources, selectors
from .views import FHIR_JSON, base_url, fhir_response, fhir_view

NDJSON = "application/fhir+ndjson"
MAX_AGE = 300


def _since(request: HttpRequest) -> dt.datetime | None:
    raw = params.single(request.GET, "_since")
    if raw is None:
        return None
    if len(raw) <= 10:  # the spec asks for a full timestamp
        raise DomainError("fhir_invalid_parameter", field="_since", name="_since")
    return params._instant("_since", raw)


def _with_since(url: str, since: str | None) -> str:
    from urllib.parse import urlencode

    return f"{url}?{urlencode({'_since': since})}" if since else url


@fhir_view
def manifest(request: HttpRequest) -> HttpResponse:
    params.check_known(request.GET, frozenset({"_since"}))
    _since(request)  # validated here so a bad value fails at the manifest
    since = request.GET.get("_since")
    base = base_url(request)
    output: list[dict[str, Any]] = [
        {"type": "Location", "url": _with_since(base + reverse("fhir:bulk_locations"), None)},
        {"type": "Schedule", "url": _with_since(base + reverse("fhir:bulk_schedules"), None)},
    ]
    for voivodeship in selectors.voivodeship_list():
        output.append(
            {
                "type": "Slot",
                "url": _with_since(base + reverse("fhir:bulk_slots", args=[voivodeship.teryt]), since),
                "extension": {"state": [resources.state_code(voivodeship.teryt)]},
            }
        )
    body = {
        "transactionTime": resources.instant(timezone.now()),
        "request": request.build_absolute_uri(),
        "output": output,
        "error": [],
    }
    response = fhir_response(body)
    # The manifest is JSON (the spec: with no Accept header or Accept: application/json alike).
    response["Content-Type"] = (
        "application/json; charset=utf-8" if "fhir" not in request.headers.get("Accept", "") else FHIR_JSON
    )
    response["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return response


def _etag(*parts: Any) -> str:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f'"{digest}"'


def _fingerprint(qs: QuerySet[Any], field: str = "updated_at") -> tuple[int, str]:
    agg = qs.aggregate(n=Count("pk"), newest=Max(field))
    return agg["n"], agg["newest"].isoformat() if agg["newest"] else ""


def _not_modified(request: HttpRequest, etag: str) -> bool:
    given = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, f"W/{etag}", "*") for tag in given.split(","))


def _stream(request: HttpRequest, lines: Iterator[str], etag: str) -> HttpResponseBase:
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={MAX_AGE}"}
    response: HttpResponseBase
    if _not_modified(request, etag):
        response = HttpResponse(status=304)
    else:
        response = StreamingHttpResponse(lines, content_type=NDJSON)
    for name, value in headers.items():
        response[name] = value
    return response


def _line(resource: dict[str, Any]) -> str:
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n"


@fhir_view
def locations_file(request: HttpRequest) -> HttpResponseBase:
    params.check_known(request.GET, frozenset())
    qs = selectors.facility_list()
    base = base_url(request)

    def lines() -> Iterator[str]:
        for facility in qs.iterator(chunk_size=2000):
            yield _line(resources.location(facility, base=base))

    return _stream(request, _chunked(lines()), _etag("Location", *_fingerprint(qs)))


@fhir_view
def schedules_file(request: HttpRequest) -> HttpResponseBase:
    params.check_known(request.GET, frozenset())
    qs = selectors.schedule_list()
    codings = selectors.service_codings()

    def lines() -> Iterator[str]:
        for row in qs.iterator(chunk_size=2000):
            yield _line(resources.schedule(row, codings.get(row.service_id, [])))

    return _stream(request, _chunked(lines()), _etag("Schedule", *_fingerprint(qs)))


class SlotLineWriter:
    """One Slot NDJSON line per row. What repeats is serialised once and kept: the service codings
    per service, the facility's phone and city per facility, the booking extension per (service,
    facility, day), the Warsaw offset per UTC hour. At national size this loop is the export's
    cost (docs/performance.md, section f); the memo of extensions is emptied when it reaches
    `MEMO_LIMIT` entries, so memory stays bounded whatever the number of slots."""

    MEMO_LIMIT = 20_000

    def __init__(self, *, base: str, teryt: str) -> None:
        self.base = base
        self.teryt = teryt
        self.services = {
            s.pk: json.dumps([resources.service_concept(s)], ensure_ascii=False, separators=(",", ":"))
            for s in selectors.service_list()
        }
        self.facilities: dict[int, tuple[str, str]] = {}
        self.extensions: dict[tuple[int, int, dt.date], str] = {}
        self.offsets: dict[int, tuple[dt.timedelta, str]] = {}

    def _facility(self, facility_id: int) -> tuple[str, str]:
        found = self.facilities.get(facility_id)
        if found is None:
            facility = selectors.facility_get(facility_id=facility_id)
            phone = facility.phone if facility else ""
            city = facility.locality.name if facility else ""
            found = self.facilities[facility_id] = (phone, city)
        return found

    def _local(self, value: dt.datetime) -> tuple[dt.datetime, str]:
        """(Warsaw wall-clock time, offset suffix); the offset looked up once per UTC hour."""
        hour = int(value.timestamp()) // 3600
        found = self.offsets.get(hour)
        if found is None:
            local = value.astimezone(resources.WARSAW)
            offset = local.utcoffset() or dt.timedelta(0)
            found = self.offsets[hour] = (offset, local.isoformat()[-6:])
        return (value + found[0]).replace(tzinfo=None), found[1]

    def _extension(self, row: selectors.BulkSlotRow, day: dt.date) -> str:
        """The extension JSON of a free slot: memoised per service, facility and day with the slot id
        as a placeholder, so each line costs one str.replace (the deep link names the slot)."""
        key = (row.service_id, row.facility_id, day)
        found = self.extensions.get(key)
        if found is None:
            if len(self.extensions) >= self.MEMO_LIMIT:
                self.extensions.clear()
            phone, _city = self._facility(row.facility_id)
            link = resources.deep_link(base=self.base, slot_id=SLOT_ID)
            extension = [{"url": resources.BOOKING_DEEP_LINK, "valueUrl": link}]
            if phone:
                extension.append({"url": resources.BOOKING_PHONE, "valueString": phone})
            found = self.extensions[key] = json.dumps(extension, ensure_ascii=False, separators=(",", ":"))
        return found.replace(SLOT_ID, str(row.id), 1)

    def line(self, row: selectors.BulkSlotRow) -> str:
        start, suffix = self._local(row.start)
        end, end_suffix = self._local(row.end)
        free = row.status == Slot.Status.FREE
        status = "free" if free else "busy"
        head = (
            f'{{"resourceType":"Slot","id":"{row.id}","serviceType":{self.services[row.service_id]},'
            f'"schedule":{{"reference":"Schedule/{row.schedule_id}"}},"status":"{status}",'
            f'"start":"{start.isoformat(timespec="seconds")}{suffix}",'
            f'"end":"{end.isoformat(timespec="seconds")}{end_suffix}"'
        )
        if not free:
            return head + "}\n"
        return head + ',"extension":' + self._extension(row, start.date()) + "}\n"


SLOT_ID = "__cer_slot_id__"  # the deep link's placeholder in a memoised extension
LINES_PER_CHUNK = 500  # one write of ~300 kB instead of a write per line


def _chunked(lines: Iterator[str]) -> Iterator[str]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= LINES_PER_CHUNK:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


@fhir_view
def slots_file(request: HttpRequest, teryt: str) -> HttpResponseBase:
    params.check_known(request.GET, frozenset({"_since"}))
    if not selectors.voivodeship_list().filter(pk=teryt).exists():
        raise DomainError("fhir_resource_not_found", resource="Slot file", id=teryt[:4])
    since = _since(request)
    now = timezone.now()
    qs = Slot.objects.filter(
        voivodeship_id=teryt,
        kind=Slot.Kind.FIRST,
        status__in=selectors.BULK_SLOT_STATES,
        end__gt=now,
        schedule__active=True,
    )
    if since is not None:
        qs = qs.filter(updated_at__gte=since)
    # Count and newest change: any booking, release or new slot changes it, and so does a slot
    # passing into history (it leaves the file).
    etag = _etag("Slot", teryt, since.isoformat() if since else "", *_fingerprint(qs))
    writer = SlotLineWriter(base=base_url(request), teryt=teryt)

    def lines() -> Iterator[str]:
        for row in selectors.bulk_slot_rows(voivodeship=teryt, since=since, now=now):
            yield writer.line(row)

    return _stream(request, _chunked(lines()), etag)
