"""Read replicas (docs/scaling.md): search, the open-data reads and staff reports may read from a
streaming replica named `replica` in DATABASES (DATABASE_REPLICA_URL); everything else, and every
write, goes to `default`.

Reads go to the replica only inside `replica_reads()` (a context manager and a decorator), and even
there not when
- no replica is configured (a single database, tests, development),
- the code runs inside a transaction on `default` (a read that a write will depend on),
- the request belongs to someone who has just written: `PrimaryAfterWriteMiddleware` marks a browser
  that made a successful POST/PUT/PATCH/DELETE with a cookie for CER_REPLICA_STICKY_SECONDS, and its
  requests read from `default` meanwhile (a patient who has just booked sees the booking, and the
  slot no longer free, whatever the replica's lag).

The replica's lag is therefore visible only to others, and only for reads that tolerate it (a slot
shown free that was booked a moment ago is refused at booking time, by the database).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ContextDecorator
from contextvars import ContextVar, Token
from typing import Any

from django.conf import settings
from django.db import connections

DEFAULT = "default"
REPLICA = "replica"
COOKIE = "cer_primary"

_replica_reads: ContextVar[bool] = ContextVar("cer_replica_reads", default=False)
_primary_pinned: ContextVar[bool] = ContextVar("cer_primary_pinned", default=False)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


class replica_reads(ContextDecorator):
    """Reads in this block (or function) may come from the replica (see the module docstring)."""

    def __init__(self) -> None:
        self._tokens: list[Token[bool]] = []

    def _recreate_cm(self) -> replica_reads:
        return type(self)()  # a decorated view runs in many threads: one instance per call

    def __enter__(self) -> replica_reads:
        self._tokens.append(_replica_reads.set(True))
        return self

    def __exit__(self, *exc: object) -> None:
        _replica_reads.reset(self._tokens.pop())


def read_alias() -> str:
    """The alias a read in the current context goes to."""
    if (
        _replica_reads.get()
        and not _primary_pinned.get()
        and replica_configured()
        and not connections[DEFAULT].in_atomic_block
    ):
        return REPLICA
    return DEFAULT


class ReplicaRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        alias = read_alias()
        return alias if alias == REPLICA else None

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return DEFAULT

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replica is a copy of the same database

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        return False if db == REPLICA else None


class PrimaryAfterWriteMiddleware:
    """Read-your-writes: after a successful write, this browser reads from `default` for
    CER_REPLICA_STICKY_SECONDS (a cookie, so it holds across web servers). Does nothing without a
    replica. The cookie can only make its holder's reads go to the primary."""

    UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        if not replica_configured():
            return self.get_response(request)
        token = _primary_pinned.set(COOKIE in request.COOKIES)
        try:
            response = self.get_response(request)
        finally:
            _primary_pinned.reset(token)
        if request.method in self.UNSAFE and response.status_code < 400:
            response.set_cookie(
                COOKIE,
                "1",
                max_age=int(getattr(settings, "CER_REPLICA_STICKY_SECONDS", 10)),
                secure=bool(getattr(settings, "SESSION_COOKIE_SECURE", False)),
                httponly=True,
                samesite="Lax",
            )
        return response
