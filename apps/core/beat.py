"""Celery beat on several machines: one active at a time, the others standing by (docs/scaling.md).

django-celery-beat's DatabaseScheduler, unchanged, except that it only sends anything while it holds
a PostgreSQL session-level advisory lock. Every beat process tries `pg_try_advisory_lock` on a
connection of its own; the one that gets it is the active beat, the others try again every
`CER_BEAT_STANDBY_SECONDS`. PostgreSQL releases the lock when the holder's session ends: a beat that
exits, is SIGKILLed or loses its machine (TCP keepalives on the lock connection bound the time the
server needs to notice) hands the schedule to a standby without anyone deciding anything.

The active beat checks its lock connection at every tick, before it sends anything, and steps down
when that connection is gone (the server may have released the lock meanwhile). A promoted standby
reads the schedule again, with the `last_run_at` its predecessor saved after every send
(CELERY_BEAT_SYNC_EVERY = 1), so a tick is not sent a second time at the hand-over.

Every message the scheduler sends carries the sending beat in the `cer_beat` header;
`apps.operations.tasks.beat_heartbeat_task` logs it, which is how an operator (and the test of the
many-machines arrangement) sees which beat is active.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any

import psycopg
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

HEADER = "cer_beat"
# One lock per database: the key names the role, advisory locks are scoped to the database already.
LOCK_KEY = int.from_bytes(b"cer-beat", "big") & 0x7FFF_FFFF_FFFF_FFFF


def lock_conninfo(database: dict[str, Any]) -> dict[str, Any]:
    """psycopg connection arguments for the lock session, from a Django DATABASES entry."""
    options = {k: v for k, v in (database.get("OPTIONS") or {}).items() if k not in ("prepare_threshold",)}
    # The server drops the session of a machine that vanished (and so frees the lock) after about
    # idle + interval x count seconds; the client-side keepalives below do the same for us.
    server_keepalives = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
    options["options"] = f"{options.get('options', '')} {server_keepalives}".strip()
    args: dict[str, Any] = {
        "dbname": database["NAME"],
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": database.get("HOST") or None,
        "port": database.get("PORT") or None,
        "application_name": "cer-beat-lock",
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }
    args.update(options)
    return {k: v for k, v in args.items() if v is not None}


class LeaderDatabaseScheduler(DatabaseScheduler):
    """DatabaseScheduler that sends only while it holds the beat lock (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.standby_seconds = float(getattr(settings, "CER_BEAT_STANDBY_SECONDS", 5.0))
        self._lock_conn: psycopg.Connection | None = None
        self.active = False
        super().__init__(*args, **kwargs)

    # --- the lock -----------------------------------------------------------------------------

    def _drop_lock_connection(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._lock_conn.close()
        self._lock_conn = None

    def lock_held(self) -> bool:
        """True while this process holds the beat lock; tries to take it when it does not."""
        try:
            if self._lock_conn is None or self._lock_conn.closed:
                self._lock_conn = psycopg.connect(
                    **lock_conninfo(settings.DATABASES["default"]), autocommit=True
                )
            if self.active:
                self._lock_conn.execute("SELECT 1")  # still our session, so still our lock
                return True
            row = self._lock_conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
        except psycopg.Error as exc:
            if self.active:
                logger.warning("beat %s lost its lock connection, standing by: %s", self.identity, exc)
            self.active = False
            self._drop_lock_connection()
            return False
        if row and row[0]:
            self.active = True
            logger.info("beat %s is the active beat", self.identity)
            # Read the schedule again: the last run times are the previous active beat's.
            self._initial_read = True
            self._heap = None
            return True
        return False

    # --- the scheduler ------------------------------------------------------------------------

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.lock_held():
            return self.standby_seconds
        return float(super().tick(*args, **kwargs))

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        headers = dict(entry.options.get("headers") or {})
        headers[HEADER] = self.identity
        entry.options = {**entry.options, "headers": headers}
        return super().apply_async(entry, producer, advance, **kwargs)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.active and self._lock_conn is not None:
                # Released at once (closing the session frees it too, but only once the server
                # process has finished exiting).
                with contextlib.suppress(psycopg.Error):
                    self._lock_conn.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
            self.active = False
            self._drop_lock_connection()
