"""The request id and the actor of the work in progress, carried from the web request into the log
lines, the Celery tasks it enqueues and the outbox events it writes.

A context variable, so each thread (runserver, gunicorn threads) and each task has its own; the
Celery hooks (`celery_hooks`) set it from the task's headers in the worker.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from typing import Any

from django.utils.functional import LazyObject, empty

REQUEST_ID_HEADER = "X-Request-ID"
# Accepted from a caller when it is short and plain (it goes into logs, headers and the outbox);
# anything else is replaced by a new id rather than refused: a request is never failed for it.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")

request_id_var: ContextVar[str] = ContextVar("cer_request_id", default="")
request_var: ContextVar[Any] = ContextVar("cer_request", default=None)


def request_id_new() -> str:
    return uuid.uuid4().hex


def request_id_from_header(value: str | None) -> str:
    """The caller's X-Request-ID if it is acceptable, else a new one. One that holds a PESEL-shaped
    number is not: the id is written to every log line and outbox event of the request."""
    from .logs import pesel_shaped_numbers

    if value and _VALID_REQUEST_ID.fullmatch(value) and not pesel_shaped_numbers(value):
        return value
    return request_id_new()


def current_request_id() -> str:
    return request_id_var.get()


def current_actor(request: Any = None) -> dict[str, Any]:
    """The facility system or the signed-in user of the current request (ids only, never a name)."""
    request = request if request is not None else request_var.get()
    if request is None:
        return {}
    actor: dict[str, Any] = {}
    user: Any = getattr(request, "user", None)  # set by DRF's authentication too (Request.user setter)
    if user is None or (isinstance(user, LazyObject) and user._wrapped is empty):
        return actor  # none, or not loaded yet: a log line never costs a session or database read
    facility, client = getattr(user, "facility", None), getattr(user, "client", None)
    if facility is not None and client is not None:
        actor["facility_id"] = facility.pk
        actor["api_client_id"] = client.pk
    elif getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None:
        actor["user_id"] = user.pk  # a staff member (or a signed-in patient): the id, never the name
    return actor
