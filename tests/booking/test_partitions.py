"""Month partitions of the appointments (issue 19, apps/booking/partitions.py): the rules that must hold
across months (one live appointment per registration, and per patient and service) kept by the key
table on every path, the copies of an appointment's start, and the migration of a populated table."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.booking import partitions
from apps.booking.models import LIVE_APPOINTMENT, Appointment, LiveAppointment
from apps.booking.services import (
    appointment_book,
    appointment_cancel_by_facility,
    appointment_cancel_by_patient,
    appointment_confirm,
    appointment_reschedule,
)
from apps.core import partitions as core
from apps.notifications.models import Message
from apps.scheduling import partitions as slot_partitions
from tests.core.partitions import migrate
from tests.core.partitions import own_partitions as shared_own_partitions
from tests.factories import (
    AppointmentFactory,
    PatientFactory,
    RegistrationFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)

# Two months far from today's partitions, made by the tests themselves.
MAY, JUNE = dt.date(2031, 5, 1), dt.date(2031, 6, 1)


def _at(month: dt.date, day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime.combine(month.replace(day=day), dt.time(hour), tzinfo=core.WARSAW)


def _partition_of(appointment_id: int) -> str:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT tableoid::regclass::text FROM booking_appointment WHERE id = %s", [appointment_id]
        )
        return cur.fetchone()[0]


def _keys_are_the_live_appointments() -> None:
    assert sorted(
        LiveAppointment.objects.values_list(
            "appointment_id", "start", "registration_id", "patient_id", "service_id"
        )
    ) == sorted(
        Appointment.objects.filter(status__in=LIVE_APPOINTMENT).values_list(
            "id", "start", "registration_id", "patient_id", "service_id"
        )
    )


@pytest.fixture
def two_months(db):
    """May and June 2031 partitions of the slots and appointments (in the test's transaction)."""
    for table in (slot_partitions.SLOTS, partitions.APPOINTMENTS):
        core.partitions_ensure(table, MAY, JUNE)


def test_the_appointments_are_partitioned_by_month_and_each_partition_carries_the_slots_key(two_months):
    assert partitions.is_partitioned()
    may = AppointmentFactory(slot__start=_at(MAY, 31, 23))  # 31 May 23:00 in Warsaw: 21:00 UTC
    june = AppointmentFactory(slot__start=_at(JUNE, 1, 0))  # 1 June 00:00 in Warsaw: still 31 May in UTC
    assert _partition_of(may.pk) == partitions.APPOINTMENTS.partition_name(MAY)
    assert _partition_of(june.pk) == partitions.APPOINTMENTS.partition_name(JUNE)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint WHERE conname = %s ORDER BY 1",
            [slot_partitions.APPOINTMENT_FK],
        )
        declared = [row[0] for row in cur.fetchall()]
    assert declared == sorted(partitions.partition_names())  # on each partition, not on the parent
    # ... and it holds: an appointment whose start is not its slot's is refused
    with pytest.raises(IntegrityError), transaction.atomic():
        AppointmentFactory(start=_at(JUNE, 2))
        with connection.cursor() as cur:
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_a_second_live_appointment_of_a_registration_or_of_a_patient_for_a_service_is_refused_across_months(
    two_months,
):
    """GIVEN a live appointment in May WHEN anything writes a second live one for the same
    registration, or for the same patient and service, in June (another partition, which no index of
    the partitioned table could see) THEN the database refuses it, named as the rule; an ended one
    does not count, and one that comes back to life is refused the same way."""
    first = AppointmentFactory(slot__start=_at(MAY, 10))
    service = first.service
    for rule, fields in (
        # (another patient: this one breaks the registration's rule alone, whichever index is checked first)
        (
            "one_live_appointment_per_registration",
            {"registration": first.registration, "patient": PatientFactory()},
        ),
        (
            "one_live_appointment_per_patient_service",
            {"registration": RegistrationFactory(patient=first.patient, service=service, status="closed")},
        ),
    ):
        with pytest.raises(IntegrityError, match=rule), transaction.atomic():
            AppointmentFactory(slot__start=_at(JUNE, 10), slot__schedule__service=service, **fields)
    other = AppointmentFactory(
        slot__start=_at(JUNE, 11),
        slot__schedule__service=service,
        registration=first.registration,
        patient=PatientFactory(),  # the registration's rule alone
        status=Appointment.Status.CANCELLED_BY_FACILITY,
    )  # an ended one is no second live one
    with pytest.raises(IntegrityError, match="one_live_appointment_per_registration"), transaction.atomic():
        Appointment.objects.filter(pk=other.pk).update(status=Appointment.Status.BOOKED)
    Appointment.objects.filter(pk=first.pk).update(status=Appointment.Status.ATTENDED)
    Appointment.objects.filter(pk=other.pk).update(status=Appointment.Status.CONFIRMED)
    _keys_are_the_live_appointments()
    assert LiveAppointment.objects.get().appointment_id == other.pk


