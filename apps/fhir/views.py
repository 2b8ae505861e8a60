"""The FHIR R4 read API under /fhir/: thin views over `selectors` and `resources`.

Public resources (everything but Appointment) need no credentials and are cached (Redis, per URL
and language) for `PUBLIC_MAX_AGE` seconds; the same figure is sent as Cache-Control. Appointment is
for facility systems: the integration API's OAuth token, its facility scope and the
`bookings:read` scope, and every answer that carries a patient is written to the audit log.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils import timezone
from django.views.decorators.cache import cache_page
from rest_framework import exceptions

from apps.audit.services import access_record
from apps.core.errors import DomainError
from apps.integration.auth import ApiClientAuthentication, ApiPrincipal
from apps.integration.ratelimit import rate_limit_for_request
from apps.integration.selectors import FacilityScope, cursor_encode

from . import params, resources, selectors

FHIR_JSON = "application/fhir+json; charset=utf-8"
PUBLIC_MAX_AGE = 60
APPOINTMENT_SCOPE = "bookings:read"

ISSUE_TYPE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported"}


class FhirDenied(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def fhir_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status, content_type=FHIR_JSON
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def outcome_response(status: int, error_code: str, message: str, headers: dict[str, str] | None = None):
    body = resources.operation_outcome(
        code=ISSUE_TYPE.get(status, "throttled" if status == 429 else "processing"),
        diagnostics=message,
        error_code=error_code,
    )
    return fhir_response(body, status=status, headers=headers)


def fhir_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """GET (and HEAD) only; every refusal an OperationOutcome in the request's language."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method not in ("GET", "HEAD"):
            response = outcome_response(405, "method_not_allowed", "GET only")
            response["Allow"] = "GET, HEAD"
            return response
        try:
            return view(request, *args, **kwargs)
        except DomainError as exc:
            return outcome_response(exc.status, exc.code, exc.message, exc.headers)
        except FhirDenied as exc:
            return outcome_response(exc.status, exc.code, exc.message, exc.headers)

    return wrapper


def public(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    cached = cache_page(PUBLIC_MAX_AGE, key_prefix="fhir")(fhir_view(view))

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = cached(request, *args, **kwargs)
        if response.status_code == 200:
            response["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE}"
        return response

    return wrapper


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def _page_url(request: HttpRequest, cursor: str | None) -> str:
    query: QueryDict = request.GET.copy()
    query.pop("_cursor", None)
    if cursor is not None:
        query["_cursor"] = cursor
    encoded = query.urlencode()
    return request.build_absolute_uri(request.path) + (f"?{encoded}" if encoded else "")


def _bundle(request: HttpRequest, found: list[dict[str, Any]], next_cursor: str | None) -> HttpResponse:
    body = resources.searchset(
        resources=found,
        base=base_url(request),
        self_url=_page_url(request, request.GET.get("_cursor")),
        next_url=_page_url(request, next_cursor) if next_cursor else None,
    )
    return fhir_response(body)


def not_found(resource: str, ident: str) -> DomainError:
    safe = ident[:40].encode("utf-8", "backslashreplace").decode("utf-8")
    return DomainError("fhir_resource_not_found", resource=resource, id=safe)


def _int_id(resource: str, ident: str) -> int:
    if not ident.isascii() or not ident.isdigit() or len(ident) > 18:
        raise not_found(resource, ident)
    return int(ident)


# --- metadata -------------------------------------------------------------------------------------

SEARCH_PARAMS: dict[str, list[tuple[str, str]]] = {
    "Location": [("_count", "number")],
    "HealthcareService": [("_count", "number")],
    "Schedule": [("service-type", "token"), ("_count", "number")],
    "Slot": [
        ("service-type", "token"),
        ("start", "date"),
        ("status", "token"),
        ("schedule", "reference"),
        ("_count", "number"),
    ],
    "Appointment": [("date", "date"), ("status", "token"), ("_count", "number")],
}


def capability_statement(base: str) -> dict[str, Any]:
    """What this server does, and nothing more: each interaction and parameter listed is tested."""
    rest_resources: list[dict[str, Any]] = []
    for name, search in SEARCH_PARAMS.items():
        entry: dict[str, Any] = {
            "type": name,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": p, "type": t} for p, t in search],
        }
        if name == "Appointment":
            entry["documentation"] = (
                "Facility systems only: OAuth 2 bearer token of the integration API with the "
                "bookings:read scope; only the caller's facility's appointments; every read is audited."
            )
        rest_resources.append(entry)
    rest_resources.append({"type": "CodeSystem", "interaction": [{"code": "read"}]})
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": timezone.now().date().isoformat(),
        "publisher": "Narodowy Fundusz Zdrowia - Centralna e-Rejestracja",
        "kind": "instance",
        "implementation": {"description": "CeR FHIR R4 read API", "url": f"{base}/fhir"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": (
                        "Public resources need no credentials; Appointment needs a facility token."
                    ),
                },
                "resource": rest_resources,
                "operation": [
                    {"name": "bulk-publish", "definition": f"{base}/fhir/OperationDefinition/bulk-publish"}
                ],
            }
        ],
    }


