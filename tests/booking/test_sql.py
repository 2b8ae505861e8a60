"""The booking core's hand-written SQL (`apps.booking.sql`) against the plain ORM, for the same
operations: each fast path must read and write exactly what the ORM would."""

from __future__ import annotations

import collections
import datetime as dt
import importlib
import re

import pytest
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from apps.booking import sql
from apps.booking.models import Appointment, ReferralTransition, Registration
from apps.booking.services._transitions import appointment_event_new, appointment_new, registration_new
from apps.catalog.models import Entitlement, ReasonCode
from apps.outbox.models import OutboxEvent
from apps.patients.models import Referral, ScreeningRecord
from apps.scheduling.models import Slot
from tests.factories import (
    AppointmentFactory,
    EntitlementFactory,
    FacilityFactory,
    PatientEntitlementFactory,
    PatientFactory,
    ReasonCodeFactory,
    ReferralFactory,
    RegistrationFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)

pytestmark = pytest.mark.django_db


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _orm_last_screening(patient, service) -> dt.date | None:
    return ScreeningRecord.objects.filter(patient=patient, service=service).aggregate(d=Max("performed_on"))[
        "d"
    ]


def _orm_entitlement(patient, on) -> Entitlement | None:
    return (
        Entitlement.objects.filter(
            patiententitlement__patient=patient, patiententitlement__valid_from__lte=on
        )
        .filter(Q(patiententitlement__valid_to__isnull=True) | Q(patiententitlement__valid_to__gte=on))
        .order_by("-priority", "code")
        .first()
    )


def test_the_locked_facts_are_what_the_orm_reads():
    service = ServiceFactory(mammography=True)
    slot = SlotFactory(schedule__service=service)
    patient = PatientFactory()
    patient.screenings.create(service=service, performed_on=dt.date(2024, 3, 1))
    patient.screenings.create(service=service, performed_on=dt.date(2024, 11, 5))
    patient.screenings.create(service=ServiceFactory(), performed_on=dt.date(2025, 2, 1))  # another kind
    # An attended appointment written around the services (which write its record) is no history of its
    # own: the records are (migration booking 0010 wrote any that were missing).
    AppointmentFactory(
        slot__schedule__service=service,
        registration__patient=patient,
        registration__status="closed",
        status="attended",
    )
    strong = EntitlementFactory(code="STRONG", priority=30)
    PatientEntitlementFactory(patient=patient, entitlement=strong)
    PatientEntitlementFactory(patient=patient, entitlement=EntitlementFactory(code="WEAK", priority=5))
    waiting = RegistrationFactory(patient=patient, service=service, status="waiting")
    today = timezone.localdate()
    with transaction.atomic():
        facts = sql.slot_facts(slot_id=slot.pk, patient_id=patient.pk, today=today)
    assert facts is not None
    assert _fields(facts.slot) == _fields(Slot.objects.get(pk=slot.pk))
    assert _fields(facts.slot.service) == _fields(service.__class__.objects.get(pk=service.pk))
    assert facts.slot.facility.pk == slot.facility_id
    assert facts.entitlement == _orm_entitlement(patient, today) == strong
    assert facts.last_screening == _orm_last_screening(patient, service) == dt.date(2024, 11, 5)
    assert facts.waiting_id == waiting.pk
    assert facts.registration_id > 0 and facts.appointment_id > 0
    assert sql.slot_facts(slot_id=0, patient_id=patient.pk, today=today) is None


