"""Open data interfaces: the public `queues` resource (NFZ "Terminy Leczenia" shape, JSON or XML)
and the staff download page of research extracts. Thin views over selectors and services."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.core.api_errors import domain_error_body
from apps.core.dbrouter import replica_reads
from apps.core.errors import DomainError
from apps.staff.permissions import EXPORT, staff_required

from . import nfz, selectors
from .ratelimit import address_hit

CACHE_SECONDS = 300
QUEUE_PARAMS = frozenset(
    {"case", "province", "benefit", "locality", "page", "limit", "format", "api-version"}
)
MAX_PAGE = 1_000_000


def _problem(exc: DomainError) -> HttpResponse:
    response = JsonResponse(
        domain_error_body(exc), status=exc.status, content_type="application/problem+json"
    )
    for name, value in exc.headers.items():
        response[name] = value
    return response


def _bad(name: str) -> DomainError:
    return DomainError("opendata_invalid_parameter", field=name, name=name)


def _text(request: HttpRequest, name: str, limit: int = 100) -> str | None:
    values = request.GET.getlist(name)
    if not values:
        return None
    value = values[-1]
    if len(values) > 1 or len(value) > limit or "\x00" in value:
        raise _bad(name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(name) from None
    return value.strip() or None


def _int(request: HttpRequest, name: str, *, default: int | None, low: int, high: int) -> int:
    raw = _text(request, name, limit=8)
    if raw is None:
        if default is None:
            raise _bad(name)
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise _bad(name)
    return int(raw)


def _queues_body(request: HttpRequest) -> tuple[dict[str, Any], str]:
    for name in request.GET:
        if name not in QUEUE_PARAMS:
            raise _bad(name[:40].encode("utf-8", "backslashreplace").decode("utf-8"))
    version = _text(request, "api-version", limit=8)
    if version not in (None, nfz.API_VERSION):
        raise _bad("api-version")
    output = _text(request, "format", limit=8) or "json"
    if output not in ("json", "xml"):
        raise _bad("format")
    case = _int(request, "case", default=None, low=1, high=2)
    page = _int(request, "page", default=1, low=1, high=MAX_PAGE)
    limit = _int(request, "limit", default=nfz.DEFAULT_LIMIT, low=1, high=nfz.MAX_LIMIT)
    province = _text(request, "province", limit=2)
    if province is not None and province not in nfz.NFZ_PROVINCE_TO_TERYT:
        raise _bad("province")
    filters = selectors.QueueFilter(
        case=case,
        province_teryt=nfz.NFZ_PROVINCE_TO_TERYT[province] if province else None,
        benefit=_text(request, "benefit"),
        locality=_text(request, "locality"),
    )
    qs = selectors.queue_stats(filters=filters)
    count = qs.count()
    rows = list(qs[(page - 1) * limit : page * limit])
    last = max(1, -(-count // limit))

    def link(to_page: int | None) -> str | None:
        if to_page is None:
            return None
        params = {k: v for k, v in request.GET.items() if k not in ("page", "limit")}
        return f"{request.path}?{urlencode({'page': to_page, 'limit': limit, **params})}"

    body = nfz.envelope(
        data=[nfz.queue(r) for r in rows],
        count=count,
        page=page,
        limit=limit,
        links={
            "first": link(1),
            "prev": link(page - 1) if page > 1 else None,
            "self": link(page),
            "next": link(page + 1) if page < last else None,
            "last": link(last),
        },
        modified=selectors.queue_stats_version(),
    )
    return body, output


@require_GET
@replica_reads()
def queues(request: HttpRequest) -> HttpResponse:
    """GET /opendata/queues?case=1&province=07&benefit=...&locality=...&page=1&limit=10[&format=xml]"""
    address = request.META.get("REMOTE_ADDR", "") or "unknown"
    rate = address_hit(address=address)
    try:
        if rate.exceeded:
            raise DomainError(
                "rate_limited", limit=rate.limit, reset=rate.reset, headers={"Retry-After": str(rate.reset)}
            )
        version = selectors.queue_stats_version()
        digest = hashlib.sha256(f"{version}|{request.GET.urlencode()}".encode()).hexdigest()
        key = f"opendata:queues:{digest}"
        cached = cache.get(key)
        if cached is None:
            body, output = _queues_body(request)
            if output == "xml":
                cached = (nfz.to_xml(body), "application/xml; charset=utf-8")
            else:
                cached = (
                    json.dumps(body, ensure_ascii=False).encode("utf-8"),
                    "application/json; charset=utf-8",
                )
            cache.set(key, cached, timeout=CACHE_SECONDS)
        response = HttpResponse(cached[0], content_type=cached[1])
        response["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    except DomainError as exc:
        response = _problem(exc)
    for name, value in rate.headers().items():
        response[name] = value
    return response


@staff_required(EXPORT)
def extracts(request: HttpRequest) -> HttpResponse:
    return render(request, "opendata/extracts.html", {"extracts": selectors.extract_list()[:50]})


@staff_required(EXPORT)
def extract_download(request: HttpRequest, extract_id: int, kind: str) -> HttpResponse:
    extract = selectors.extract_get(extract_id=extract_id)
    if extract is None or kind not in ("csv", "parquet"):
        raise Http404
    content = bytes(extract.csv if kind == "csv" else extract.parquet)
    media = "text/csv; charset=utf-8" if kind == "csv" else "application/vnd.apache.parquet"
    response = HttpResponse(content, content_type=media)
    name = f"cer-research-extract-{extract.pk}-{extract.period_from:%Y%m}-{extract.period_to:%Y%m}.{kind}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
