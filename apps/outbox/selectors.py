from __future__ import annotations

from django.db import connection
from django.db.models import Q, QuerySet

from .models import OutboxEvent


def visible_horizon() -> int:
    """The oldest transaction still running: events of older transactions are final (see models)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return int(cursor.fetchone()[0])


def event_list_after(
    *, after: tuple[int, int] | None, facility_id: int | None = None, limit: int = 100
) -> list[OutboxEvent]:
    """Committed events after the cursor (txid, id), in (txid, id) order, never skipping one."""
    qs: QuerySet[OutboxEvent] = OutboxEvent.objects.filter(txid__lt=visible_horizon())
    if facility_id is not None:
        qs = qs.filter(facility_id=facility_id)
    if after is not None:
        txid, event_id = after
        qs = qs.filter(Q(txid__gt=txid) | Q(txid=txid, id__gt=event_id))
    return list(qs.order_by("txid", "id")[:limit])