def test_the_migration_writes_the_record_of_every_attended_screening_that_lacks_one():
    """Booking 0010: the rules read screening records alone, so an attended screening appointment
    written around the services gets its record (Warsaw date, source "cer"), once; one that has it, a
    non-screening service's visit and a live booking get none."""
    backfill = importlib.import_module("apps.booking.migrations.0010_screening_records_of_attended_visits")
    mammo, cardio = ServiceFactory(mammography=True), ServiceFactory(code="KARDIO_X")
    late = dt.datetime(2025, 5, 31, 22, 30, tzinfo=dt.UTC)  # 1 June, 00:30 in Warsaw
    lacking = AppointmentFactory(
        slot__schedule__service=mammo, slot__start=late, registration__status="closed", status="attended"
    )
    recorded = AppointmentFactory(
        slot__schedule__service=mammo, registration__status="closed", status="attended"
    )
    recorded.patient.screenings.create(service=mammo, performed_on=timezone.localdate(recorded.start))
    AppointmentFactory(slot__schedule__service=cardio, registration__status="closed", status="attended")
    AppointmentFactory(slot__schedule__service=mammo)  # live
    with connection.cursor() as cursor:
        cursor.execute(backfill.BACKFILL)
        cursor.execute(backfill.BACKFILL)  # again: nothing more
    assert sorted(
        ScreeningRecord.objects.values_list("patient_id", "service_id", "performed_on", "source")
    ) == sorted(
        [
            (lacking.patient_id, mammo.pk, dt.date(2025, 6, 1), "cer"),
            (recorded.patient_id, mammo.pk, timezone.localdate(recorded.start), "cer"),
        ]
    )


def _records() -> list[tuple]:
    return sorted(ScreeningRecord.objects.values_list("patient_id", "service_id", "performed_on", "source"))


def test_the_database_writes_the_record_of_a_screening_on_every_path_that_makes_it_attended():
    """Booking 0011: an appointment of a screening service that becomes attended has its screening
    record (the visit's Warsaw date, source "cer"), written by the database whatever wrote the state:
    the outcome service, a no-show corrected to attended, a data fix by hand. Once per patient, service
    and day; none for another service, a no-show or a cancellation."""
    from apps.booking import services

    mammo, cardio = ServiceFactory(mammography=True), ServiceFactory(code="KARDIO_Y")
    midnight = dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC)  # 1 April, 00:30 in Warsaw
    past = timezone.now() - dt.timedelta(days=2)
    recorded = AppointmentFactory(slot__schedule__service=mammo, slot__start=midnight)
    corrected, by_hand, cancelled = (
        AppointmentFactory(slot__schedule__service=mammo, slot__start=past + dt.timedelta(hours=i))
        for i in range(3)
    )
    other = AppointmentFactory(slot__schedule__service=cardio, slot__start=past)

    services.appointment_record_outcome(appointment=recorded, outcome="attended", now=midnight)
    no_show_auto = ReasonCode.objects.get(code="NO_SHOW_AUTO")  # the automatic rule's, then corrected
    Appointment.objects.filter(pk=corrected.pk).update(status="no_show", reason=no_show_auto)
    assert not ScreeningRecord.objects.filter(patient_id=corrected.patient_id).exists()
    services.appointment_record_outcome(appointment=corrected, outcome="attended", now=timezone.now())
    Appointment.objects.filter(pk=by_hand.pk).update(status="attended")
    Appointment.objects.filter(pk=by_hand.pk).update(status="attended")  # still attended: nothing more
    services.appointment_record_outcome(appointment=other, outcome="attended", now=timezone.now())
    Appointment.objects.filter(pk=cancelled.pk).update(status="cancelled_by_patient")

    assert _records() == sorted(
        [
            (recorded.patient_id, mammo.pk, dt.date(2026, 4, 1), "cer"),
            (corrected.patient_id, mammo.pk, timezone.localdate(corrected.start), "cer"),
            (by_hand.patient_id, mammo.pk, timezone.localdate(by_hand.start), "cer"),
        ]
    )


