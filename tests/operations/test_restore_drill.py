"""The restore drill's dump, restore and checks (scripts/restore_drill.py) on data the booking services
wrote; `make restore-drill` runs the same on the demo data set (CI, .ci/run). A restore that lost a row,
a constraint or broke an invariant is caught."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.db import connection

from apps.booking import services as booking
from apps.booking.models import Appointment
from scripts import restore_drill
from tests.factories import FacilityFactory, ReasonCodeFactory
from tests.integration.conftest import _world

pytestmark = pytest.mark.slow


@pytest.fixture
def populated(transactional_db) -> str:
    """The test database with committed bookings, a cancellation and their outbox events."""
    world = _world(FacilityFactory())
    ReasonCodeFactory(code="PATIENT_REQUEST", kind="patient_cancel")
    booking.appointment_cancel_by_patient(appointment=world.booking)
    return restore_drill.with_database(os.environ["DATABASE_URL"], connection.settings_dict["NAME"])


@pytest.fixture
def restored(populated) -> Iterator[str]:
    name = f"cer_drill_test_{os.getpid()}"
    admin = restore_drill.with_database(os.environ["DATABASE_URL"], "postgres")
    with restore_drill.connect(admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = restore_drill.with_database(admin, name)
    restore_drill.dump_and_restore(populated, url, restore_drill.server_major(admin))
    yield url
    with restore_drill.connect(admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_dump_restored_into_a_new_database_passes_every_check(populated, restored):
    assert Appointment.objects.exists()

    assert restore_drill.compare(populated, restored) == []


def test_a_lost_row_a_dropped_constraint_and_a_broken_invariant_are_each_caught(populated, restored):
    with restore_drill.connect(restored) as conn:
        conn.execute("DELETE FROM outbox_outboxevent WHERE id = (SELECT min(id) FROM outbox_outboxevent)")
        fk = conn.execute(
            "SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'booking_appointment'::regclass AND contype = 'f'"
        ).fetchone()[0]
        conn.execute(f'ALTER TABLE booking_appointment DROP CONSTRAINT "{fk}"')
        conn.execute(
            "UPDATE scheduling_slot SET status = 'free' WHERE id IN "
            "(SELECT slot_id FROM booking_appointment WHERE status IN ('booked', 'confirmed'))"
        )

    failures = restore_drill.compare(populated, restored)

    assert any(f.startswith("row counts") and "outbox_outboxevent" in f for f in failures)
    assert any("constraints" in f and fk in f for f in failures)
    assert "invariant: a live appointment's slot is booked" in " ".join(failures)


def test_a_feed_whose_new_events_would_sort_before_restored_ones_is_caught(populated, restored):
    """A logical restore into a new cluster whose transaction counter is behind the restored txids
    (docs/operations.md): simulated by pushing the restored events' txids past the counter."""
    with restore_drill.connect(restored) as conn:
        conn.execute("UPDATE outbox_outboxevent SET txid = txid + 1000000000")
        ok, detail = restore_drill.feed_continues(conn)

    assert not ok
    assert "not [" in detail


def test_the_checks_alone_compare_two_databases_from_the_command_line(populated, restored, capsys):
    """The documented command for checking a restore from a base backup and WAL (docs/operations.md)."""
    assert restore_drill.main(["--source", populated, "--restored", restored]) == 0
    assert "FAIL" not in capsys.readouterr().out
