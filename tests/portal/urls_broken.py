"""The site's URLs plus a view that fails and one that refuses, for the error-page tests."""

import redis
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import handler400, handler404, handler500
from config.urls import urlpatterns as site

__all__ = ["handler400", "handler404", "handler500", "urlpatterns"]


def broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a deliberate failure for the 500 page test")


def redis_down(request: HttpRequest) -> HttpResponse:
    raise redis.exceptions.ConnectionError("a deliberate Redis outage for the 503 page test")


def damaged(request: HttpRequest) -> HttpResponse:
    raise SuspiciousOperation("a deliberately unreadable request for the 400 page test")


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


urlpatterns = [
    path("broken/", broken),
    path("api/broken/", broken),
    path("forbidden/", forbidden),
    path("redis-down/", redis_down),
    path("damaged/", damaged),
    path("api/damaged/", damaged),
    *site,
]
