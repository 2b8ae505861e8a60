from __future__ import annotations

from django.db import connection
from django.db.models import Q, QuerySet

from .models import OutboxEvent

# The oldest transaction of THIS database that has a transaction id and is still running, as a full
# 64-bit id; or the next id to be assigned when there is none. (pg_stat_activity shows 32-bit xids:
# widened by their signed 32-bit distance from the snapshot's xmax: an xid up to 2^31 below it is
# older, possibly from before the last wrap-around; one at or above it is a running transaction
# newer than the snapshot (xmax is one past the newest *finished* transaction, so the reader's own
# id may be above it when another database's transaction took an id in between).)
# Transactions of other databases on the same server never write this outbox, so unlike the
# cluster-wide `pg_snapshot_xmin`, a long transaction elsewhere (a report, a backup, another
# application) does not hold the feed back. Prepared transactions count too.
HORIZON_SQL = """
WITH snap AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next),
running AS (
    SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
    WHERE datname = current_database() AND backend_xid IS NOT NULL
    UNION ALL
    SELECT transaction::text::bigint FROM pg_prepared_xacts WHERE database = current_database()
)
SELECT LEAST(
    snap.next,
    min(snap.next - ((((snap.next & 4294967295) - running.xid) % 4294967296 + 6442450944) % 4294967296
                     - 2147483648))
)
FROM snap LEFT JOIN running ON true
GROUP BY snap.next
"""


def visible_horizon() -> int:
    """Events of transactions older than this are final: committed (visible to any later statement)
    or rolled back. Read before the events, in its own statement (see models).

    Order matters: the snapshot's xmax is taken when the statement starts, before pg_stat_activity is
    read, so a transaction that gets its id after that read has an id >= xmax. The statistics
    snapshot is cleared first, because within one transaction pg_stat_activity is otherwise frozen
    at its first read.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(HORIZON_SQL)
        return int(cursor.fetchone()[0])


def event_list_after(
    *, after: tuple[int, int] | None, facility_id: int | None = None, limit: int = 100
) -> list[OutboxEvent]:
    """Committed events after the cursor (txid, id), in (txid, id) order, never skipping one."""
    return list(events_after(horizon=visible_horizon(), after=after, facility_id=facility_id)[:limit])


def events_after(
    *, horizon: int, after: tuple[int, int] | None, facility_id: int | None = None
) -> QuerySet[OutboxEvent]:
    """Events of transactions older than `horizon` after the cursor, in (txid, id) order: each month
    partition's `outbox_feed` (or `outbox_facility_feed`) index read in order from the cursor on and
    merged, no sort (apps/outbox/partitions.py).

    `txid >= cursor` is implied by the cursor condition, but PostgreSQL only seeks the index to a bound
    it can read off the query: without it each index is read from its first entry and the events
    before the cursor filtered out one by one, a poll costing the whole history."""
    qs: QuerySet[OutboxEvent] = OutboxEvent.objects.filter(txid__lt=horizon)
    if facility_id is not None:
        qs = qs.filter(facility_id=facility_id)
    if after is not None:
        txid, event_id = after
        qs = qs.filter(Q(txid__gt=txid) | Q(txid=txid, id__gt=event_id), txid__gte=txid)
    return qs.order_by("txid", "id")
