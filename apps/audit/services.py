from __future__ import annotations

from collections.abc import Iterable

from apps.core.queries import insert_rows

from .models import AccessLog


def access_rows(
    *,
    actor_type: str,
    actor_id: str,
    patient_ids: Iterable[int],
    action: str,
    facility_id: int | None = None,
    purpose: str = "",
) -> list[AccessLog]:
    """The access-log rows (not yet written) recording that an actor read these patients' personal
    data: one per patient."""
    return [
        AccessLog(
            actor_type=actor_type,
            actor_id=actor_id,
            facility_id=facility_id,
            patient_id=pid,
            action=action,
            purpose=purpose,
        )
        for pid in dict.fromkeys(patient_ids)
    ]


def access_record(
    *,
    actor_type: str,
    actor_id: str,
    patient_ids: Iterable[int],
    action: str,
    facility_id: int | None = None,
    purpose: str = "",
) -> int:
    """Record that an actor read these patients' personal data. Returns the number of rows written."""
    return insert_rows(
        access_rows(
            actor_type=actor_type,
            actor_id=actor_id,
            patient_ids=patient_ids,
            action=action,
            facility_id=facility_id,
            purpose=purpose,
        )
    )
