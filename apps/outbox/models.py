"""The transactional outbox: one row per domain event, written in the same transaction as the change.

The changes feed and the webhooks both read from here, so nothing reaches a facility that did not
commit, and nothing that committed is lost.

Ordering without gaps: `txid` is the writing transaction's id (`pg_current_xact_id()`, a database
default). Readers only take events whose transaction is older than the oldest transaction of this
database still running with an id (`selectors.visible_horizon`, read before the events), ordered by
(txid, id). An event that becomes visible later always belongs to a transaction that was still
running at the earlier read, or started after it, so it sorts after everything already returned: a
cursor over (txid, id) never skips an event. (A plain serial id would: a transaction can take a lower
id and commit after a higher one has been read.) Transactions of other databases on the same server
do not count: a long report or backup elsewhere never holds the feed back.
"""

from __future__ import annotations

from django.db import models


class OutboxEvent(models.Model):
    """Month-partitioned on `created_at` (outbox migration 0005, apps/outbox/partitions.py): the
    database's key is (id, created_at), old months are detached after CER_OUTBOX_PARTITIONS_KEEP_MONTHS,
    so nothing but the feeds may depend on an event being kept."""

    id = models.BigAutoField(primary_key=True)
    txid = models.BigIntegerField(editable=False, db_default=models.Value(0))  # real default set in SQL
    created_at = models.DateTimeField(auto_now_add=True)
    type = models.CharField(max_length=64)  # e.g. appointment.booked
    # No index of its own: `outbox_facility_feed` leads with it (every booking writes this table).
    facility = models.ForeignKey(
        "catalog.Facility", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    patient = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    aggregate_type = models.CharField(max_length=32)
    aggregate_id = models.BigIntegerField()
    payload = models.JSONField(default=dict)
    # The web request or task that made the change (X-Request-ID): ties an event to its log lines.
    request_id = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        indexes = [
            models.Index(fields=["facility", "txid", "id"], name="outbox_facility_feed"),
            models.Index(fields=["txid", "id"], name="outbox_feed"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"


class FeedHorizon(models.Model):
    """The last event, in feed order (txid, id), of a facility's events that left with their month
    (`apps.outbox.partitions`: written in the detach's transaction, before the partition goes). A
    changes-feed cursor before it has missed an event that is no longer kept: the feed answers `410
    cursor_expired` instead of going on from the oldest event kept, which would skip it silently."""

    facility = models.OneToOneField(
        "catalog.Facility", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    txid = models.BigIntegerField()
    event_id = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.facility_id}: ({self.txid}, {self.event_id})"
