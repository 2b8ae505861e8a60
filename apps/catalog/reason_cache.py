"""Reason codes kept in the process: reference data read by every cancellation, release and no-show.

The whole table (a few dozen rows) is loaded on first use with one query and kept for `TTL` seconds,
so a change made by another process shows here within that time. A reason code saved or deleted in
this process drops the copy at once; reads then go to the database until that transaction commits
(a change rolled back never stays in the copy; at the latest after `TTL` the copy is trusted again).
Loading the reference data (`post_migrate`, which also follows a test database flush) drops it too.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_migrate, post_save

from .models import ReasonCode

TTL = 300.0

_lock = threading.Lock()
_codes: dict[str, ReasonCode] | None = None
_loaded_at = 0.0
_unsettled_since: float | None = None  # a change of this process not yet committed


def reason_by_code(code: str) -> ReasonCode | None:
    """The reason code `code`, or None if there is none."""
    global _codes, _loaded_at
    now = time.monotonic()
    if _unsettled_since is not None and now - _unsettled_since < TTL:
        return ReasonCode.objects.filter(code=code).first()
    codes = _codes
    if codes is None or now - _loaded_at >= TTL:
        codes = {found.code: found for found in ReasonCode.objects.all()}
        with _lock:
            _codes, _loaded_at = codes, now
    found = codes.get(code)
    if found is None:
        return None
    # A copy: a caller may not change the shared one.
    return ReasonCode(
        pk=found.pk, code=found.code, kind=found.kind, name_pl=found.name_pl, name_en=found.name_en
    )


def clear() -> None:
    global _codes, _unsettled_since
    with _lock:
        _codes, _unsettled_since = None, None


def _changed(**_: Any) -> None:
    global _codes, _unsettled_since
    with _lock:
        _codes, _unsettled_since = None, time.monotonic()
    transaction.on_commit(clear)


post_save.connect(_changed, sender=ReasonCode, dispatch_uid="reason_cache_saved")
post_delete.connect(_changed, sender=ReasonCode, dispatch_uid="reason_cache_deleted")
post_migrate.connect(lambda **_: clear(), dispatch_uid="reason_cache_migrated", weak=False)