@public
def metadata(request: HttpRequest) -> HttpResponse:
    params.check_known(request.GET, frozenset())
    return fhir_response(capability_statement(base_url(request)))


@public
def code_system_read(request: HttpRequest, ident: str) -> HttpResponse:
    if ident != "service-type":
        raise not_found("CodeSystem", ident)
    return fhir_response(resources.code_system(list(selectors.service_list())))


# --- Location -------------------------------------------------------------------------------------


@public
def location_read(request: HttpRequest, ident: str) -> HttpResponse:
    facility = selectors.facility_get(facility_id=_int_id("Location", ident))
    if facility is None:
        raise not_found("Location", ident)
    return fhir_response(resources.location(facility, base=base_url(request)))


@public
def location_search(request: HttpRequest) -> HttpResponse:
    params.check_known(request.GET, frozenset())
    count = params.count(request.GET)
    after = params.cursor(request.GET, (int,))
    qs = selectors.facility_list()
    if after is not None:
        qs = qs.filter(pk__gt=after[0])
    rows = list(qs[: count + 1])
    more = len(rows) > count
    rows = rows[:count]
    base = base_url(request)
    found = [resources.location(f, base=base) for f in rows]
    return _bundle(request, found, cursor_encode(rows[-1].pk) if more else None)


# --- HealthcareService ----------------------------------------------------------------------------


def _contracts_by_key() -> dict[tuple[int, int], Any]:
    out: dict[tuple[int, int], Any] = {}
    for contract in selectors.contract_list(on=timezone.localdate()):
        out.setdefault((contract.facility_id, contract.service_id), contract)
    return out


@public
def healthcare_service_read(request: HttpRequest, ident: str) -> HttpResponse:
    facility_part, _, service_part = ident.partition("-")
    if not (
        facility_part.isascii()
        and facility_part.isdigit()
        and service_part.isascii()
        and service_part.isdigit()
    ):
        raise not_found("HealthcareService", ident)
    if len(ident) > 40:
        raise not_found("HealthcareService", ident)
    contract = (
        selectors.contract_list(on=timezone.localdate())
        .filter(facility_id=int(facility_part), service_id=int(service_part))
        .first()
    )
    if contract is None:
        raise not_found("HealthcareService", ident)
    codings = selectors.service_codings().get(contract.service_id, [])
    return fhir_response(resources.healthcare_service(contract, codings))


