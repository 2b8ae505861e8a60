"""Work a service asks for once its transaction commits, by name: the service does not import the
module that does it (Celery tasks import the services, so the services must not import the tasks).

A module that does the work registers it at start-up (`AppConfig.ready`); a service calls `later`,
or `record` for work that must be durable with the transaction (the handler runs at once, inside it,
writes a queue row and asks for its own after-commit part). Names are few and listed here, so a
misspelt one fails at once rather than after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

SLOT_FREED = "slot_freed"  # slots went back to the pool: queue them for the waiting list (`record`)
WAITING_ENTRY_CREATED = "waiting_entry_created"  # look for a slot for a new waiting-list entry
WAITING_ENTRY_CHANGED = "waiting_entry_changed"  # ...and for an entry whose preferences changed
SLOTS_PUBLISHED = "slots_published"  # new free slots of a service: sweep its waiting list
# Freed slots were queued by the statement that freed them (`booking.sql.appointment_end_write`): ask
# for a drain of the queue (`later`).
FREED_SLOTS_QUEUED = "freed_slots_queued"

NAMES = frozenset(
    {SLOT_FREED, WAITING_ENTRY_CREATED, WAITING_ENTRY_CHANGED, SLOTS_PUBLISHED, FREED_SLOTS_QUEUED}
)
_handlers: dict[str, Callable[..., Any]] = {}


def register(name: str, handler: Callable[..., Any]) -> None:
    if name not in NAMES:
        raise KeyError(f"unknown after-commit work {name!r}")
    _handlers[name] = handler


def later(name: str, *args: Any) -> None:
    """Run the work registered under `name` with `args` after the current transaction commits."""
    handler = _handlers[name]  # KeyError at once if nothing registered it
    transaction.on_commit(lambda: handler(*args))


def record(name: str, *args: Any) -> None:
    """Run the work registered under `name` with `args` now, inside the current transaction: what it
    writes commits or rolls back with the caller's change."""
    _handlers[name](*args)
