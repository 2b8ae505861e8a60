"""Month partitions of the outbox (apps/outbox/partitions.py) on real PostgreSQL: events in their
months, the deliveries' composite key, the feeds across partitions, the maintenance that detaches a
month with the delivery log of its events, and the migration on populated data. What every
partitioned table does alike is in tests/core/test_partitions.py."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction

from apps.core import partitions as core
from apps.integration import webhooks
from apps.integration.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from apps.outbox import partitions
from apps.outbox.models import OutboxEvent
from apps.outbox.selectors import event_list_after, events_after
from apps.outbox.services import event_record
from tests.core.partitions import migrate, models_at, own_partitions
from tests.factories import FacilityFactory, PatientFactory, ServiceFactory

WARSAW = ZoneInfo("Europe/Warsaw")
JANUARY, FEBRUARY = dt.date(2031, 1, 1), dt.date(2031, 2, 1)
BOUNDARY = dt.datetime(2031, 2, 1, tzinfo=WARSAW)  # midnight of 1 February in Warsaw
MIN = dt.timedelta(minutes=1)


def _event(at: dt.datetime, facility=None, **fields) -> OutboxEvent:
    with time_machine.travel(at, tick=False), transaction.atomic():
        return event_record(
            type=fields.pop("type", "test.event"),
            aggregate_type="test",
            aggregate_id=fields.pop("aggregate_id", 1),
            facility_id=facility.pk if facility else None,
            **fields,
        )


def _partition_of(event: OutboxEvent) -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text FROM outbox_outboxevent WHERE id = %s", [event.pk])
        return cur.fetchone()[0]


def _subscription(facility) -> WebhookSubscription:
    # A loopback address: a delivery the fan-out starts is refused without any network.
    return WebhookSubscription.objects.create(
        facility=facility, url="https://127.0.0.1/hook", secret_encrypted="-"
    )


def _delivery(subscription, event, **fields) -> WebhookDelivery:
    delivery = webhooks.delivery_new(subscription=subscription, event=event)
    for name, value in fields.items():
        setattr(delivery, name, value)
    delivery.save(force_insert=True)
    return delivery


def _refused_now(sql: str, params: list) -> None:
    """The statement fails its (deferred) foreign key once checked at once."""
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute(sql, params)


def test_events_go_to_their_month_and_a_delivery_refers_to_its_events_whole_key(db):
    """Warsaw months (23:30 on 31 January in Warsaw is still January), DEFAULT past the partitions; a
    delivery carries its event's created_at, another value is no event at all, and an event with a
    delivery cannot be deleted. Deliveries stay once per subscription and event."""
    core.partitions_ensure(partitions.EVENTS, JANUARY, FEBRUARY)
    facility = FacilityFactory()
    january = _event(BOUNDARY - 30 * MIN, facility)
    february = _event(BOUNDARY + 10 * MIN, facility)
    beyond = _event(dt.datetime(2035, 3, 1, tzinfo=WARSAW), facility)
    assert [_partition_of(e) for e in (january, february, beyond)] == [
        "outbox_outboxevent_p2031_01",
        "outbox_outboxevent_p2031_02",
        "outbox_outboxevent_default",
    ]

    subscription = _subscription(facility)
    delivery = _delivery(subscription, january)
    assert delivery.event_created_at == january.created_at
    assert WebhookDelivery.objects.select_related("event").get(pk=delivery.pk).event == january
    _refused_now(
        "UPDATE integration_webhookdelivery SET event_created_at = %s WHERE id = %s",
        [february.created_at, delivery.pk],
    )
    _refused_now("DELETE FROM outbox_outboxevent WHERE id = %s", [january.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        _delivery(subscription, january)
    assert OutboxEvent.objects.filter(pk__in=[january.pk, february.pk, beyond.pk]).count() == 3


@pytest.mark.parametrize("facility", [False, True], ids=["all", "facility"])
def test_the_feeds_read_each_partitions_index_in_order_and_merge_them_without_a_sort(db, facility):
    """Plans at volume are in docs/scaling.md (EXPLAIN ANALYZE on a populated outbox). Here, with
    sorts and scans that are not index scans priced out, the planner must still find a plan: each
    partition's feed index read in (txid, id) order from the cursor on (a bound of the index scan,
    not a filter over the events before it) under a Merge Append, so LIMIT stops early. (A facility's
    feed may read either index: on empty partitions they cost the same.)"""
    core.partitions_ensure(partitions.EVENTS, JANUARY, FEBRUARY)
    qs = events_after(horizon=2**62, after=(1000, 5), facility_id=7 if facility else None)[:100]
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cur:
        for knob in ("enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_incremental_sort"):
            cur.execute(f"SET LOCAL {knob} = off")
        cur.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent IN ('outbox_feed'::regclass, 'outbox_facility_feed'::regclass)",
        )
        children = {row[0] for row in cur.fetchall()}
    assert "Merge Append" in plan, plan
    scans = re.findall(r"Index (?:Only )?Scan using (\S+)", plan)
    assert len(scans) == len(partitions.partition_names()) and set(scans) <= children, plan
    bounds = re.findall(r"Index Cond: (.*)", plan)
    assert len(bounds) == len(scans) and all("txid >= 1000" in bound for bound in bounds), plan
    assert not re.search(r"(^|->)\s*(Incremental )?Sort\s+\(", plan, re.MULTILINE), plan


def test_the_feed_follows_commit_order_across_months_and_fan_out_copies_each_events_key(transactional_db):
    """GIVEN an event of February committed before one of January (commit order is not month order)
    WHEN the feed and the webhook fan-out read them THEN both come in commit order, a cursor taken
    between them goes on with the second, and each delivery carries its event's created_at."""
    with own_partitions(partitions.EVENTS, truncate=("outbox_outboxevent", "integration_webhookdelivery")):
        core.partitions_ensure(partitions.EVENTS, JANUARY, FEBRUARY)
        facility = FacilityFactory()
        subscription = _subscription(facility)
        first = _event(BOUNDARY + 10 * MIN, facility)
        second = _event(BOUNDARY - 10 * MIN, facility)
        assert _partition_of(first) != _partition_of(second)

        assert [e.pk for e in event_list_after(after=None, facility_id=facility.pk)] == [first.pk, second.pk]
        page = event_list_after(after=None, limit=1)
        assert [e.pk for e in event_list_after(after=(page[0].txid, page[0].pk))] == [second.pk]

        webhooks.webhooks_fan_out()
        deliveries = WebhookDelivery.objects.filter(subscription=subscription).order_by("event_id")
        assert [(d.event_id, d.event_created_at) for d in deliveries] == [
            (first.pk, first.created_at),
            (second.pk, second.created_at),
        ]