def _plans(fragment: str) -> tuple[int, int]:
    """(generic, custom) plans PostgreSQL made so far for this connection's prepared statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE strpos(statement, %s) > 0",
            [fragment],
        )
        (row,) = cursor.fetchall()
    return row


def test_the_facts_statement_is_planned_once_per_connection_not_on_every_booking():
    """PostgreSQL plans a prepared statement 5 times for its values, then keeps its generic plan unless
    that costs more. The facts statement's did: with the waiting state a parameter, the generic plan
    could not use the partial index of live registrations, so every booking planned the statement
    again (most of its database time)."""
    service = ServiceFactory(mammography=True)
    slots = SlotFactory.create_batch(8, schedule__service=service)
    PatientFactory.create_batch(20)
    patient = PatientFactory()
    # A registration table of some size, analyzed: years of closed registrations per patient, which
    # only the index of live ones (its predicate needs the state known when planning) passes over.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {Registration._meta.db_table} (created_at, updated_at, status, priority, urgent,
                joined_at, declined_slot_ids, closed_reason, patient_id, service_id)
            SELECT now(), now(), 'closed', 0, false, now(), '{{}}', 'attended', p.id, %s
            FROM generate_series(1, 40), (SELECT id FROM patients_patient ORDER BY id LIMIT 100) p""",
            [service.pk],
        )
        cursor.execute(f"ANALYZE {Registration._meta.db_table}")
    today = timezone.localdate()
    for slot in slots:
        with transaction.atomic():
            assert sql.slot_facts(slot_id=slot.pk, patient_id=patient.pk, today=today) is not None

    generic, custom = _plans("AS waiting_id")
    assert custom == 5 and generic == 3


@pytest.mark.parametrize("status", ["free", "held", "booked", "blocked", "cancelled"])
@pytest.mark.parametrize("past", [False, True])
def test_slot_taken_agrees_with_the_orm(status, past):
    slot = SlotFactory(status=status, hold_until=timezone.now() if status == "held" else None)
    now = slot.start + dt.timedelta(minutes=1) if past else timezone.now()

    def orm(facility_id=None):
        taken = Slot.objects.filter(pk=slot.pk, start__gt=now).exclude(
            status__in=[Slot.Status.FREE, Slot.Status.HELD]
        )
        return (taken if facility_id is None else taken.filter(facility_id=facility_id)).exists()

    assert sql.slot_taken(slot_id=slot.pk, now=now) is orm()
    assert sql.slot_taken(slot_id=slot.pk, now=now, facility_id=slot.facility_id) is orm(slot.facility_id)
    assert sql.slot_taken(slot_id=slot.pk, now=now, facility_id=0) is orm(0) is False
    assert sql.slot_taken(slot_id=0, now=now) is False


def test_the_slot_taken_read_binds_the_slot_id_alone():
    """Its plan can only probe each month's key, whatever a month's statistics say (with the time, the
    states and the facility bound, a month with stale statistics was scanned by facility)."""
    slot = SlotFactory(status="booked")
    for _ in range(6):
        sql.slot_taken(slot_id=slot.pk, now=timezone.now(), facility_id=slot.facility_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE statement = %s",
            [sql.SLOT_TAKEN_SQL.replace("%s", "$1")],
        )
        assert cursor.fetchall() == [(1,)]


def test_the_one_booking_writer_writes_the_rows_save_would():
    """The same booking written by `booking_write` and by the ORM's save(): equal rows but the ids."""
    service = ServiceFactory()
    schedule = ScheduleFactory(service=service)
    now = timezone.now()

    def booking(write_fast: bool):
        start = now + dt.timedelta(days=5, hours=1 if write_fast else 2)
        made = SlotFactory(schedule=schedule, start=start, end=start + dt.timedelta(minutes=20))
        slot = Slot.objects.select_related("service", "facility").get(pk=made.pk)
        patient = PatientFactory()
        registration = registration_new(
            patient=patient, service=service, referral=None, status="booked", now=now, entitlement=None
        )
        with transaction.atomic():
            if write_fast:
                facts = sql.slot_facts(slot_id=slot.pk, patient_id=patient.pk, today=timezone.localdate(now))
                registration.pk = facts.registration_id
                appointment = appointment_new(registration=registration, slot=slot, channel="desk", now=now)
                appointment.pk = facts.appointment_id
                event = appointment_event_new(appointment, "appointment.booked")
                assert sql.booking_write(
                    registration=registration, new=True, appointment=appointment, event=event, now=now
                )
            else:
                registration.save(force_insert=True)
                appointment = appointment_new(registration=registration, slot=slot, channel="desk", now=now)
                appointment.save(force_insert=True)
                Slot.objects.filter(pk=slot.pk).update(
                    status="booked", hold_until=None, held_by=None, updated_at=now
                )
                appointment_event_new(appointment, "appointment.booked").save()
        return registration, appointment, slot

    fast = booking(True)
    orm = booking(False)
    differing = {
        "id",
        "registration_id",
        "patient_id",
        "slot_id",
        "start",
        "confirm_by",
        "created_at",
        "updated_at",
    }

    def stored(model, pk):
        return {k: v for k, v in _fields(model.objects.get(pk=pk)).items() if k not in differing}

    assert stored(Registration, fast[0].pk) == stored(Registration, orm[0].pk)
    assert stored(Appointment, fast[1].pk) == stored(Appointment, orm[1].pk)
    for _, appointment, _ in (fast, orm):
        row = Appointment.objects.get(pk=appointment.pk)
        assert row.start - row.confirm_by == dt.timedelta(hours=service.confirm_deadline_hours)
    assert (
        Slot.objects.get(pk=fast[2].pk).status == Slot.Status.BOOKED == Slot.objects.get(pk=orm[2].pk).status
    )
    events = [
        OutboxEvent.objects.get(aggregate_type="appointment", aggregate_id=a.pk) for a in (fast[1], orm[1])
    ]
    assert events[0].type == events[1].type and events[0].facility_id == events[1].facility_id
    fast_payload = {k: v for k, v in events[0].payload.items() if not k.endswith("_id") and k != "start"}
    orm_payload = {k: v for k, v in events[1].payload.items() if not k.endswith("_id") and k != "start"}
    assert fast_payload == orm_payload
    assert fast[1]._state.adding is False  # a later save() updates the row written in SQL


