"""Month partitions of the outbox (issue 19): `outbox_outboxevent` by `created_at`, through
apps.core.partitions.

The outbox is a transport, not a record: the changes feed, the webhook fan-out and the patients'
notices read each event within seconds of its commit (after their own (txid, id) cursors), a facility
system that was down catches up within days, and a failed webhook delivery is re-sent on demand within
days. Partitions that ended more than `CER_OUTBOX_PARTITIONS_KEEP_MONTHS` (3) months ago are detached,
so every event stays readable for at least that long (docs/scaling.md, docs/operations.md). Nothing
else may depend on an event being there: who put a waiting-list entry on the list, once read from its
join event, is the registration's own `registered_by` (booking migration 0007).

- **The key** is `(id, created_at)`. The one foreign key into the table is the webhook delivery's,
  `integration_webhookdelivery (event_id, event_created_at)`, declared here (`DELIVERY_FK`); the
  model's ForeignKey has `db_constraint=False` and the delivery carries its event's `created_at`
  (`apps.integration.webhooks.delivery_new`, the one place deliveries are made).
- **The delivery log goes with its events**: before a partition is detached, the deliveries of its
  events that are finished (delivered or failed, with their attempts) are deleted in the same
  transaction (`Reference.release`). A delivery still pending (being retried, or re-sent on demand)
  keeps the partition attached, and the job reports it as `kept` until the delivery ends.
- **Readers**: the feeds read `(txid, id)` order over each partition's `outbox_feed` /
  `outbox_facility_feed` index, merged (`Merge Append`, no sort; tests/outbox/test_partitions.py);
  nothing filters on `created_at`, so every partition's index is probed once per page, which the
  retention keeps to a handful. No trigger: the booking transaction writes the outbox, and a partitioned
  insert costs it only the routing.
- **A cursor older than the retention**: before a month is detached, each facility's last event of it
  (in feed order) becomes its `FeedHorizon`; a changes-feed cursor before that answers `410
  cursor_expired` (`apps.integration.selectors`) instead of going on from the oldest event kept.
- **Months ahead**: `created_at` is the writing transaction's clock, so only the current month is
  written; `CER_OUTBOX_PARTITIONS_AHEAD` (2) months are made ahead so that a job that fails for weeks
  still leaves the next month its partition (otherwise its events would land in DEFAULT, to be moved
  out when the partition is made).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection

from apps.core import partitions as core
from apps.core.partitions import Reference
from apps.integration.models import WebhookAttempt, WebhookDelivery

from .models import FeedHorizon

TABLE = "outbox_outboxevent"
DELIVERY_FK = "integration_webhookdelivery_event_created_fk"

_DELIVERIES = WebhookDelivery._meta.db_table
_FINISHED = f"""d.event_created_at >= %(lower)s AND d.event_created_at < %(upper)s
    AND d.status <> '{WebhookDelivery.Status.PENDING.value}'"""
# The attempts first: their foreign key to the delivery is Django's CASCADE, which the database does
# not do.
RELEASE_DELIVERIES = (
    f"""DELETE FROM {WebhookAttempt._meta.db_table} a USING {_DELIVERIES} d
        WHERE a.delivery_id = d.id AND {_FINISHED}""",  # noqa: S608 (names from the models)
    f"DELETE FROM {_DELIVERIES} d WHERE {_FINISHED}",  # noqa: S608 (names from the models)
)

_HORIZON = FeedHorizon._meta.db_table


def _horizon_advance(partition: str) -> list[str]:
    """Before a month leaves: each facility's last event of it, in feed order, becomes that facility's
    horizon (`FeedHorizon`) unless an earlier detach left a later one."""
    q = connection.ops.quote_name
    return [
        f"""INSERT INTO {_HORIZON} (facility_id, txid, event_id)
            SELECT DISTINCT ON (facility_id) facility_id, txid, id FROM {q(partition)}
            WHERE facility_id IS NOT NULL ORDER BY facility_id, txid DESC, id DESC
            ON CONFLICT (facility_id) DO UPDATE SET txid = EXCLUDED.txid, event_id = EXCLUDED.event_id
            WHERE (EXCLUDED.txid, EXCLUDED.event_id) > ({_HORIZON}.txid, {_HORIZON}.event_id)"""  # noqa: S608
    ]


EVENTS = core.register(
    core.MonthPartitioned(
        table=TABLE,
        column="created_at",
        lock=10,
        ahead=lambda: settings.CER_OUTBOX_PARTITIONS_AHEAD,
        keep=lambda: settings.CER_OUTBOX_PARTITIONS_KEEP_MONTHS,
        references=(
            Reference(_DELIVERIES, DELIVERY_FK, ("event_id", "event_created_at"), release=RELEASE_DELIVERIES),
        ),
        before_detach=_horizon_advance,
    )
)
DELIVERY_FK_SQL = EVENTS.references[0].sql(EVENTS)


def is_partitioned() -> bool:
    return core.is_partitioned(EVENTS)


def partition_names() -> list[str]:
    return core.partition_names(EVENTS)


def partitions_maintain(
    *, now: dt.datetime, ahead: int | None = None, keep: int | None = None
) -> core.MaintenanceReport:
    return core.partitions_maintain(EVENTS, now=now, ahead=ahead, keep=keep)


# --- the migration: from one table to partitions and back ----------------------------------------------


def table_partition(*, now: dt.datetime, ahead: int) -> None:
    """Turn the outbox into month partitions, rows, ids and sequence kept (outbox 0005), with the
    deliveries' foreign key on (event_id, event_created_at). Every month that holds events gets its
    partition, however old (`keep=0`): the daily job then detaches the old ones one by one, each a table
    to archive, instead of leaving the history in DEFAULT, which is never detached."""
    core.table_partition(EVENTS, now=now, ahead=ahead, keep=0)


def table_unpartition() -> None:
    """Back to one table with the key (id) (outbox 0005 reversed). The deliveries' single-column
    foreign key is Django's, added back by reversing integration 0004."""
    core.table_unpartition(EVENTS)