# --- the maintenance: a month detached with the delivery log of its events --------------------------

NOW = dt.datetime(2032, 5, 10, 12, tzinfo=WARSAW)
KEEP = 145  # months before May 2032: from April 2020 on


def _in(month: dt.date, day: int = 15) -> dt.datetime:
    return dt.datetime(month.year, month.month, day, 12, tzinfo=WARSAW)


def test_maintenance_detaches_a_month_with_its_finished_deliveries_and_keeps_one_still_delivering(db):
    """GIVEN three old months: January 2020 with a delivered delivery (and its attempt), February with
    a failed and a pending one, March without any; and May and June 2032 events in DEFAULT, one with
    a pending delivery WHEN the job runs THEN May and June get their partitions with their events (the
    deliveries' key still valid), January and March are detached (January's delivery log deleted
    with them), February is kept with both deliveries; once its last delivery ends, the next run
    detaches it too."""
    jan, feb, mar = dt.date(2020, 1, 1), dt.date(2020, 2, 1), dt.date(2020, 3, 1)
    core.partitions_ensure(partitions.EVENTS, jan, mar)
    facility = FacilityFactory()
    subscription = _subscription(facility)
    delivered = _delivery(subscription, _event(_in(jan), facility), status="delivered")
    WebhookAttempt.objects.create(delivery=delivered, status_code=204)
    failed = _delivery(subscription, _event(_in(feb), facility), status="failed")
    pending = _delivery(subscription, _event(_in(feb, 20), facility))
    _event(_in(mar), facility)
    may = _event(_in(dt.date(2032, 5, 1), 2), facility)
    june = _event(_in(dt.date(2032, 6, 1), 2), facility)
    pending_may = _delivery(subscription, may)
    assert {_partition_of(may), _partition_of(june)} == {"outbox_outboxevent_default"}
    with connection.cursor() as cur:
        # The job's steps run in transactions of their own; in this test's, the foreign-key checks of
        # the rows above are due first (ALTER TABLE refuses a table with pending trigger events).
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")

    report = partitions.partitions_maintain(now=NOW, ahead=1, keep=KEEP)

    assert report.created == ["outbox_outboxevent_p2032_05", "outbox_outboxevent_p2032_06"]
    assert [_partition_of(may), _partition_of(june)] == report.created
    assert report.detached == ["outbox_outboxevent_p2020_01", "outbox_outboxevent_p2020_03"]
    assert list(report.kept) == ["outbox_outboxevent_p2020_02"]
    assert "foreign key" in report.kept["outbox_outboxevent_p2020_02"]
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {
        failed.pk,
        pending.pk,
        pending_may.pk,
    }
    assert not WebhookAttempt.objects.exists()
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM outbox_outboxevent_p2020_01")  # a table to archive
        assert cur.fetchone()[0] == 1
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the moved events' deliveries: checked now
        cur.execute("SELECT convalidated FROM pg_constraint WHERE conname = %s", [partitions.DELIVERY_FK])
        assert cur.fetchone() == (True,)

    WebhookDelivery.objects.filter(pk=pending.pk).update(status="delivered")
    again = partitions.partitions_maintain(now=NOW, ahead=1, keep=KEEP)
    assert (again.created, again.detached, again.kept) == ([], ["outbox_outboxevent_p2020_02"], {})
    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [pending_may.pk]