def test_the_writer_writes_nothing_for_a_second_live_registration():
    service = ServiceFactory(mammography=True)
    existing = AppointmentFactory(slot__schedule__service=service)
    patient = existing.patient
    slot = Slot.objects.select_related("service", "facility").get(
        pk=SlotFactory(schedule__service=service).pk
    )
    now = timezone.now()
    registration = registration_new(
        patient=patient, service=service, referral=None, status="booked", now=now, entitlement=None
    )
    facts = sql.slot_facts(slot_id=slot.pk, patient_id=patient.pk, today=timezone.localdate(now))
    registration.pk = facts.registration_id
    appointment = appointment_new(registration=registration, slot=slot, channel="web", now=now)
    appointment.pk = facts.appointment_id
    before = (Registration.objects.count(), Appointment.objects.count(), OutboxEvent.objects.count())
    with transaction.atomic():
        written = sql.booking_write(
            registration=registration,
            new=True,
            appointment=appointment,
            event=appointment_event_new(appointment, "appointment.booked"),
            now=now,
        )
    assert written is False
    assert (Registration.objects.count(), Appointment.objects.count(), OutboxEvent.objects.count()) == before
    assert Slot.objects.get(pk=slot.pk).status == Slot.Status.FREE


def test_the_referral_transition_is_the_orm_update_plus_its_record():
    referral = ReferralFactory()
    registration = RegistrationFactory(patient=referral.patient, service=referral.service, referral=referral)
    now = timezone.now()
    assert sql.referral_transition(
        referral_id=referral.pk,
        registration_id=registration.pk,
        from_statuses=["issued"],
        to="registered",
        reason="booked",
        now=now,
    )
    stored = Referral.objects.get(pk=referral.pk)
    assert (stored.status, stored.status_at) == ("registered", now)
    step = ReferralTransition.objects.get(referral=referral)
    assert (step.from_status, step.to_status, step.reason, step.registration_id, step.at) == (
        "issued",
        "registered",
        "booked",
        registration.pk,
        now,
    )
    # From a state it is not in: nothing changes, nothing is recorded.
    assert not sql.referral_transition(
        referral_id=referral.pk,
        registration_id=None,
        from_statuses=["issued"],
        to="realised",
        reason="x",
        now=now,
    )
    assert (
        ReferralTransition.objects.count() == 1
        and Referral.objects.get(pk=referral.pk).status == "registered"
    )


