from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.operations.context import current_request_id
from apps.operations.metrics import outbox_event_made

from .models import OutboxEvent


def event_new(
    *,
    type: str,
    aggregate_type: str,
    aggregate_id: int,
    facility_id: int | None = None,
    patient_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> OutboxEvent:
    """A domain event, not yet written: `event_record` writes it, or a change that writes everything
    in one statement does (the booking, apps/booking/services.py). It is counted in the metrics when
    its transaction commits, and carries the request id of the work that made it."""
    payload = payload or {}
    outbox_event_made(type, payload)
    return OutboxEvent(
        type=type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        facility_id=facility_id,
        patient_id=patient_id,
        payload=payload,
        request_id=current_request_id(),
    )


def event_record(
    *,
    type: str,
    aggregate_type: str,
    aggregate_id: int,
    facility_id: int | None = None,
    patient_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> OutboxEvent:
    """Record a domain event. Must run inside the transaction that made the change."""
    return event_save(
        event_new(
            type=type,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            facility_id=facility_id,
            patient_id=patient_id,
            payload=payload,
        )
    )


def event_save(event: OutboxEvent) -> OutboxEvent:
    """Write an event made by `event_new`, inside the transaction of the change it describes."""
    event_require_transaction()
    event.save(force_insert=True)
    return event


def event_require_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox events are written inside the transaction of the change they describe")
