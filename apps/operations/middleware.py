"""First middleware: the request id (accepted or made, echoed back) and the HTTP metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from . import metrics
from .context import REQUEST_ID_HEADER, request_id_from_header, request_id_var, request_var


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from_header(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        id_token, request_token = request_id_var.set(request_id), request_var.set(request)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            request_var.reset(request_token)
            request_id_var.reset(id_token)
        metrics.http_request_observed(request, response, time.perf_counter() - started)
        response[REQUEST_ID_HEADER] = request_id
        return response