def test_waitlist_candidates_are_the_orm_queue_of_matching_entries():
    service = ServiceFactory(mammography=True)
    slot = SlotFactory(schedule__service=service)
    entries = [
        RegistrationFactory(
            service=service,
            status="waiting",
            priority=p,
            urgent=u,
            joined_at=timezone.now() - dt.timedelta(hours=h),
        )
        for p, u, h in [(0, False, 5), (10, False, 1), (0, True, 2), (0, False, 9)]
    ]
    RegistrationFactory(
        service=service, status="waiting", facility=FacilityFactory()
    )  # prefers another place
    orm = list(
        Registration.objects.filter(pk__in=[e.pk for e in entries]).order_by(
            "-priority", "-urgent", "joined_at", "id"
        )
    )
    with transaction.atomic():
        found = sql.waitlist_candidates(slot=slot, now=timezone.now(), skip=[], limit=10)
    assert [c.registration_id for c in found] == [r.pk for r in orm]
    assert [c.patient.pk for c in found] == [r.patient_id for r in orm]
    with transaction.atomic():
        skipped = sql.waitlist_candidates(slot=slot, now=timezone.now(), skip=[orm[0].pk], limit=2)
    assert [c.registration_id for c in skipped] == [r.pk for r in orm[1:3]]


def test_a_slots_candidates_are_read_in_queue_order_from_the_queues_index_without_a_sort():
    """The queue of a national service holds tens of thousands of waiting entries: the statement must
    walk `waitlist_order` and stop after `limit` matches. Joined to the (partitioned) slot table by id,
    which no longer says one row, the planner joined every matching entry and sorted them all (80-200 ms
    a slot at national size). With sorts switched off a plan that needs one still sorts: there is none."""
    from django.db import connection

    service = ServiceFactory(mammography=True)
    slot = SlotFactory(schedule__service=service)
    RegistrationFactory(service=service, status="waiting")
    statements = []

    def capture(execute, sql_text, params, many, context):
        statements.append((sql_text, params))
        return execute(sql_text, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(capture):
        sql.waitlist_candidates(slot=slot, now=timezone.now(), skip=[], limit=20)
    text, params = statements[0]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + text, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # A Sort node (a Merge Append of the appointments' month partitions prints a "Sort Key" of its own:
    # the partitions' indexes read in order, merged, nothing sorted).
    assert "waitlist_order" in plan and not re.search(r"^\s*(->\s*)?Sort  \(", plan, re.M), plan


def test_candidates_for_many_slots_are_each_slots_own_candidates():
    """The batch statement gives, per slot, what `waitlist_candidates` gives for that slot alone (the
    ORM-checked statement above): the same registrations in the same order, patients and history."""
    service = ServiceFactory(mammography=True)
    here, elsewhere = FacilityFactory(), FacilityFactory()
    slots = [SlotFactory(schedule__service=service, schedule__facility=f) for f in (here, elsewhere, here)]
    for p, u, h in [(0, False, 5), (10, False, 1), (0, True, 2), (0, False, 9)]:
        RegistrationFactory(
            service=service,
            status="waiting",
            priority=p,
            urgent=u,
            joined_at=timezone.now() - dt.timedelta(hours=h),
        )
    RegistrationFactory(service=service, status="waiting", facility=here)  # only the first and third
    now = timezone.now()
    with transaction.atomic():
        batch = sql.waitlist_candidates_for_slots(slots=slots, now=now, limits=[4, 4, 4])
    for slot in slots:
        with transaction.atomic():
            alone = sql.waitlist_candidates(slot=slot, now=now, skip=[], limit=4)
        assert [(c.registration_id, c.patient.pk, c.last_screening) for c in batch[slot.pk]] == [
            (c.registration_id, c.patient.pk, c.last_screening) for c in alone
        ]
    assert len(batch[slots[0].pk]) == 4 and len({c.registration_id for c in batch[slots[1].pk]}) == 4
    assert sql.waitlist_candidates_for_slots(slots=[], now=now, limits=[]) == {}


def test_last_screening_and_entitlement_agree_with_the_orm():
    service = ServiceFactory(cytology=True)
    patient = PatientFactory()
    assert sql.last_screening(patient_id=patient.pk, service_id=service.pk) is None
    patient.screenings.create(service=service, performed_on=dt.date(2023, 5, 1))
    patient.screenings.create(service=service, performed_on=dt.date(2021, 5, 1))
    assert sql.last_screening(patient_id=patient.pk, service_id=service.pk) == _orm_last_screening(
        patient, service
    )
    PatientEntitlementFactory(patient=patient, valid_from=dt.date(2020, 1, 1), valid_to=dt.date(2020, 12, 31))
    for on in (dt.date(2020, 6, 1), dt.date(2024, 1, 1)):
        assert sql.entitlement_for(patient=patient, on=on) == _orm_entitlement(patient, on)


def test_the_appointment_lock_reads_what_the_orm_reads():
    appointment = AppointmentFactory(registration__referral=ReferralFactory())
    with transaction.atomic():
        fast = sql.appointment_lock(appointment_id=appointment.pk)
        orm = (
            Appointment.objects.select_for_update(of=("self",))
            .select_related("service", "facility", "registration")
            .get(pk=appointment.pk)
        )
    assert fast is not None
    for attr in (None, "service", "facility", "registration"):
        a, b = (getattr(x, attr) if attr else x for x in (fast, orm))
        assert _fields(a) == _fields(b)
    assert sql.appointment_lock(appointment_id=appointment.pk + 1000) is None


def test_ending_a_booking_in_one_statement_writes_what_the_orm_steps_wrote():
    """`appointment_end_write` against the ORM steps it replaces (appointment_end, close_registration,
    referral_free, free_slot with its queue row, the event): equal rows but ids and the time of the
    ORM's auto_now columns."""
    from apps.booking.models import FreedSlot
    from apps.booking.services import _transitions as steps
    from apps.booking.services import referrals, waitlist_queue_freed

    reason = ReasonCodeFactory(code="PATIENT_REQUEST_X", kind="patient_cancel")
    now = timezone.now()

    def booking():
        referral = ReferralFactory(status="registered")
        slot = SlotFactory(schedule__service=referral.service, status="booked")
        made = AppointmentFactory(
            slot=slot,
            registration__referral=referral,
            registration__patient=referral.patient,
            registration__service=referral.service,
        )
        return Appointment.objects.select_related("service", "facility", "registration").get(pk=made.pk)

    fast, orm = booking(), booking()
    with transaction.atomic():
        fast.status, fast.reason, fast.ended_at, fast.version = "cancelled_by_patient", reason, now, 2
        freed = sql.appointment_end_write(
            appointment=fast,
            ending=sql.Ending(
                closed_reason="cancelled_by_patient",
                free_slot=True,
                referral_from=("registered",),
                referral_to="issued",
                referral_reason="cancelled_by_patient",
            ),
            event=steps.appointment_event_new(fast, "appointment.cancelled", by="patient"),
            now=now,
        )
        assert freed == fast.slot_id
    with transaction.atomic():
        steps.appointment_end(orm, status="cancelled_by_patient", reason=reason, now=now)
        steps.close_registration(orm.registration, "cancelled_by_patient", now)
        referrals.referral_free(registration=orm.registration, now=now, reason="cancelled_by_patient")
        Slot.objects.filter(pk=orm.slot_id, status="booked", start__gt=now).update(
            status="free", hold_until=None, held_by=None, updated_at=now
        )
        waitlist_queue_freed(slot_ids=[orm.slot_id], now=now)
        steps.appointment_event(orm, "appointment.cancelled", by="patient")
    differing = {"id", "registration_id", "patient_id", "slot_id", "service_id", "facility_id", "start"}
    differing |= {"created_at", "updated_at", "referral_id", "number", "access_code", "schedule_id"}
    differing |= {"end", "locality_id", "voivodeship_id", "lat", "lon", "practitioner_id", "joined_at"}

    def stored(model, pk):
        return {k: v for k, v in _fields(model.objects.get(pk=pk)).items() if k not in differing}

    for model, pick in [
        (Appointment, lambda a: a.pk),
        (Registration, lambda a: a.registration_id),
        (Referral, lambda a: a.registration.referral_id),
        (Slot, lambda a: a.slot_id),
    ]:
        assert stored(model, pick(fast)) == stored(model, pick(orm)), model
    assert Appointment.objects.get(pk=fast.pk).updated_at == now
    steps_of = [
        list(
            ReferralTransition.objects.filter(referral_id=a.registration.referral_id).values_list(
                "from_status", "to_status", "reason", "at"
            )
        )
        for a in (fast, orm)
    ]
    assert steps_of[0] == steps_of[1] == [("registered", "issued", "cancelled_by_patient", now)]
    assert FreedSlot.objects.filter(slot_id__in=[fast.slot_id, orm.slot_id]).count() == 2
    events = [OutboxEvent.objects.get(aggregate_type="appointment", aggregate_id=a.pk) for a in (fast, orm)]
    assert [e.type for e in events] == ["appointment.cancelled"] * 2
    ignore = {"appointment_id", "registration_id", "slot_id", "start", "facility", "service"}
    assert {k: v for k, v in events[0].payload.items() if k not in ignore} == {
        k: v for k, v in events[1].payload.items() if k not in ignore
    }
    # A slot no longer ahead (or not booked) stays where it is and is not queued.
    past = booking()
    Slot.objects.filter(pk=past.slot_id).update(status="blocked")
    with transaction.atomic():
        past.status, past.reason, past.ended_at = "cancelled_by_patient", reason, now
        assert (
            sql.appointment_end_write(
                appointment=past,
                ending=sql.Ending(closed_reason="x", free_slot=True),
                event=steps.appointment_event_new(past, "appointment.cancelled"),
                now=now,
            )
            is None
        )
    assert not FreedSlot.objects.filter(slot_id=past.slot_id).exists()
    assert Referral.objects.get(pk=past.registration.referral_id).status == "registered"  # not asked to


def _orm_queue_place(r: Registration) -> int:
    """The queue order's definition in the ORM: 1 + the waiting entries of the service ahead of `r`."""
    ahead = Registration.objects.filter(service_id=r.service_id, status="waiting").filter(
        Q(priority__gt=r.priority)
        | Q(priority=r.priority, urgent__gt=r.urgent)
        | Q(priority=r.priority, urgent=r.urgent, joined_at__lt=r.joined_at)
        | Q(priority=r.priority, urgent=r.urgent, joined_at=r.joined_at, id__lt=r.pk)
    )
    return ahead.count() + 1


def test_queue_places_of_many_are_each_ones_orm_place():
    from apps.booking.selectors import waitlist_position

    service, other = ServiceFactory(), ServiceFactory()
    joined = timezone.now() - dt.timedelta(hours=3)
    entries = [
        RegistrationFactory(
            service=s, status="waiting", priority=p, urgent=u, joined_at=joined + dt.timedelta(minutes=m)
        )
        for s, p, u, m in [
            (service, 0, False, 5),
            (service, 10, False, 9),
            (service, 0, True, 7),
            (service, 0, False, 5),  # the same time as the first: the id decides
            (service, 0, False, 1),
            (other, 0, False, 0),
        ]
    ]
    RegistrationFactory(service=service, status="closed", priority=99)  # not waiting: not counted
    places = sql.waitlist_positions(registration_ids=[e.pk for e in entries])
    assert places == {e.pk: _orm_queue_place(e) for e in entries}
    assert all(waitlist_position(registration=e) == places[e.pk] for e in entries)
    assert sql.waitlist_positions(registration_ids=[]) == {}
    ids = sql.next_appointment_ids(3)
    assert len(set(ids)) == 3 and ids == sorted(ids)


def _eligible_in_sql(*, service, patient, last: dt.date | None, start: dt.datetime) -> bool:
    """`sql.eligible_sql` for one patient, service, last screening and slot start, as the candidates'
    statements evaluate it (the slot as `s`, the catalogue row as `svc`, the patient as `p`)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT {sql.eligible_sql("%(last)s::date")}
            FROM (SELECT %(start)s::timestamptz AS start) s,
                 (SELECT %(eligible_sex)s::text AS eligible_sex, %(age_min)s::int AS age_min,
                         %(age_max)s::int AS age_max, %(months)s::int AS interval_months,
                         %(months_risk)s::int AS interval_months_risk) svc,
                 (SELECT %(sex)s::text AS sex, %(birth)s::date AS birth_date,
                         %(risk)s::boolean AS screening_risk_group) p
            """,
            {
                "last": last,
                "start": start,
                "eligible_sex": service.eligible_sex,
                "age_min": service.age_min,
                "age_max": service.age_max,
                "months": service.interval_months,
                "months_risk": service.interval_months_risk,
                "sex": patient.sex,
                "birth": patient.birth_date,
                "risk": patient.screening_risk_group,
            },
        )
        return bool(cursor.fetchone()[0])


