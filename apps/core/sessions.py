"""Django's database sessions, read with one prepared statement (issue 19).

Every signed-in page reads its session row first; composing `Session.objects.get(...)` cost more CPU
than PostgreSQL spent answering it (docs/performance.md, section a). The row, its encoding and every
write stay Django's (`django.contrib.sessions.backends.db`): only the read is hand-written, on the
primary database (a session is never read from a replica: a sign-in must be seen by the next request).
`tests/core/test_sessions.py` keeps it what Django's own read gives.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from .queries import model_from_row, prepared_cursor, select_columns


@cache
def _read_sql(model: Any) -> str:
    table = model._meta.db_table
    return (
        f"SELECT {select_columns(model, 's')} FROM {table} s "  # noqa: S608 (names from the model)
        "WHERE s.session_key = %(key)s AND s.expire_date > %(now)s"
    )


class SessionStore(DatabaseSessionStore):
    def _get_session_from_db(self) -> Any:
        with prepared_cursor(using=DEFAULT_DB_ALIAS) as cursor:
            cursor.execute(_read_sql(self.model), {"key": self.session_key, "now": timezone.now()})
            row = cursor.fetchone()
        if row is None:  # none, or expired: as Django's, a new session key is made on the next save
            self._session_key = None
            return None
        return model_from_row(self.model, row)[0]