def _scans_by_partition() -> dict[str, int]:
    """Index and sequential scans of each appointment and slot partition so far in this transaction."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables"
            " WHERE relname LIKE 'booking\\_appointment\\_%%' OR relname LIKE 'scheduling\\_slot\\_%%'"
        )
        return dict(cur.fetchall())


def test_the_paths_that_change_one_booking_read_only_its_months_partitions(two_months):
    """GIVEN live bookings in May and June WHEN the June one is confirmed and cancelled by the patient
    THEN no statement of those paths scans a partition of another month (each names the appointment
    by id and start, and its slot by id and start): by id alone every partition would be probed, ~33
    at the default retention. (Moving a booking reads the new slot by its id alone, as booking does.)"""
    schedule = ScheduleFactory(service=ServiceFactory(code="PART_2", referral_required=False))
    may = AppointmentFactory(slot__start=_at(MAY, 20), slot__schedule=schedule)
    june = AppointmentFactory(slot__start=_at(JUNE, 10), slot__schedule=schedule, patient=PatientFactory())
    before = _scans_by_partition()
    appointment_confirm(appointment=june)
    appointment_cancel_by_patient(appointment=june)
    after = _scans_by_partition()
    scanned = {name for name, count in after.items() if count > before.get(name, 0)}
    assert scanned  # the June partitions were read
    assert scanned <= {
        partitions.APPOINTMENTS.partition_name(JUNE),
        slot_partitions.SLOTS.partition_name(JUNE),
    }
    june.refresh_from_db()
    june.slot.refresh_from_db()
    assert (june.status, june.version, june.confirmed_at is not None) == ("cancelled_by_patient", 3, True)
    assert june.slot.status == "free"
    assert Appointment.objects.get(pk=may.pk).status == "booked"


def test_a_booking_read_by_its_id_alone_reads_only_its_months_partitions(two_months):
    """GIVEN live bookings in May and June WHEN the June one is read by its id alone, as a URL or an API
    path names it (the facility API's booking, the patient's manage link, the patient's page, whose it
    is) THEN only the June partitions of the appointments and slots are scanned: its start is found
    first through the live key table (`booking.selectors.appointment_in_month`)."""
    from apps.booking.selectors import appointment_get_for_patient, appointment_in_month
    from apps.integration.selectors import FacilityScope
    from apps.portal.manage import appointment_for_token, manage_token
    from apps.portal.selectors import appointment_owner

    may = AppointmentFactory(slot__start=_at(MAY, 20))
    june = AppointmentFactory(slot__start=_at(JUNE, 10), patient=PatientFactory())
    before = _scans_by_partition()
    read = [
        FacilityScope(june.facility).appointment(str(june.pk)),
        FacilityScope(june.facility).appointment(june.pk, start=june.start),  # an answer's reload
        appointment_for_token(manage_token(appointment_id=june.pk)),
        appointment_get_for_patient(patient=june.patient, appointment_id=june.pk),
    ]
    owner = appointment_owner(appointment_id=june.pk)
    after = _scans_by_partition()
    scanned = {name for name, count in after.items() if count > before.get(name, 0)}
    assert scanned == {
        partitions.APPOINTMENTS.partition_name(JUNE),
        slot_partitions.SLOTS.partition_name(JUNE),
    }
    assert [a.pk for a in read] == [june.pk] * 4 and owner == june.patient_id
    assert read[0].slot.pk == june.slot_id
    # an ended booking is found by id across the months; none that does not exist, or could not
    Appointment.objects.filter(pk=may.pk).update(status=Appointment.Status.CANCELLED_BY_PATIENT)
    assert appointment_in_month(may.pk, slot=True) == {
        "pk": may.pk,
        "start": may.start,
        "slot__start": may.start,
    }
    assert appointment_in_month(june.pk) == {"pk": june.pk, "start": june.start}
    assert appointment_in_month(0) is None and appointment_in_month(2**63) is None
    assert appointment_in_month(june.pk + may.pk + 1000) is None


def test_the_key_table_follows_every_path_of_a_booking(db, django_capture_on_commit_callbacks):
    """Booked, confirmed, moved, cancelled by the facility (rebooked or back on the list), cancelled by
    the patient: after each step the key table holds exactly the live appointments, with their start."""
    service = ServiceFactory(code="PART_1", referral_required=False)
    schedule = ScheduleFactory(service=service)
    slots = SlotFactory.create_batch(4, schedule=schedule)
    patients = PatientFactory.create_batch(2)
    first = appointment_book(slot_id=slots[0].pk, patient=patients[0], channel="web")
    second = appointment_book(slot_id=slots[1].pk, patient=patients[1], channel="web")
    _keys_are_the_live_appointments()
    appointment_confirm(appointment=first)
    _keys_are_the_live_appointments()
    moved = appointment_reschedule(appointment=first, new_slot_id=slots[2].pk)
    _keys_are_the_live_appointments()
    assert LiveAppointment.objects.filter(appointment_id=moved.pk).exists()
    assert not LiveAppointment.objects.filter(appointment_id=first.pk).exists()
    appointment_cancel_by_facility(appointment=moved, reason_code="DOCTOR_ILLNESS")
    _keys_are_the_live_appointments()
    appointment_cancel_by_patient(appointment=second)
    _keys_are_the_live_appointments()
    assert Appointment.objects.filter(status__in=LIVE_APPOINTMENT).count() <= 1  # rebooked, or waiting


def test_a_message_and_an_inbound_sms_carry_their_appointments_start_and_name_only_real_ones(db):
    appointment = AppointmentFactory()
    message = Message.objects.create(
        key="partitions-1",
        kind="reminder",
        channel="sms",
        patient=appointment.patient,
        appointment=appointment,
        subject="s",
        body_text="t",
        expires_at=timezone.now() + dt.timedelta(days=1),
    )
    message.refresh_from_db()
    assert message.appointment_start == appointment.start
    Message.objects.filter(pk=message.pk).update(appointment=None)
    message.refresh_from_db()
    assert message.appointment_start is None
    with pytest.raises(IntegrityError, match="foreign key"), transaction.atomic():
        Message.objects.filter(pk=message.pk).update(appointment_id=appointment.pk + 10_000)


# --- the migration of a populated table --------------------------------------------------------------

BEFORE = [("booking", "0007_registration_registered_by"), ("notifications", "0001_initial")]


def _rows() -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute("SELECT id, * FROM booking_appointment ORDER BY id")
        return cur.fetchall()


@pytest.fixture
def own_partitions(transactional_db):
    """Partitions the test's migration makes are dropped afterwards, with the rows."""
    with shared_own_partitions(
        slot_partitions.SLOTS, partitions.APPOINTMENTS, truncate=("booking_appointment", "scheduling_slot")
    ):
        yield