def test_a_feed_cursor_from_before_an_event_that_left_with_its_month_answers_410(db):
    """GIVEN facility A's events in January 2020 and now, and facility B's last January event, WHEN
    January is detached THEN each facility's horizon is its last January event in feed order, and A's
    feed answers `410 cursor_expired` to a cursor before A's horizon (an event after it is gone), but
    not to one at it, nor without a cursor; B's cursor at its own last event stays valid, whatever A
    lost. Detached again with nothing of A's, the horizon does not move back."""
    from apps.integration.selectors import cursor_encode
    from apps.outbox.models import FeedHorizon
    from tests.factories.integration import access_token_create, api_client_create
    from tests.integration.conftest import Api

    jan = dt.date(2020, 1, 1)
    core.partitions_ensure(partitions.EVENTS, jan, jan)
    a, b = FacilityFactory(), FacilityFactory()
    a1, a2 = _event(_in(jan, 10), a), _event(_in(jan, 20), a)
    b1 = _event(_in(jan, 12), b)
    _event(_in(jan, 25))  # no facility: in no facility's feed
    _event(_in(dt.date(2032, 5, 1), 2), a)
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")

    report = partitions.partitions_maintain(now=NOW, ahead=1, keep=KEEP)

    assert "outbox_outboxevent_p2020_01" in report.detached
    horizons = {h.facility_id: (h.txid, h.event_id) for h in FeedHorizon.objects.all()}
    assert horizons == {a.pk: (a2.txid, a2.pk), b.pk: (b1.txid, b1.pk)}
    api_a = Api(access_token_create(api_client_create(facility=a)))
    api_b = Api(access_token_create(api_client_create(facility=b)))
    expired = api_a.get(f"/api/v1/changes?cursor={cursor_encode(a1.txid, a1.pk)}")
    assert expired.status_code == 410
    assert expired["Content-Type"] == "application/problem+json"
    assert expired.json()["code"] == "cursor_expired"
    assert api_a.get(f"/api/v1/changes?cursor={cursor_encode(a2.txid, a2.pk)}").status_code == 200
    assert api_a.get("/api/v1/changes").status_code == 200
    assert api_b.get(f"/api/v1/changes?cursor={cursor_encode(b1.txid, b1.pk)}").status_code == 200

    core.partitions_ensure(partitions.EVENTS, dt.date(2020, 2, 1), dt.date(2020, 2, 1))
    _event(_in(dt.date(2020, 2, 1)), b)
    partitions.partitions_maintain(now=NOW, ahead=1, keep=KEEP)
    assert FeedHorizon.objects.get(facility=a).event_id == a2.pk
    assert FeedHorizon.objects.get(facility=b).event_id != b1.pk  # February's event: later


