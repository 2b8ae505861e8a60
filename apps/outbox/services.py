from __future__ import annotations

from typing import Any

from django.db import transaction

from .models import OutboxEvent


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
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox events are written inside the transaction of the change they describe")
    return OutboxEvent.objects.create(
        type=type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        facility_id=facility_id,
        patient_id=patient_id,
        payload=payload or {},
    )
