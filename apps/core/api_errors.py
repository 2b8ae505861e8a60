"""RFC 9457 problem+json for every API error: domain errors, validation, auth, throttling, 404/500."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

from .errors import MESSAGES, DomainError, catalogue_entry, param_in, text

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://cer.nfz.gov.pl/problems/"
# The `code` of a DRF exception whose detail is one of our texts, already in the response's language.
LOCALISED = "cer_localised"

_DRF_CODES: dict[type[Exception], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "validation_error",
}


def response_language() -> str:
    """The one language of an answer: negotiated by Accept-Language (LocaleMiddleware), Polish by default."""
    return "en" if (translation.get_language() or "pl").startswith("en") else "pl"


def problem(
    status_code: int, code: str, title: str = "", detail: str = "", errors: Any = None, **extra: Any
) -> dict[str, Any]:
    """A problem+json body. A code of the registry (`apps.core.errors.MESSAGES`) is worded from it in
    the response's language; `instance` is the request id (X-Request-ID), to quote when asking NFZ."""
    from apps.operations.context import current_request_id

    if code in MESSAGES:
        title = catalogue_message(code, response_language())
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status_code,
        "code": code,
        "detail": detail or title,
    }
    request_id = current_request_id()
    if request_id:
        body["instance"] = request_id
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def catalogue_message(code: str, language: str) -> str:
    """The code's message without parameters (its placeholders are never shown raw)."""
    return DomainError(code).message_in(language, audience="facility")


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    from apps.operations.metrics import refusal_observed

    refusal_observed(body["code"], body["status"])
    response = Response(body, status=body["status"], headers=headers)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def domain_error_body(exc: DomainError) -> dict[str, Any]:
    """The API's callers are facility systems: refusals are worded for them (`FACILITY_MESSAGES`),
    in one language (title and detail alike)."""
    language = response_language()
    detail = exc.message_in(language, audience="facility")
    errors = {exc.field: [detail]} if exc.field else None
    body = problem(exc.status, exc.code, detail, detail, errors)
    body["title"] = detail
    if exc.params:
        body["params"] = {k: param_in(v, language) for k, v in exc.params.items()}
    return body


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return problem_response(domain_error_body(exc), exc.headers)
    if isinstance(exc, RequestDataTooBig):
        return problem_response(problem(413, "payload_too_large"))
    if isinstance(exc, SuspiciousOperation):
        return problem_response(problem(400, "bad_request"))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_default_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "")
    if not code:
        code = "server_error" if response.status_code >= 500 else "bad_request"
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = problem(400, code, detail=text("see_errors"), errors=errors)
    else:
        # DRF's own texts are English templates ("Unsupported media type \"{media_type}\""): the
        # registry's message is used instead; a text of ours (already in the response's language) stays.
        detail = str(exc.detail) if getattr(exc.detail, "code", None) == LOCALISED else ""
        body = problem(response.status_code, code, detail=detail)
    headers = {k: v for k, v in response.headers.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")}
    return problem_response(body, headers)


def _json_problem(request: HttpRequest, status_code: int, code: str) -> JsonResponse:
    return JsonResponse(problem(status_code, code), status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def api_or_html_404(request: HttpRequest, exception: Exception | None = None) -> Any:
    if request.path.startswith("/api/"):
        return _json_problem(request, 404, "not_found")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Http404())


def api_or_html_400(request: HttpRequest) -> Any:
    """A request Django would not read, under /api/: problem+json like every other refusal."""
    return _json_problem(request, 400, "validation_error")


def api_or_html_500(request: HttpRequest) -> Any:
    if request.path.startswith("/api/"):
        return _json_problem(request, 500, "server_error")
    from django.views.defaults import server_error

    return server_error(request)


@csrf_exempt  # an unknown path answers 404 to any method, not a CSRF page
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """The last pattern under /api/: an unknown path or a malformed id (`/bookings/abc`)."""
    return _json_problem(request, 404, "not_found")


def problem_type(request: HttpRequest, code: str) -> JsonResponse:
    """`type` of a problem resolves here: the catalogue entry of the code (docs/errors.md)."""
    if code not in MESSAGES:
        return _json_problem(request, 404, "not_found")
    return JsonResponse(catalogue_entry(code), json_dumps_params={"ensure_ascii": False})
