"""Branded error pages (issue 18): 400, 404, 403 (a CSRF failure too) and 500 in the page language,
with the site's navigation and the helpline, also with DEBUG off. The API keeps its problem+json answers.

404 and 403 are Django's own handlers rendering `templates/404.html` and `403.html` (with the request,
so the menu and the language switch work). A bad request (400), a CSRF failure and a server error need
these views: Django renders those pages without the request.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseServerError,
)
from django.template import loader
from django.views import csrf

from apps.core import api_errors
from apps.core.middleware import DEPENDENCY_UNAVAILABLE, OUTAGE_RETRY_AFTER, outage_problem

logger = logging.getLogger("cer.portal")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: an expired form (a page left open, a cookie cleared) gets a page that says
    what to do, never Django's bare English default."""
    if request.path.startswith("/api/"):
        return csrf.csrf_failure(request, reason)
    html = loader.render_to_string("403_csrf.html", {"csrf_failure": True}, request=request)
    return HttpResponseForbidden(html)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: a request Django refused to read (a suspicious operation: too many fields, a damaged
    upload) gets the branded page, not Django's bare English "Bad Request (400)"; the API a problem."""
    if request.path.startswith("/api/"):
        return api_errors.api_or_html_400(request)
    return HttpResponseBadRequest(loader.render_to_string("400.html", {}, request=request))


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """handler500: the branded page with the request's context; if even that fails (the database or
    the session store is what broke), the same page without it. The database unreachable (a
    PostgreSQL restart, issue 15; raised in a view or a middleware) is a 503 with Retry-After, the
    same page ("try again in a few minutes"), or the API's 503 problem+json. Redis or the broker
    unreachable where a page needs them is the same 503."""
    exception = sys.exc_info()[1]  # Django calls handler500 while handling the exception
    unavailable = isinstance(exception, DEPENDENCY_UNAVAILABLE)
    if request.path.startswith("/api/"):
        if unavailable and exception is not None:
            return outage_problem(request, exception)
        return api_errors.api_or_html_500(request)
    try:
        html = loader.render_to_string("500.html", {}, request=request)
    except Exception:
        logger.warning("the 500 page rendered without the request context")
        html = loader.render_to_string("500.html", {})
    if unavailable:
        return HttpResponse(html, status=503, headers={"Retry-After": OUTAGE_RETRY_AFTER})
    return HttpResponseServerError(html)