# --- the migration, on populated data --------------------------------------------------------------

BEFORE = [
    ("outbox", "0004_waitlist_joins_index"),
    ("integration", "0003_changes_read_scope"),
    ("booking", "0006_lean_indexes"),
]
EVENT_COLUMNS = "id, txid, created_at, type, aggregate_type, aggregate_id, payload, facility_id, patient_id"


def _rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _insert_event(at: dt.datetime, type: str, aggregate_id: int, facility_id=None, payload="{}") -> int:
    return _rows(
        "INSERT INTO outbox_outboxevent"
        " (created_at, type, aggregate_type, aggregate_id, payload, facility_id)"
        " VALUES (%s, %s, 'registration', %s, %s, %s) RETURNING id",
        [at, type, aggregate_id, payload, facility_id],
    )[0][0]


def _insert_delivery(subscription_id: int, event_id: int, status: str) -> int:
    return _rows(
        "INSERT INTO integration_webhookdelivery"
        " (subscription_id, event_id, status, attempts, next_attempt_at, last_error, created_at)"
        " VALUES (%s, %s, %s, 0, now(), '', now()) RETURNING id",
        [subscription_id, event_id, status],
    )[0][0]


def _constraint(name: str) -> tuple[str, bool] | None:
    found = _rows(
        "SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE conname = %s", [name]
    )
    return found[0] if found else None


