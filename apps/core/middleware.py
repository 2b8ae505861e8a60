from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from django import db
from django.http import HttpRequest, HttpResponse, JsonResponse
from kombu.exceptions import OperationalError as BrokerError

from .api_errors import PROBLEM_CONTENT_TYPE, problem

log = logging.getLogger("cer.outage")
OUTAGE_RETRY_AFTER = "30"
# The database unreachable or its connection lost (a PostgreSQL restart): a 503, never a 500.
DATABASE_UNAVAILABLE = (db.OperationalError, db.InterfaceError)
# A dependency down (the database, Redis, the broker): a 503 with Retry-After, on the API and pages.
DEPENDENCY_UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    BrokerError,
    *DATABASE_UNAVAILABLE,
)

# Machine interfaces keep Accept-Language negotiation (the FHIR API and open data too).
API_PREFIXES = ("/api/", "/fhir/", "/opendata/")


class PolishFirstMiddleware:
    """Pages are Polish unless the visitor chose English (language cookie / switcher): a public
    Polish service does not change language because a browser happens to be set to English.
    The API keeps content negotiation, so integrators may ask for English messages."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIXES):
            request.META.pop("HTTP_ACCEPT_LANGUAGE", None)
        return self.get_response(request)


class RedisOutageMiddleware:
    """Redis (cache, principal cache, rate limits, Celery broker) unreachable, or the database
    connection lost (a PostgreSQL restart): the API answers 503
    problem+json with Retry-After instead of a 500 (issue 15). A write whose transaction committed
    before the broker failed is stored with its Idempotency-Key, so the retry after recovery replays
    it: nothing is lost and nothing happens twice. Pages keep their own error handling."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        if not isinstance(exception, DEPENDENCY_UNAVAILABLE):
            return None
        return outage_problem(request, exception)


def outage_problem(request: HttpRequest, exception: BaseException) -> HttpResponse:
    """The API's answer while a dependency is down: 503 problem+json with Retry-After."""
    log.error("dependency unavailable: %s on %s %s", type(exception).__name__, request.method, request.path)
    response = JsonResponse(
        problem(503, "service_unavailable"),
        status=503,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    response["Retry-After"] = OUTAGE_RETRY_AFTER
    return response


AUTH_AT = "_cer_auth_at"
SEEN_AT = "_cer_seen_at"


class SessionLimitsMiddleware:
    """Signed-in sessions end after `CER_SESSION_IDLE_SECONDS` without a request and, whatever the
    activity, `CER_SESSION_ABSOLUTE_SECONDS` after sign-in (issue 15: staff sessions lasted two
    weeks). The API (bearer tokens, no session) is not touched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/") and request.user.is_authenticated:
            from django.conf import settings
            from django.contrib.auth import logout

            now = int(time.time())
            session = request.session
            started = int(session.setdefault(AUTH_AT, now))
            seen = int(session.get(SEEN_AT, now))
            if (
                now - seen > settings.CER_SESSION_IDLE_SECONDS
                or now - started > settings.CER_SESSION_ABSOLUTE_SECONDS
            ):
                logout(request)  # the page then answers as to anyone signed out (log-in redirect)
            elif SEEN_AT not in session or now - seen >= 30:  # not a session write on every request
                session[SEEN_AT] = now
        return self.get_response(request)


PAGE_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",  # no inline scripts anywhere: pages, admin, Swagger UI (split view), Redoc
        "style-src 'self' 'unsafe-inline'",  # Redoc and Swagger UI set inline styles
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self' blob:",  # Redoc's search worker
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
PERMISSIONS_POLICY = "camera=(), microphone=(), payment=(), usb=(), geolocation=(self)"


class SecurityHeadersMiddleware:
    """Content-Security-Policy and Permissions-Policy on every response (issue 15); Django's
    SecurityMiddleware and XFrameOptionsMiddleware add nosniff, Referrer-Policy, COOP, X-Frame-Options
    and, in production, HSTS."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        api = request.path.startswith("/api/v1/")
        response.headers.setdefault("Content-Security-Policy", API_CSP if api else PAGE_CSP)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