@public
def healthcare_service_search(request: HttpRequest) -> HttpResponse:
    params.check_known(request.GET, frozenset())
    count = params.count(request.GET)
    after = params.cursor(request.GET, (int, int))
    keys = sorted(_contracts_by_key().items())
    if after is not None:
        keys = [item for item in keys if item[0] > (after[0], after[1])]
    page, more = keys[:count], len(keys) > count
    codings = selectors.service_codings()
    found = [resources.healthcare_service(c, codings.get(c.service_id, [])) for _, c in page]
    return _bundle(request, found, cursor_encode(*page[-1][0]) if more else None)


# --- Schedule -------------------------------------------------------------------------------------


def _service_ids(request: HttpRequest) -> tuple[int, ...] | None:
    raw = params.single(request.GET, "service-type")
    if raw is None:
        return None
    codes = [
        params.token_code(part, system=resources.SERVICE_SYSTEM, name="service-type")
        for part in raw.split(",")
    ]
    return tuple(selectors.service_list().filter(code__in=codes).values_list("pk", flat=True))


@public
def schedule_read(request: HttpRequest, ident: str) -> HttpResponse:
    row = selectors.schedule_list().filter(pk=_int_id("Schedule", ident)).first()
    if row is None:
        raise not_found("Schedule", ident)
    return fhir_response(resources.schedule(row, selectors.service_codings().get(row.service_id, [])))


@public
def schedule_search(request: HttpRequest) -> HttpResponse:
    params.check_known(request.GET, frozenset({"service-type"}))
    count = params.count(request.GET)
    after = params.cursor(request.GET, (int,))
    service_ids = _service_ids(request)
    qs = selectors.schedule_list()
    if service_ids is not None:
        qs = qs.filter(service_id__in=service_ids)
    if after is not None:
        qs = qs.filter(pk__gt=after[0])
    rows = list(qs[: count + 1])
    more = len(rows) > count
    rows = rows[:count]
    codings = selectors.service_codings()
    found = [resources.schedule(r, codings.get(r.service_id, [])) for r in rows]
    return _bundle(request, found, cursor_encode(rows[-1].pk) if more else None)


# --- Slot -----------------------------------------------------------------------------------------


def _slot_resources(request: HttpRequest, rows: list[Any]) -> list[dict[str, Any]]:
    facilities = {f.pk: f for f in selectors.facility_list().filter(pk__in={r.facility_id for r in rows})}
    base = base_url(request)
    out = []
    for row in rows:
        facility = facilities.get(row.facility_id)
        phone = facility.phone if facility else ""
        out.append(resources.slot(row, base=base, phone=phone))
    return out


@public
def slot_read(request: HttpRequest, ident: str) -> HttpResponse:
    row = selectors.slot_get(slot_id=_int_id("Slot", ident))
    if row is None:
        raise not_found("Slot", ident)
    return fhir_response(_slot_resources(request, [row])[0])


@public
def slot_search(request: HttpRequest) -> HttpResponse:
    query = request.GET
    params.check_known(query, frozenset({"service-type", "start", "status", "schedule"}))
    count = params.count(query)
    after = params.cursor(query, (dt.datetime, int))
    start_ge, start_lt = params.date_range(query, "start")
    states: tuple[str, ...] = selectors.PUBLIC_SLOT_STATES
    raw_status = params.single(query, "status")
    if raw_status is not None:
        wanted: list[str] = []
        for code in raw_status.split(","):
            if code not in selectors.FHIR_SLOT_STATUS:
                raise DomainError("fhir_invalid_parameter", field="status", name="status")
            wanted.extend(selectors.FHIR_SLOT_STATUS[code])
        states = tuple(wanted)
    raw_schedule = params.single(query, "schedule")
    schedule_id = (
        params.reference_id(raw_schedule, resource="Schedule", name="schedule") if raw_schedule else None
    )
    slot_query = selectors.SlotQuery(
        service_ids=_service_ids(request),
        start_ge=start_ge,
        start_lt=start_lt,
        states=states,
        schedule_id=schedule_id,
        after=(after[0], after[1]) if after else None,
    )
    rows, more = selectors.slot_page(query=slot_query, count=count)
    next_cursor = cursor_encode(rows[-1].start.isoformat(), rows[-1].pk) if more else None
    return _bundle(request, _slot_resources(request, rows), next_cursor)


