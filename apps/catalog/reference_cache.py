"""Reference rows kept in the process for the patient pages: the services and voivodeships of the search
form's choice lists and lookups (issue 19: the search page read and rendered both lists on every request).

Each table (a few dozen rows) is loaded on first use with one query and kept for `TTL` seconds, so a
change made by another process shows here within that time. A row saved or deleted in this process
drops the copy at once; reads then go to the database until that transaction commits (a change rolled
back never stays in the copy), as `reason_cache` does for reason codes. `generation` changes whenever
a copy is loaded, so what is derived from it (rendered choice lists) can be keyed by it.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from django.db import models, transaction
from django.db.models.signals import post_delete, post_migrate, post_save

TTL = 300.0


class ReferenceRows:
    """One table's rows in a fixed order, kept in the process."""

    def __init__(self, model: type[models.Model], *order_by: str) -> None:
        self.model, self.order_by = model, order_by
        self._lock = threading.Lock()
        self._rows: list[Any] | None = None
        self._by_pk: dict[Any, Any] = {}
        self._loaded_at = 0.0
        self._unsettled_since: float | None = None
        self.generation = 0
        label = model._meta.label_lower
        post_save.connect(self._changed, sender=model, dispatch_uid=f"reference_cache_saved_{label}")
        post_delete.connect(self._changed, sender=model, dispatch_uid=f"reference_cache_deleted_{label}")
        post_migrate.connect(self._migrated, dispatch_uid=f"reference_cache_migrated_{label}", weak=False)

    def rows(self) -> list[Any] | None:
        """The rows (shared: never change them), or None while a change of this process is not yet
        committed (the caller reads the database)."""
        now = time.monotonic()
        if self._unsettled_since is not None and now - self._unsettled_since < TTL:
            return None
        rows = self._rows
        if rows is None or now - self._loaded_at >= TTL:
            rows = list(self.model._default_manager.order_by(*self.order_by))
            with self._lock:
                self._rows, self._loaded_at = rows, now
                self._by_pk = {row.pk: row for row in rows}
                self.generation += 1
        return rows

    def get(self, pk: Any) -> Any | None:
        """A copy of the row with this primary key (already converted), None if there is none; raises
        LookupError while the copy is bypassed (the caller reads the database)."""
        if self.rows() is None:
            raise LookupError(pk)
        found = self._by_pk.get(pk)
        return copy.copy(found) if found is not None else None

    def clear(self) -> None:
        with self._lock:
            self._rows, self._unsettled_since = None, None

    def _changed(self, **_: Any) -> None:
        with self._lock:
            self._rows, self._unsettled_since = None, time.monotonic()
        transaction.on_commit(self.clear)

    def _migrated(self, **_: Any) -> None:
        self.clear()


def _make() -> tuple[ReferenceRows, ReferenceRows]:
    from .models import Service, Voivodeship

    return ReferenceRows(Service, "name_pl"), ReferenceRows(Voivodeship, "teryt")


SERVICES, VOIVODESHIPS = _make()
