from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class PolishFirstMiddleware:
    """Pages are Polish unless the visitor chose English (language cookie / switcher): a public
    Polish service does not change language because a browser happens to be set to English.
    The API keeps content negotiation, so integrators may ask for English messages."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            request.META.pop("HTTP_ACCEPT_LANGUAGE", None)
        return self.get_response(request)