def test_the_migration_partitions_a_populated_outbox_keeping_rows_ids_sequence_keys_and_who_registered(
    transactional_db,
):
    """GIVEN the schema before outbox 0005 (one table, Django's delivery key, no `registered_by`)
    holding events of an old month, of both sides of a month boundary, of year 9999 and of today, two
    of them joins of waiting-list entries (one by a facility) and two with deliveries WHEN migrated
    forward THEN every event is in its month's partition (the old month too) or DEFAULT with its id,
    txid and payload, the sequence continues, each delivery carries its event's created_at under the
    composite key, and each entry knows who registered it; AND migrated back THEN one table again with
    the same rows, Django's key and the join index, the sequence still going on."""
    with own_partitions(partitions.EVENTS, truncate=("outbox_outboxevent", "integration_webhookdelivery")):
        try:
            migrate(BEFORE)
            assert not partitions.is_partitioned()
            old = models_at(BEFORE)
            facility = FacilityFactory()
            service = ServiceFactory()
            entries = [
                old.get_model("booking", "Registration").objects.create(
                    patient_id=PatientFactory().pk,
                    service_id=service.pk,
                    status="waiting",
                    joined_at=BOUNDARY,
                )
                for _ in range(2)
            ]
            joined = '{"after": "joined"}'
            events = [
                _insert_event(dt.datetime(2019, 6, 10, tzinfo=WARSAW), "test.old", 0),
                _insert_event(
                    BOUNDARY - 30 * MIN, "registration.waiting", entries[0].pk, facility.pk, joined
                ),
                _insert_event(BOUNDARY + 10 * MIN, "registration.waiting", entries[1].pk, None, joined),
                _insert_event(dt.datetime(9999, 1, 4, tzinfo=dt.UTC), "test.far", 0, facility.pk),
                _insert_event(dt.datetime.now(tz=dt.UTC), "test.today", 0, facility.pk),
            ]
            subscription = _subscription(facility)
            deliveries = [
                _insert_delivery(subscription.pk, events[1], "delivered"),
                _insert_delivery(subscription.pk, events[3], "pending"),
            ]
            rows = _rows(f"SELECT {EVENT_COLUMNS} FROM outbox_outboxevent ORDER BY id")
            last_value = _rows("SELECT last_value FROM outbox_outboxevent_id_seq")[0][0]

            migrate(None)

            assert partitions.is_partitioned()
            assert _rows(f"SELECT {EVENT_COLUMNS} FROM outbox_outboxevent ORDER BY id") == rows
            placed = dict(_rows("SELECT id, tableoid::regclass::text FROM outbox_outboxevent"))
            today = core.month_of(dt.datetime.now(tz=dt.UTC))
            assert [placed[e] for e in events] == [
                "outbox_outboxevent_p2019_06",
                "outbox_outboxevent_p2031_01",
                "outbox_outboxevent_p2031_02",
                "outbox_outboxevent_default",
                partitions.EVENTS.partition_name(today),
            ]
            assert [e.pk for e in event_list_after(after=None)] == [
                row[0] for row in sorted(rows, key=lambda r: (r[1], r[0]))
            ]
            with transaction.atomic():
                assert _event(dt.datetime.now(tz=dt.UTC)).pk == last_value + 1  # the sequence went on
            assert _rows(
                "SELECT d.id, d.event_created_at = e.created_at FROM integration_webhookdelivery d"
                " JOIN outbox_outboxevent e ON e.id = d.event_id ORDER BY d.id"
            ) == [(deliveries[0], True), (deliveries[1], True)]
            definition, validated = _constraint(partitions.DELIVERY_FK)
            assert validated and definition.startswith(
                "FOREIGN KEY (event_id, event_created_at) REFERENCES outbox_outboxevent(id, created_at)"
            )
            assert _constraint("outbox_outboxevent_pkey")[0] == "PRIMARY KEY (id, created_at)"
            _refused_now("DELETE FROM outbox_outboxevent WHERE id = %s", [events[1]])
            from apps.booking.models import Registration

            assert list(Registration.objects.order_by("pk").values_list("registered_by", flat=True)) == [
                facility.pk,
                None,
            ]
            assert not _rows("SELECT 1 FROM pg_class WHERE relname = 'outbox_waitlist_joins'")

            migrate(BEFORE)

            assert not partitions.is_partitioned()
            assert (
                _rows(
                    f"SELECT {EVENT_COLUMNS} FROM outbox_outboxevent WHERE id <> %s ORDER BY id",
                    [last_value + 1],
                )
                == rows
            )
            assert _constraint("outbox_outboxevent_pkey")[0] == "PRIMARY KEY (id)"
            assert _rows(
                "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a"
                " ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)"
                " WHERE c.conrelid = 'integration_webhookdelivery'::regclass AND c.contype = 'f'"
                " AND c.confrelid = 'outbox_outboxevent'::regclass"
            ) == [("event_id",)]
            assert _rows("SELECT 1 FROM pg_class WHERE relname = 'outbox_waitlist_joins'") == [(1,)]
            assert _insert_event(dt.datetime.now(tz=dt.UTC), "test.after", 0) == last_value + 2
        finally:
            migrate(None)