def test_the_candidates_eligibility_filter_is_the_three_rules_on_every_boundary():
    """The candidates' statements pass over entries by `ELIGIBLE_SQL`; it must refuse exactly whom the
    rules `sex`, `age` and `screening_interval` refuse on the slot's Warsaw date: never more (an entry
    the rules allow would lose its turn), and it is no use if it refuses less. Ages at both ends of the
    range, New Year's Eve and Day in Warsaw an hour apart in UTC, a birth on 29 February, a last
    screening exactly one interval before, a day less and at a month's end (31 January + 1 month),
    the risk group's shorter interval, services without limits."""
    from apps.booking import rules
    from apps.catalog.models import Service
    from apps.core.errors import DomainError
    from apps.patients.models import Patient

    services_ = [
        Service(
            code="A", eligible_sex="F", age_min=45, age_max=74, interval_months=24, interval_months_risk=12
        ),
        Service(code="B", eligible_sex="", age_min=None, age_max=64, interval_months=1),
        Service(code="C", eligible_sex="M", age_min=50, age_max=None, interval_months=None),
        Service(code="D", eligible_sex="", age_min=None, age_max=None, interval_months=0),
    ]
    warsaw = dt.timezone(dt.timedelta(hours=1))
    starts = [
        dt.datetime(2027, 12, 31, 23, 30, tzinfo=warsaw),  # 22:30 UTC: still 2027 in Warsaw
        dt.datetime(2028, 1, 1, 0, 30, tzinfo=warsaw),  # 23:30 UTC on the 31st: 2028 in Warsaw
        dt.datetime(2028, 2, 29, 12, 0, tzinfo=warsaw),
    ]
    births = [
        dt.date(y, m, d)
        for y in (1953, 1954, 1963, 1964, 1977, 1978, 1982, 1983)
        for m, d in ((1, 1), (2, 29) if y % 4 == 0 else (2, 28), (12, 31))
    ]
    lasts = [
        None,
        dt.date(2026, 1, 1),  # 24 months before the New Year slot
        dt.date(2026, 1, 2),  # a day short of it
        dt.date(2026, 12, 31),  # 12 months before the New Year slot (risk group)
        dt.date(2027, 1, 1),
        dt.date(2028, 1, 29),  # a month before 29 February 2028
        dt.date(2028, 1, 30),
        dt.date(2028, 1, 31),  # + 1 month: 29 February 2028
        dt.date(2027, 12, 1),
        dt.date(2027, 12, 2),
    ]
    checked, refused = 0, collections.Counter()
    disagreements = []
    for service in services_:
        for start in starts:
            for sex in ("F", "M"):
                for birth in births[::2] if sex == "M" else births:
                    for risk in (False, True):
                        for last in lasts:
                            patient = Patient(sex=sex, birth_date=birth, screening_risk_group=risk)
                            facts = rules.Facts(
                                patient=patient,
                                service=service,
                                day=timezone.localdate(start),
                                last_screening=last,
                            )
                            allowed = True
                            for rule in (rules.sex, rules.age, rules.screening_interval):
                                try:
                                    rule(facts)
                                except DomainError as error:
                                    allowed = False
                                    refused[error.code] += 1
                                    break
                            in_sql = _eligible_in_sql(
                                service=service, patient=patient, last=last, start=start
                            )
                            if in_sql != allowed:
                                disagreements.append((service.code, start, sex, birth, risk, last, allowed))
                            checked += 1
    assert disagreements == []
    # Every rule refused some and allowed some: the grid reaches every boundary.
    assert set(refused) == {"not_eligible_sex", "not_eligible_age", "not_eligible_interval"}
    assert sum(refused.values()) < checked