# --- Appointment (facility systems) ---------------------------------------------------------------


def _principal(request: HttpRequest) -> ApiPrincipal:
    try:
        authenticated = ApiClientAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed as exc:
        raise FhirDenied(
            401, "authentication_failed", str(exc.detail), {"WWW-Authenticate": 'Bearer realm="cer-api"'}
        ) from None
    if authenticated is None:
        raise FhirDenied(
            401, "not_authenticated", "Bearer token required.", {"WWW-Authenticate": 'Bearer realm="cer-api"'}
        )
    principal = authenticated[0]
    if APPOINTMENT_SCOPE not in principal.scopes:
        raise FhirDenied(403, "forbidden", f"This operation needs the scope {APPOINTMENT_SCOPE}.")
    rate = rate_limit_for_request(request, client_id=principal.client.pk)
    if rate.exceeded:
        raise DomainError(
            "rate_limited", limit=rate.limit, reset=rate.reset, headers={"Retry-After": str(rate.reset)}
        )
    return principal


def _audited(request: HttpRequest, principal: ApiPrincipal, rows: list[Any]) -> None:
    access_record(
        actor_type="api_client",
        actor_id=principal.actor_id,
        facility_id=principal.facility.pk,
        patient_ids=[r.patient_id for r in rows],
        action=f"{request.method} {request.path}"[:100],
        purpose="FHIR Appointment",
    )


FHIR_APPOINTMENT_STATUS: dict[str, tuple[str, ...]] = {}
for _ours, _fhir in resources.APPOINTMENT_STATUS.items():
    FHIR_APPOINTMENT_STATUS.setdefault(_fhir, ())
    FHIR_APPOINTMENT_STATUS[_fhir] += (_ours,)


@fhir_view
def appointment_read(request: HttpRequest, ident: str) -> HttpResponse:
    principal = _principal(request)
    row = selectors.appointment_get(
        scope=FacilityScope(principal.facility), appointment_id=_int_id("Appointment", ident)
    )
    if row is None:
        raise not_found("Appointment", ident)  # another facility's id looks exactly like a missing one
    _audited(request, principal, [row])
    return fhir_response(resources.appointment(row), headers={"Cache-Control": "no-store"})


@fhir_view
def appointment_search(request: HttpRequest) -> HttpResponse:
    principal = _principal(request)
    query = request.GET
    params.check_known(query, frozenset({"date", "status"}))
    count = params.count(query)
    after = params.cursor(query, (dt.datetime, int))
    date_ge, date_lt = params.date_range(query, "date")
    statuses: tuple[str, ...] | None = None
    raw_status = params.single(query, "status")
    if raw_status is not None:
        wanted: list[str] = []
        for code in raw_status.split(","):
            if code not in FHIR_APPOINTMENT_STATUS:
                raise DomainError("fhir_invalid_parameter", field="status", name="status")
            wanted.extend(FHIR_APPOINTMENT_STATUS[code])
        statuses = tuple(wanted)
    rows, more = selectors.appointment_page(
        scope=FacilityScope(principal.facility),
        query=selectors.SlotQuery(
            start_ge=date_ge, start_lt=date_lt, after=(after[0], after[1]) if after else None
        ),
        count=count,
        statuses=statuses,
    )
    _audited(request, principal, rows)
    next_cursor = cursor_encode(rows[-1].start.isoformat(), rows[-1].pk) if more else None
    response = _bundle(request, [resources.appointment(r) for r in rows], next_cursor)
    response["Cache-Control"] = "no-store"
    return response


@fhir_view
def unknown(request: HttpRequest, rest: str) -> HttpResponse:
    raise DomainError("fhir_unsupported", what=rest[:60].encode("utf-8", "backslashreplace").decode("utf-8"))
