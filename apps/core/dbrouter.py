"""Read replicas (docs/scaling.md): search, the open-data reads and staff reports may read from a
streaming replica named `replica` in DATABASES (DATABASE_REPLICA_URL); everything else, and every
write, goes to `default`.

Reads go to the replica only inside `replica_reads()` (a context manager and a decorator), and even
there not when
- no replica is configured (a single database, tests, development),
- the replica is down or behind by more than CER_REPLICA_MAX_LAG_SECONDS: each process asks it at most
  every CER_REPLICA_CHECK_SECONDS (`replica_usable`), and a read that loses its replica connection
  marks it down at once; a read in `replica_reads(retry=True)` (a selector that only reads) is then
  made again on the primary, and the next reads go there until a check finds the replica back,
- the code runs inside a transaction on `default` (a read that a write will depend on),
- the request belongs to someone who has just written: `PrimaryAfterWriteMiddleware` marks a browser
  that made a successful POST/PUT/PATCH/DELETE with a cookie for CER_REPLICA_STICKY_SECONDS, and its
  requests read from `default` meanwhile (a patient who has just booked sees the booking, and the
  slot no longer free, whatever the replica's lag).

The replica's lag is therefore visible only to others, and only for reads that tolerate it (a slot
shown free that was booked a moment ago is refused at booking time, by the database).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ContextDecorator
from contextvars import ContextVar, Token
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, connections

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT = "default"
REPLICA = "replica"
COOKIE = "cer_primary"

_replica_reads: ContextVar[bool] = ContextVar("cer_replica_reads", default=False)
_primary_pinned: ContextVar[bool] = ContextVar("cer_primary_pinned", default=False)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


# The replica's replay lag in seconds: 0 when it has replayed everything it has received (an idle
# primary sends nothing, and the age of the last replayed commit would grow for no reason), else the age
# of the last commit it replayed. On a server that is not in recovery both positions are NULL: 0.
LAG_SQL = """
SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8
"""


class ReplicaHealth:
    """Whether this process may send reads to the replica: asked of the replica itself at most every
    CER_REPLICA_CHECK_SECONDS (one short query on the asking thread's replica connection; the other
    threads use the last answer meanwhile), and marked down at once by a read that lost its connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.usable = True
        self.lag: float | None = None
        self._checked: float | None = None  # time.monotonic() of the last check

    def reset(self) -> None:
        with self._lock:
            self.usable, self.lag, self._checked = True, None, None

    def _due(self, now: float) -> bool:
        interval = float(getattr(settings, "CER_REPLICA_CHECK_SECONDS", 5))
        return self._checked is None or now >= self._checked + interval

    def check_due(self) -> bool:
        """True for the one caller that should check now (it then calls `record`)."""
        now = time.monotonic()
        if not self._due(now):
            return False
        with self._lock:
            if not self._due(now):
                return False
            self._checked = now
            return True

    def record(self, *, lag: float | None) -> None:
        """The check's answer: the lag in seconds, or None when the replica could not be asked."""
        limit = float(getattr(settings, "CER_REPLICA_MAX_LAG_SECONDS", 30))
        usable = lag is not None and lag <= limit
        if usable != self.usable:
            if usable:
                logger.warning("the replica is back (lag %.1f s): search and reports read it again", lag)
            elif lag is None:
                logger.warning("the replica cannot be reached: its reads go to the primary")
            else:
                logger.warning(
                    "the replica is %.1f s behind (limit %.0f s): its reads go to the primary", lag, limit
                )
        self.usable, self.lag = usable, lag

    def mark_down(self) -> None:
        """A read lost its replica connection: the primary until the next check finds the replica back."""
        self.record(lag=None)
        with self._lock:
            self._checked = time.monotonic()


health = ReplicaHealth()


def replica_lag() -> float | None:
    """The replica's replay lag in seconds, asked on this thread's replica connection; None when it
    cannot be reached (the broken connection is closed, so the next use opens a new one)."""
    connection = connections[REPLICA]
    try:
        with connection.cursor() as cursor:
            cursor.execute(LAG_SQL)
            row = cursor.fetchone()
    except DatabaseError:
        connection.close()
        return None
    return float(row[0]) if row else None


def replica_usable() -> bool:
    """May reads go to the replica now (configured, reachable and not too far behind)?"""
    if not replica_configured():
        return False
    if health.check_due():
        health.record(lag=replica_lag())
    return health.usable


def _replica_connection_lost() -> bool:
    """After a database error: did it break the replica connection, or could none be opened (rather
    than, say, a query of the primary's, or a statement the replica cancelled because it conflicted
    with replay)?"""
    if not replica_configured():
        return False
    connection = connections[REPLICA]
    return connection.errors_occurred and (connection.connection is None or not connection.is_usable())


class replica_reads(ContextDecorator):
    """Reads in this block (or function) may come from the replica (see the module docstring).
    `retry=True`, for a function that only reads: when a replica read fails (the replica went away, or
    cancelled the statement for replay), the function runs once more with every read on the primary."""

    def __init__(self, *, retry: bool = False) -> None:
        self.retry = retry
        self._tokens: list[Token[bool]] = []

    def _recreate_cm(self) -> replica_reads:
        return type(self)(retry=self.retry)  # a decorated view runs in many threads: one instance per call

    def __enter__(self) -> replica_reads:
        self._tokens.append(_replica_reads.set(True))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        _replica_reads.reset(self._tokens.pop())
        if exc_type is not None and issubclass(exc_type, DatabaseError) and _replica_connection_lost():
            connections[REPLICA].close()
            health.mark_down()

    def __call__(self, func: F) -> F:  # type: ignore[override]
        if not self.retry:
            return super().__call__(func)  # type: ignore[return-value]

        @wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            reading_replica = [False]
            try:
                with self._recreate_cm():
                    reading_replica[0] = read_alias() == REPLICA
                    return func(*args, **kwargs)
            except DatabaseError:
                if not reading_replica[0]:
                    raise
                logger.warning("a read on the replica failed: made again on the primary", exc_info=True)
            token = _primary_pinned.set(True)
            try:
                return func(*args, **kwargs)
            finally:
                _primary_pinned.reset(token)

        return inner  # type: ignore[return-value]


def read_alias() -> str:
    """The alias a read in the current context goes to."""
    if (
        _replica_reads.get()
        and not _primary_pinned.get()
        and replica_configured()
        and not connections[DEFAULT].in_atomic_block
        and replica_usable()
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
