"""The outbox horizon: readers never skip an event, and only this database's transactions hold them back."""

import psycopg
import pytest
from django.db import connection, transaction

from apps.outbox.selectors import event_list_after, visible_horizon
from apps.outbox.services import event_record

pytestmark = pytest.mark.django_db(transaction=True)


def _record(n: int) -> int:
    with transaction.atomic():
        return event_record(type="test.event", aggregate_type="test", aggregate_id=n).pk


def _connect(dbname: str) -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["dbname"] = dbname
    return psycopg.connect(**params)


def test_a_long_transaction_in_another_database_does_not_hold_the_feed_back():
    with _connect("postgres") as elsewhere:
        elsewhere.execute("SELECT pg_current_xact_id()")  # a transaction with an id, left open
        first = _record(1)
        assert [e.pk for e in event_list_after(after=None)] == [first]
        elsewhere.rollback()


def test_an_open_writer_in_this_database_holds_later_events_until_it_ends():
    early = _record(1)
    with _connect(connection.settings_dict["NAME"]) as writer:
        # A transaction that has written an event (with a lower txid) but not committed yet.
        writer.execute(
            "INSERT INTO outbox_outboxevent (created_at, type, aggregate_type, aggregate_id, payload)"
            " VALUES (now(), 'test.slow', 'test', 2, '{}') RETURNING id"
        )
        slow = writer.execute("SELECT max(id) FROM outbox_outboxevent").fetchone()
        later = _record(3)
        seen = event_list_after(after=None)
        assert [e.pk for e in seen] == [early]  # `later` waits: the open writer's event sorts before it
        cursor = (seen[-1].txid, seen[-1].pk)
        writer.commit()
    assert slow is not None
    after = [e.type for e in event_list_after(after=cursor)]
    assert after == ["test.slow", "test.event"]  # nothing skipped, in commit-safe order
    assert [e.pk for e in event_list_after(after=cursor)][-1] == later


def test_the_horizon_is_read_afresh_within_one_transaction():
    """pg_stat_activity is frozen at its first read in a transaction unless the snapshot is cleared."""
    with transaction.atomic():
        visible_horizon()
        with _connect(connection.settings_dict["NAME"]) as writer:
            xid = writer.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
            assert xid is not None
            assert visible_horizon() <= xid[0]
            writer.rollback()


def test_a_reader_whose_own_id_is_newer_than_the_snapshot_still_sees_committed_events():
    """Found by the fault suite (a real worker's fan-out saw nothing): a snapshot's xmax is one past the
    newest *finished* transaction, so a running transaction (the fan-out's own, holding its cursor's
    row lock) may have an id at or above it when another database's transaction took an id in
    between. Such an id is newer than the snapshot, not one from before a wrap-around of the counter."""
    event = _record(1)
    with _connect("postgres") as elsewhere:
        elsewhere.execute("SELECT pg_current_xact_id()")  # takes the next id and stays open
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")  # this reader's own id, newer
            own = cursor.fetchone()[0]
            horizon = visible_horizon()
            seen = [e.pk for e in event_list_after(after=None)]
        elsewhere.rollback()
    assert 0 < horizon <= own
    assert seen == [event]