def test_the_migration_partitions_a_populated_table_and_back(own_partitions):
    """GIVEN the schema before booking 0008 (one table, three partial unique indexes, Django's keys)
    holding a live booking this month, an ended one and its replacement, a live one in 2099 (beyond the
    partitions made ahead) and a message about one of them WHEN migrated forward THEN every row is kept
    with its id in its month's partition (or DEFAULT), the key table holds the live ones, the message its
    appointment's start, the sequence goes on, the slot's key is on each partition and the keys into the
    table are composite and validated; WHEN migrated back THEN one table with the same rows and rules."""
    try:
        migrate(BEFORE)
        assert not partitions.is_partitioned()
        far = _at(dt.date(2099, 3, 1), 3)
        slot_partitions.partitions_ensure(far, far)  # the slot table is partitioned already
        live = AppointmentFactory()
        ended = AppointmentFactory(status=Appointment.Status.RESCHEDULED, registration=live.registration)
        Appointment.objects.filter(pk=ended.pk).update(rescheduled_to=live)
        distant = AppointmentFactory(slot__start=far)
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO notifications_message (key, kind, channel, patient_id, appointment_id,"
                ' requires_live_appointment, "to", language, subject, body_text, body_html, state,'
                " attempts, last_error, provider_id, created_at, expires_at)"
                " VALUES ('mig-1', 'reminder', 'sms', %s, %s, true, '', 'pl', 's', 't', '', 'pending', 0,"
                " '', '', now(), now())",
                [live.patient_id, live.pk],
            )
            cur.execute("SELECT last_value FROM booking_appointment_id_seq")
            last = cur.fetchone()[0]
        rows = _rows()

        migrate(None)

        assert partitions.is_partitioned()
        assert [row[: len(rows[0])] for row in _rows()] == rows
        current = core.month_of(timezone.now())
        assert _partition_of(live.pk) == partitions.APPOINTMENTS.partition_name(core.month_of(live.start))
        assert core.month_of(live.start) in {current, core.add_months(current, 1)}
        assert _partition_of(distant.pk) == partitions.APPOINTMENTS.default_partition
        assert sorted(LiveAppointment.objects.values_list("appointment_id", flat=True)) == sorted(
            [live.pk, distant.pk]
        )
        assert Message.objects.get(key="mig-1").appointment_start == live.start
        assert Appointment.objects.get(pk=ended.pk).rescheduled_to_id == live.pk
        with connection.cursor() as cur:
            cur.execute(
                "SELECT conrelid::regclass::text, pg_get_constraintdef(oid), convalidated FROM pg_constraint"
                " WHERE confrelid = 'booking_appointment'::regclass AND conparentid = 0 ORDER BY 1"
            )
            into = cur.fetchall()
        assert [(table, valid) for table, _definition, valid in into] == [
            ("booking_liveappointment", True),
            ("notifications_inboundsms", True),
            ("notifications_message", True),
        ]
        assert all("(id, start)" in definition for _table, definition, _valid in into)
        made = AppointmentFactory()
        assert made.pk == last + 1  # the sequence went on
        with pytest.raises(IntegrityError), transaction.atomic():  # the slot's rule, on the parent
            AppointmentFactory(slot=made.slot, start=made.start)
        _keys_are_the_live_appointments()

        migrate(BEFORE)

        assert not partitions.is_partitioned()
        assert [row[: len(rows[0])] for row in _rows() if row[0] != made.pk] == rows
        with (
            pytest.raises(IntegrityError, match="one_live_appointment_per_"),
            transaction.atomic(),
        ):
            AppointmentFactory(registration=made.registration, slot__schedule__service=made.service)
    finally:
        migrate(None)


def test_a_data_fix_that_moves_a_booking_carries_its_key_along(db):
    """No path moves an appointment in time (a new one is made), but a data fix may move a slot and its
    appointment together: the key table's copy of the start follows (ON UPDATE CASCADE) and the slot's
    key holds."""
    appointment = AppointmentFactory()
    later = appointment.start + dt.timedelta(days=1)
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE scheduling_slot SET start = %s, \"end\" = %s + interval '20 minutes' WHERE id = %s",
            [later, later, appointment.slot_id],
        )
        cur.execute("UPDATE booking_appointment SET start = %s WHERE id = %s", [later, appointment.pk])
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert LiveAppointment.objects.get(appointment_id=appointment.pk).start == later
    _keys_are_the_live_appointments()
