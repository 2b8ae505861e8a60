"""The booking core: every state transition of slots, registrations and appointments.

Each public function is one transaction that also writes its outbox event. Races are settled by
PostgreSQL, never by a Python check followed by a write:
- a slot is claimed with a conditional UPDATE or a row lock (`SELECT ... FOR UPDATE`), so two
  patients racing for one slot get one booking and one clear refusal;
- "one live registration per patient and service" and "one live appointment per slot" are partial
  unique indexes; a concurrent second attempt fails on the index (or, in `appointment_book`, is
  skipped by it: `ON CONFLICT DO NOTHING`) and is turned into a refusal that names the existing
  booking.
Waiting-list work after a commit (a slot freed, new slots published) runs as Celery tasks enqueued
with `transaction.on_commit`, so no task ever sees uncommitted data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.catalog.models import Entitlement, Facility, Locality, ReasonCode, Service, Voivodeship
from apps.core.errors import DomainError
from apps.core.queries import insert_columns, model_from_row, one_or_none, prepared_cursor, select_columns
from apps.outbox.models import OutboxEvent
from apps.outbox.services import event_new, event_record, event_require_transaction, event_save
from apps.patients.models import Patient, Referral, ScreeningRecord
from apps.scheduling.models import Practitioner, Schedule, Slot
from apps.scheduling.selectors import DISTANCE_SQL, day_start

from . import rules
from .models import LIVE_APPOINTMENT, Appointment, Registration
from .selectors import waitlist_position

Status = Appointment.Status
Channel = Appointment.Channel


# --- helpers ---------------------------------------------------------------------------------------


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or timezone.now()


def _appointment_payload(appointment: Appointment, **extra: Any) -> dict[str, Any]:
    return {
        "appointment_id": appointment.pk,
        "registration_id": appointment.registration_id,
        "slot_id": appointment.slot_id,
        "service": appointment.service.code,
        "facility": appointment.facility.nfz_code,
        "start": appointment.start.isoformat(),
        "status": appointment.status,
        "channel": appointment.channel,
        **extra,
    }


def _appointment_event_new(appointment: Appointment, type: str, **extra: Any) -> OutboxEvent:
    return event_new(
        type=type,
        aggregate_type="appointment",
        aggregate_id=appointment.pk,
        facility_id=appointment.facility_id,
        patient_id=appointment.patient_id,
        payload=_appointment_payload(appointment, **extra),
    )


def _appointment_event(appointment: Appointment, type: str, **extra: Any) -> None:
    event_save(_appointment_event_new(appointment, type, **extra))


def _registration_event(registration: Registration, type: str, **extra: Any) -> None:
    event_record(
        type=type,
        aggregate_type="registration",
        aggregate_id=registration.pk,
        patient_id=registration.patient_id,
        payload={"registration_id": registration.pk, "service": registration.service.code, **extra},
    )


def _offer_slot_after_commit(slot_id: int) -> None:
    from .tasks import waitlist_allocate_slot_task

    transaction.on_commit(lambda: waitlist_allocate_slot_task.delay(slot_id))


def _reason(code: str, kinds: tuple[str, ...]) -> ReasonCode:
    reason = ReasonCode.objects.filter(code=code, kind__in=kinds).first()
    if reason is None:
        raise DomainError("unknown_reason", field="reason", reason=code)
    return reason


def _reason_code(code: str) -> ReasonCode | None:
    """A reason the system gives itself, by its code (fixtures/reference/reason_codes.json); not the
    first of a kind, since a kind has several (NO_SHOW and LATE_ARRIVAL, UNCONFIRMED_RELEASED and
    MOVED_EARLIER)."""
    return ReasonCode.objects.filter(code=code).first()


def _existing_registration_label(registration: Registration) -> str:
    appointment = (
        registration.appointments.filter(status__in=LIVE_APPOINTMENT).select_related("facility").first()
    )
    if appointment is None:
        return f"Poczekalnia / waiting list, #{registration.pk}"
    local = timezone.localtime(appointment.start)
    return f"{appointment.facility.name}, {local:%Y-%m-%d %H:%M}, #{appointment.pk}"


def _refuse_second_registration(patient: Patient, service: Service) -> DomainError:
    existing = Registration.objects.filter(
        patient=patient, service=service, status__in=(Registration.Status.WAITING, Registration.Status.BOOKED)
    ).first()
    label = _existing_registration_label(existing) if existing else "?"
    error = DomainError("active_registration_exists", existing=label)
    error.params["registration_id"] = existing.pk if existing else ""
    return error


def _lock_slot(slot_id: int) -> Slot:
    slot = one_or_none(
        Slot.objects.select_for_update().select_related("service", "facility").filter(pk=slot_id)
    )
    if slot is None:
        raise DomainError("slot_not_found")
    return slot


def _check_bookable(slot: Slot, patient: Patient, now: dt.datetime) -> None:
    if slot.start <= now:
        raise DomainError("slot_in_past")
    if slot.status == Slot.Status.FREE:
        return
    if slot.status == Slot.Status.HELD:
        if slot.hold_until and slot.hold_until <= now:
            return  # an expired hold is as good as free
        if slot.held_by_id == patient.pk:
            return
        raise DomainError("hold_not_yours")
    raise DomainError("slot_not_free")


SLOT_TAKEN_SQL = f"""
SELECT 1 FROM {Slot._meta.db_table}
WHERE id = %(slot)s AND start > %(now)s AND status NOT IN (%(free)s, %(held)s)
"""  # noqa: S608 (the table name from the model; values are bound)


def slot_refuse_if_taken(
    *, slot_id: int, facility_id: int | None = None, now: dt.datetime | None = None
) -> None:
    """Refuse at once a future slot whose committed state already rules a booking out (booked,
    blocked, cancelled): no lock, no transaction, no write. The cheap answer to most lost races, where
    a desk system sends a slot someone else booked moments ago. Passing proves nothing:
    `appointment_book` checks everything again under the slot lock, and gives the same answer."""
    sql = SLOT_TAKEN_SQL if facility_id is None else SLOT_TAKEN_SQL + " AND facility_id = %(facility)s"
    params = {
        "slot": slot_id,
        "now": _now(now),
        "free": Slot.Status.FREE,
        "held": Slot.Status.HELD,
        "facility": facility_id,
    }
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        taken = cursor.fetchone() is not None
    if taken:
        raise DomainError("slot_not_free")


def _lock_appointment(appointment: Appointment | int) -> Appointment:
    pk = appointment if isinstance(appointment, int) else appointment.pk
    locked = (
        Appointment.objects.select_for_update(of=("self",))
        .select_related("service", "facility", "registration", "slot")
        .filter(pk=pk)
        .first()
    )
    if locked is None:
        raise DomainError("booking_not_found")
    return locked


def _require_live(appointment: Appointment, action: str) -> None:
    if appointment.status not in LIVE_APPOINTMENT:
        raise DomainError("booking_state", action=action, state=appointment.get_status_display())


def _confirm_by(service: Service, start: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The deadline to confirm attendance (catalogue rule); none for bookings made close to the visit."""
    if not service.confirmation_required or not service.confirm_deadline_hours:
        return None
    deadline = start - dt.timedelta(hours=service.confirm_deadline_hours)
    return deadline if deadline > now else None


def _appointment_new(
    *,
    registration: Registration,
    slot: Slot,
    channel: str,
    now: dt.datetime,
    allocation: dict[str, Any] | None = None,
) -> Appointment:
    """The appointment booking a slot for a registration, not yet written."""
    return Appointment(
        registration=registration,
        slot=slot,
        patient_id=registration.patient_id,
        service=slot.service,  # objects already loaded with the slot: the event payload reads them
        facility=slot.facility,
        start=slot.start,
        channel=channel,
        confirm_by=_confirm_by(slot.service, slot.start, now),
        allocation=allocation or {},
    )


def _create_appointment(
    *,
    registration: Registration,
    slot: Slot,
    channel: str,
    now: dt.datetime,
    allocation: dict[str, Any] | None = None,
) -> Appointment:
    """Book a locked, bookable slot for a registration. Caller holds the slot lock."""
    appointment = _appointment_new(
        registration=registration, slot=slot, channel=channel, now=now, allocation=allocation
    )
    appointment.save(force_insert=True)
    Slot.objects.filter(pk=slot.pk).update(
        status=Slot.Status.BOOKED, hold_until=None, held_by=None, updated_at=now
    )
    slot.status = Slot.Status.BOOKED
    if registration.status != Registration.Status.BOOKED:
        registration.status = Registration.Status.BOOKED
        registration.save(update_fields=["status", "updated_at"])
    return appointment


def _free_slot(slot_id: int, now: dt.datetime, *, offer: bool = True) -> None:
    """Give a slot back to the pool (if it is still ahead) and offer it to the waiting list."""
    updated = Slot.objects.filter(pk=slot_id, status=Slot.Status.BOOKED, start__gt=now).update(
        status=Slot.Status.FREE, hold_until=None, held_by=None, updated_at=now
    )
    if updated and offer:
        _offer_slot_after_commit(slot_id)


def _appointment_end(
    appointment: Appointment, *, status: str, reason: ReasonCode | None, now: dt.datetime
) -> None:
    """The appointment stops being live (cancelled, released, no-show): state, reason, time, version."""
    appointment.status = status
    appointment.reason = reason
    appointment.ended_at = now
    appointment.version += 1
    appointment.save(update_fields=["status", "reason", "ended_at", "version", "updated_at"])


def _close_registration(registration: Registration, reason: str, now: dt.datetime) -> None:
    registration.status = Registration.Status.CLOSED
    registration.closed_at = now
    registration.closed_reason = reason
    registration.save(update_fields=["status", "closed_at", "closed_reason", "updated_at"])


# --- holds -------------------------------------------------------------------------------------------


def slot_hold(*, slot_id: int, patient: Patient, now: dt.datetime | None = None) -> Slot:
    """Hold a free slot for a patient while they confirm (CER_HOLD_SECONDS). One hold per service.

    The rules that do not depend on the slot (scope, eligibility, one registration) are checked
    first, so a patient learns early that they cannot book, before choosing a time.
    """
    now = _now(now)
    with transaction.atomic():
        slot = Slot.objects.select_related("service").filter(pk=slot_id).first()
        if slot is None:
            raise DomainError("slot_not_found")
        rules.scope_check(service=slot.service, day=timezone.localdate(slot.start))
        rules.eligibility_check(patient=patient, service=slot.service, on=timezone.localdate(slot.start))
        if Registration.objects.filter(
            patient=patient, service=slot.service, status=Registration.Status.BOOKED
        ).exists():
            raise _refuse_second_registration(patient, slot.service)
        # Release the patient's other holds for this service: one patient cannot sit on many slots.
        Slot.objects.filter(held_by=patient, service=slot.service, status=Slot.Status.HELD).exclude(
            pk=slot_id
        ).update(status=Slot.Status.FREE, hold_until=None, held_by=None, updated_at=now)
        claimed = (
            Slot.objects.filter(pk=slot_id, start__gt=now)
            .filter(
                Q(status=Slot.Status.FREE)
                | Q(status=Slot.Status.HELD, hold_until__lte=now)
                | Q(status=Slot.Status.HELD, held_by=patient)
            )
            .update(
                status=Slot.Status.HELD,
                held_by=patient,
                hold_until=now + dt.timedelta(seconds=settings.CER_HOLD_SECONDS),
                updated_at=now,
            )
        )
        if not claimed:
            _check_bookable(slot, patient, now)  # explains why (past, held by another, taken)
            raise DomainError("slot_not_free")
        slot.refresh_from_db()
        return slot


def slot_release_hold(*, slot_id: int, patient: Patient) -> bool:
    with transaction.atomic():
        released = Slot.objects.filter(pk=slot_id, status=Slot.Status.HELD, held_by=patient).update(
            status=Slot.Status.FREE, hold_until=None, held_by=None, updated_at=timezone.now()
        )
        if released:
            _offer_slot_after_commit(slot_id)
        return bool(released)


def holds_expire(*, now: dt.datetime | None = None) -> int:
    """Free every hold past its deadline (periodic). Returns how many slots went back to the pool."""
    now = _now(now)
    with transaction.atomic():
        ids = list(
            Slot.objects.filter(status=Slot.Status.HELD, hold_until__lte=now)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:5000]
        )
        Slot.objects.filter(pk__in=ids, status=Slot.Status.HELD).update(
            status=Slot.Status.FREE, hold_until=None, held_by=None, updated_at=now
        )
        for slot_id in ids:
            _offer_slot_after_commit(slot_id)
    return len(ids)


# --- booking -----------------------------------------------------------------------------------------


def appointment_book(
    *,
    slot_id: int,
    patient: Patient,
    channel: str = Channel.WEB,
    referral_number: str | None = None,
    referral_code: str | None = None,
    facility: Facility | None = None,
    now: dt.datetime | None = None,
) -> Appointment:
    """Book a slot: every rule is checked under the slot's row lock, in one transaction.

    `facility` restricts the slot to the calling facility (desk bookings through the API). A patient
    already waiting for the service has their waiting-list entry turned into this booking.

    The busiest write of the system, in three statements: one locks the slot and reads every fact the
    rules need (`_book_facts`), the rules run here in Python, and one writes the registration, the
    appointment, the slot and the event (`_book_write`).
    """
    now = _now(now)
    if channel not in Channel.values or channel == Channel.WAITLIST:
        raise DomainError("validation_error", field="channel")
    with transaction.atomic():
        facts = _book_facts(slot_id=slot_id, patient=patient, today=timezone.localdate(now))
        slot, service = facts.slot, facts.slot.service
        if facility is not None and slot.facility_id != facility.pk:
            raise DomainError("slot_not_found")
        _check_bookable(slot, patient, now)
        day = timezone.localdate(slot.start)
        rules.scope_check(service=service, day=day)
        rules.eligibility_check_person(patient=patient, service=service, on=day)
        rules.interval_check(patient=patient, service=service, on=day, last=facts.last_screening)
        waiting = None
        if facts.waiting_id is not None:
            waiting = one_or_none(Registration.objects.select_for_update().filter(pk=facts.waiting_id))
        if waiting is not None and waiting.status == Registration.Status.WAITING:
            # Already claimed its referral when the patient joined the waiting list.
            registration, new = waiting, False
        else:
            referral = rules.referral_claim(
                patient=patient,
                service=service,
                number=referral_number,
                code=referral_code,
                today=timezone.localdate(now),
            )
            registration = _registration_new(
                patient=patient,
                service=service,
                referral=referral,
                status=Registration.Status.BOOKED,
                now=now,
                entitlement=facts.entitlement,
            )
            registration.pk, new = facts.registration_id, True
        appointment = _appointment_new(registration=registration, slot=slot, channel=channel, now=now)
        appointment.pk = facts.appointment_id
        if not _book_write(registration, new, appointment, now):
            # Another live registration of the patient for the service (a concurrent booking, or one
            # that was waiting and has just been given a slot): nothing was written.
            raise _refuse_second_registration(patient, service)
        appointment.patient = patient
        return appointment


class _BookFacts:
    """What `appointment_book` needs to know, read with the slot's row lock in one statement."""

    __slots__ = ("appointment_id", "entitlement", "last_screening", "registration_id", "slot", "waiting_id")

    def __init__(self, row: Any) -> None:
        self.slot, i = model_from_row(Slot, row)
        self.slot.service, i = model_from_row(Service, row, i)
        self.slot.facility, i = model_from_row(Facility, row, i)
        entitlement, i = model_from_row(Entitlement, row, i)
        self.entitlement = entitlement if entitlement.pk is not None else None
        recorded, attended, self.waiting_id, self.registration_id, self.appointment_id = row[i:]
        self.last_screening = rules.screening_last(recorded, attended)


BOOK_FACTS_SQL = f"""
SELECT {select_columns(Slot, "s")}, {select_columns(Service, "svc")}, {select_columns(Facility, "f")},
    {select_columns(Entitlement, "ent")},
    {rules.screening_columns("s.service_id")},
    (SELECT r.id FROM {Registration._meta.db_table} r
     WHERE r.patient_id = %(patient)s AND r.service_id = s.service_id AND r.status = %(waiting)s),
    nextval(pg_get_serial_sequence('{Registration._meta.db_table}', 'id')),
    nextval(pg_get_serial_sequence('{Appointment._meta.db_table}', 'id'))
FROM {Slot._meta.db_table} s
JOIN {Service._meta.db_table} svc ON svc.id = s.service_id
JOIN {Facility._meta.db_table} f ON f.id = s.facility_id
LEFT JOIN LATERAL ({rules.ENTITLEMENT_SQL}) ent ON true
WHERE s.id = %(slot)s
FOR UPDATE OF s
"""  # noqa: S608 (table and column names from the models; values are bound)


def _book_facts(*, slot_id: int, patient: Patient, today: dt.date) -> _BookFacts:
    """Lock the slot and read, in one round trip, its service and facility, the patient's waiting-list
    entry and screening history for the service, their entitlement, and the ids the write will use."""
    with prepared_cursor() as cursor:
        cursor.execute(
            BOOK_FACTS_SQL,
            {
                "slot": slot_id,
                "patient": patient.pk,
                "on": today,
                "waiting": Registration.Status.WAITING,
                "attended": Appointment.Status.ATTENDED,
            },
        )
        row = cursor.fetchone()
    if row is None:
        raise DomainError("slot_not_found")
    return _BookFacts(row)


def _book_write(registration: Registration, new: bool, appointment: Appointment, now: dt.datetime) -> bool:
    """Write a booking in one statement: the registration (new, or the waiting one now booked), the
    appointment, the slot taken and the `appointment.booked` event. Each part is written only if the
    one before it was, and nothing is written if the patient already has a live registration for the
    service (`one_live_registration_per_patient_service`, settled by PostgreSQL, also against a
    concurrent booking). False when nothing was written; the caller's savepoint undoes a partial write."""
    event = _appointment_event_new(appointment, "appointment.booked")
    event_require_transaction()
    registration.status = Registration.Status.BOOKED
    if new:
        columns, reg_params = insert_columns(registration)
        reg_sql = (
            f"INSERT INTO {Registration._meta.db_table} ({', '.join(columns)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT DO NOTHING"
        )
    else:
        registration.updated_at = now
        reg_sql = (
            f"UPDATE {Registration._meta.db_table} SET status = %s, updated_at = %s "  # noqa: S608
            "WHERE id = %s AND status = %s"
        )
        reg_params = [Registration.Status.BOOKED, now, registration.pk, Registration.Status.WAITING]
    appointment_columns, appointment_params = insert_columns(appointment)
    event_columns, event_params = insert_columns(event)
    sql = f"""
    WITH reg AS ({reg_sql} RETURNING id),
    appt AS (
        INSERT INTO {Appointment._meta.db_table} ({", ".join(appointment_columns)})
        SELECT {", ".join(["%s"] * len(appointment_columns))} FROM reg
        ON CONFLICT DO NOTHING RETURNING slot_id
    ),
    taken AS (
        UPDATE {Slot._meta.db_table} SET status = %s, hold_until = NULL, held_by_id = NULL, updated_at = %s
        WHERE id IN (SELECT slot_id FROM appt) RETURNING id
    ),
    event AS (
        INSERT INTO {OutboxEvent._meta.db_table} ({", ".join(event_columns)})
        SELECT {", ".join(["%s"] * len(event_columns))} FROM taken
    )
    SELECT count(*) FROM taken
    """  # noqa: S608 (table and column names from the models; values are bound)
    with prepared_cursor() as cursor:
        cursor.execute(sql, [*reg_params, *appointment_params, Slot.Status.BOOKED, now, *event_params])
        (written,) = cursor.fetchone()
    if not written:
        return False
    for obj in (registration, appointment):
        obj._state.adding, obj._state.db = False, connection.alias
    slot = appointment.slot
    slot.status, slot.hold_until, slot.held_by_id, slot.updated_at = Slot.Status.BOOKED, None, None, now
    return True


def _registration_new(
    *,
    patient: Patient,
    service: Service,
    referral: Referral | None,
    status: str,
    now: dt.datetime,
    entitlement: Entitlement | None,
    **preferences: Any,
) -> Registration:
    """A registration in the queue order of DESIGN.md (entitlement, urgency, time), not yet written."""
    return Registration(
        patient=patient,
        service=service,
        status=status,
        referral=referral,
        entitlement=entitlement,
        priority=entitlement.priority if entitlement else 0,
        urgent=bool(referral and referral.category == Referral.Category.URGENT),
        joined_at=now,
        **preferences,
    )


def _registration_create(
    *,
    patient: Patient,
    service: Service,
    referral: Referral | None,
    status: str,
    now: dt.datetime,
    **preferences: Any,
) -> Registration:
    registration = _registration_new(
        patient=patient,
        service=service,
        referral=referral,
        status=status,
        now=now,
        entitlement=rules.entitlement_for(patient=patient, on=timezone.localdate(now)),
        **preferences,
    )
    registration.save(force_insert=True)
    return registration


def appointment_confirm(*, appointment: Appointment, now: dt.datetime | None = None) -> Appointment:
    now = _now(now)
    with transaction.atomic():
        appointment = _lock_appointment(appointment)
        if appointment.status == Status.CONFIRMED:
            return appointment  # confirming twice (SMS and web) is fine
        _require_live(appointment, "potwierdzona / confirmed")
        if appointment.start <= now:
            raise DomainError("slot_in_past")
        appointment.status = Status.CONFIRMED
        appointment.confirmed_at = now
        appointment.version += 1
        appointment.save(update_fields=["status", "confirmed_at", "version", "updated_at"])
        _appointment_event(appointment, "appointment.confirmed")
        return appointment


def appointment_cancel_by_patient(
    *, appointment: Appointment, reason_code: str = "PATIENT_REQUEST", now: dt.datetime | None = None
) -> Appointment:
    """The patient gives the slot back: the registration ends and the slot returns to the pool."""
    now = _now(now)
    with transaction.atomic():
        appointment = _lock_appointment(appointment)
        _require_live(appointment, "odwołana / cancelled")
        reason = _reason(reason_code, (ReasonCode.Kind.PATIENT_CANCEL,))
        _appointment_end(appointment, status=Status.CANCELLED_BY_PATIENT, reason=reason, now=now)
        _close_registration(appointment.registration, "cancelled_by_patient", now)
        _free_slot(appointment.slot_id, now)
        _appointment_event(appointment, "appointment.cancelled", by="patient", reason=reason.code)
        return appointment


def appointment_cancel_by_facility(
    *, appointment: Appointment, reason_code: str, now: dt.datetime | None = None
) -> Appointment:
    """The facility cannot see the patient. The patient keeps their place: rebooked at the earliest
    matching slot, or back on the waiting list with their original position. The slot is withdrawn."""
    now = _now(now)
    with transaction.atomic():
        appointment = _lock_appointment(appointment)
        _require_live(appointment, "odwołana / cancelled")
        reason = _reason(reason_code, (ReasonCode.Kind.FACILITY_CANCEL,))
        _facility_cancel_one(appointment, reason, now)
        appointment.refresh_from_db()
        return appointment


def _facility_cancel_one(
    appointment: Appointment, reason: ReasonCode, now: dt.datetime
) -> Appointment | None:
    _appointment_end(appointment, status=Status.CANCELLED_BY_FACILITY, reason=reason, now=now)
    Slot.objects.filter(pk=appointment.slot_id).update(status=Slot.Status.CANCELLED, updated_at=now)
    _appointment_event(appointment, "appointment.cancelled", by="facility", reason=reason.code)
    registration = Registration.objects.select_for_update().get(pk=appointment.registration_id)
    registration.status = Registration.Status.WAITING  # joined_at unchanged: the place is kept
    registration.save(update_fields=["status", "updated_at"])
    # Without stated preferences, "matching" means the same voivodeship as the cancelled visit.
    new = _allocate_for_registration(
        registration,
        now,
        default_voivodeship_id=appointment.facility.voivodeship_id,
        exclude_slot=appointment.slot_id,
    )
    if new is None:
        _registration_event(registration, "registration.waiting", after="facility_cancellation")
    return new


def session_cancel_by_facility(
    *, schedule: Schedule, day: dt.date, reason_code: str, now: dt.datetime | None = None
) -> dict[str, int]:
    """A doctor falls ill: cancel every booking of one schedule on one day, and close its free slots.

    Patients are handled in waiting-list order (entitlement, category, time of registration), so the
    earliest replacement slots go to those first in line; each keeps their place either way.
    """
    now = _now(now)
    with transaction.atomic():
        reason = _reason(reason_code, (ReasonCode.Kind.FACILITY_CANCEL,))
        window = (day_start(day), day_start(day + dt.timedelta(days=1)))
        closed = Slot.objects.filter(
            schedule=schedule,
            start__gte=window[0],
            start__lt=window[1],
            status__in=[Slot.Status.FREE, Slot.Status.HELD],
        ).update(status=Slot.Status.CANCELLED, hold_until=None, held_by=None, updated_at=now)
        appointments = list(
            Appointment.objects.select_for_update(of=("self",))
            .select_related("registration", "service", "facility")
            .filter(
                slot__schedule=schedule,
                start__gte=window[0],
                start__lt=window[1],
                status__in=LIVE_APPOINTMENT,
            )
            .order_by(
                "-registration__priority",
                "-registration__urgent",
                "registration__joined_at",
                "registration_id",
            )
        )
        rebooked = 0
        for appointment in appointments:
            if _facility_cancel_one(appointment, reason, now) is not None:
                rebooked += 1
        event_record(
            type="schedule.day_closed",
            aggregate_type="schedule",
            aggregate_id=schedule.pk,
            facility_id=schedule.facility_id,
            payload={"schedule_id": schedule.pk, "day": day.isoformat(), "reason": reason.code},
        )
        return {
            "cancelled": len(appointments),
            "rebooked": rebooked,
            "waiting": len(appointments) - rebooked,
            "slots_closed": closed,
        }


def appointment_reschedule(
    *, appointment: Appointment, new_slot_id: int, now: dt.datetime | None = None
) -> Appointment:
    """Move a booking to another slot of the same service: both changes commit together or neither."""
    now = _now(now)
    with transaction.atomic():
        current = _lock_appointment(appointment)
        _require_live(current, "przeniesiona / rescheduled")
        patient = Patient.objects.get(pk=current.patient_id)
        new_slot = _lock_slot(new_slot_id)
        if new_slot.service_id != current.service_id:
            raise DomainError("slot_not_found")
        _check_bookable(new_slot, patient, now)
        was_confirmed = current.status == Status.CONFIRMED
        current.status = Status.RESCHEDULED
        current.ended_at = now
        current.version += 1
        current.save(update_fields=["status", "ended_at", "version", "updated_at"])
        new = _create_appointment(
            registration=current.registration,
            slot=new_slot,
            channel=current.channel,
            now=now,
            allocation=current.allocation,
        )
        if was_confirmed:
            new.status, new.confirmed_at = Status.CONFIRMED, now
            new.save(update_fields=["status", "confirmed_at"])
        current.rescheduled_to = new
        current.save(update_fields=["rescheduled_to"])
        _free_slot(current.slot_id, now)
        _appointment_event(
            current, "appointment.rescheduled", new_appointment_id=new.pk, new_start=new.start.isoformat()
        )
        _appointment_event(new, "appointment.booked", rescheduled_from=current.pk)
        return new


def appointment_record_outcome(
    *, appointment: Appointment, outcome: str, now: dt.datetime | None = None
) -> Appointment:
    """After the visit: attended or no-show. Ends the registration; a screening counts for intervals."""
    now = _now(now)
    if outcome not in (Status.ATTENDED, Status.NO_SHOW):
        raise DomainError("validation_error", field="outcome")
    with transaction.atomic():
        appointment = _lock_appointment(appointment)
        if appointment.status == outcome:
            return appointment
        # The facility may still record the visit as attended after the automatic no-show rule.
        correcting = outcome == Status.ATTENDED and _is_automatic_no_show(appointment)
        if not correcting:
            _require_live(appointment, "rozliczona / given an outcome")
        if appointment.start > now:
            raise DomainError("outcome_too_early")
        appointment.status = outcome
        appointment.ended_at = now
        appointment.version += 1
        appointment.reason = _reason_code("NO_SHOW") if outcome == Status.NO_SHOW else None
        appointment.save(update_fields=["status", "ended_at", "reason", "version", "updated_at"])
        _close_registration(appointment.registration, outcome, now)
        if outcome == Status.ATTENDED and appointment.service.is_screening:
            ScreeningRecord.objects.create(
                patient_id=appointment.patient_id,
                service=appointment.service,
                performed_on=timezone.localdate(appointment.start),
                source="cer",
            )
        _appointment_event(appointment, f"appointment.{outcome}")
        return appointment


NO_SHOW_AUTO = "NO_SHOW_AUTO"


def _is_automatic_no_show(appointment: Appointment) -> bool:
    return (
        appointment.status == Status.NO_SHOW
        and appointment.reason is not None
        and appointment.reason.code == NO_SHOW_AUTO
    )


def appointments_mark_no_show(*, now: dt.datetime | None = None, batch: int = 500) -> int:
    """The no-show rule (catalogue `no_show_after_hours`): a booking still without an outcome that many
    hours after its visit ended becomes a no-show with reason NO_SHOW_AUTO. That ends the registration,
    so the patient can book the service again; the facility can still record the visit as attended.

    Rows are claimed with SKIP LOCKED and re-checked under the lock, so two workers running this at
    once, or a run that repeats after a crash, change each booking once and record one event.
    """
    now = _now(now)
    reason = _reason_code(NO_SHOW_AUTO)
    marked = 0
    for service in Service.objects.filter(no_show_after_hours__isnull=False).order_by("pk"):
        cutoff = now - dt.timedelta(hours=service.no_show_after_hours or 0)
        while True:
            with transaction.atomic():
                due = list(
                    Appointment.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("service", "facility", "registration")
                    .filter(
                        service=service,
                        status__in=LIVE_APPOINTMENT,
                        start__lt=cutoff,  # the index; the visit's end decides below
                        slot__end__lte=cutoff,
                    )
                    .order_by("start", "pk")[:batch]
                )
                for appointment in due:
                    _appointment_end(appointment, status=Status.NO_SHOW, reason=reason, now=now)
                    _close_registration(appointment.registration, Status.NO_SHOW, now)
                    _appointment_event(appointment, "appointment.no_show", automatic=True)
            marked += len(due)
            if len(due) < batch:
                break
    return marked


def appointments_release_unconfirmed(*, now: dt.datetime | None = None, batch: int = 500) -> int:
    """Release bookings not confirmed by their deadline (catalogue rule); slots go to the waiting list.

    Rows are claimed with SKIP LOCKED, so two workers running this at once share the work and never
    release one booking twice.
    """
    now = _now(now)
    released = 0
    reason = _reason_code("UNCONFIRMED_RELEASED")
    while True:
        with transaction.atomic():
            due = list(
                Appointment.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("service", "facility", "registration")
                .filter(status=Status.BOOKED, confirm_by__lte=now, start__gt=now)[:batch]
            )
            for appointment in due:
                _appointment_end(appointment, status=Status.RELEASED, reason=reason, now=now)
                _close_registration(appointment.registration, "released_unconfirmed", now)
                _free_slot(appointment.slot_id, now)
                _appointment_event(appointment, "appointment.released", reason="unconfirmed")
        released += len(due)
        if len(due) < batch:
            return released


# --- the central waiting list (Poczekalnia) ----------------------------------------------------------


def waitlist_join(
    *,
    patient: Patient,
    service: Service,
    referral_number: str | None = None,
    referral_code: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    voivodeship: Voivodeship | None = None,
    locality: Locality | None = None,
    max_distance_km: int | None = None,
    facility: Facility | None = None,
    practitioner: Practitioner | None = None,
    now: dt.datetime | None = None,
) -> Registration:
    """Join the national queue for a service with preferences; the system keeps searching for a slot."""
    now = _now(now)
    today = timezone.localdate(now)
    if date_from and date_to and date_to < date_from:
        raise DomainError("validation_error", field="date_to")
    if max_distance_km is not None and locality is None:
        raise DomainError("validation_error", field="locality")
    with transaction.atomic():
        rules.scope_check(service=service, day=max(today, date_from or today))
        rules.eligibility_check(patient=patient, service=service, on=max(today, date_from or today))
        referral = rules.referral_claim(
            patient=patient, service=service, number=referral_number, code=referral_code, today=today
        )
        try:
            with transaction.atomic():
                registration = _registration_create(
                    patient=patient,
                    service=service,
                    referral=referral,
                    status=Registration.Status.WAITING,
                    now=now,
                    date_from=date_from,
                    date_to=date_to,
                    voivodeship=voivodeship,
                    locality=locality,
                    max_distance_km=max_distance_km,
                    facility=facility,
                    practitioner=practitioner,
                )
        except IntegrityError:
            raise _refuse_second_registration(patient, service) from None
        _registration_event(registration, "registration.waiting", after="joined")
        registration_id = registration.pk

        def sweep_one() -> None:
            from .tasks import waitlist_allocate_registration_task

            waitlist_allocate_registration_task.delay(registration_id)

        transaction.on_commit(sweep_one)
        return registration


def waitlist_leave(*, registration: Registration, now: dt.datetime | None = None) -> Registration:
    now = _now(now)
    with transaction.atomic():
        locked = Registration.objects.select_for_update().filter(pk=registration.pk).first()
        if locked is None or locked.status != Registration.Status.WAITING:
            raise DomainError("waitlist_entry_not_found")
        _close_registration(locked, "left_waitlist", now)
        _registration_event(locked, "registration.closed", reason="left_waitlist")
        return locked


# The match between a waiting registration (r) and a free slot (s), as SQL: service, window, place,
# facility, practitioner, look-ahead, and not a slot this patient already released.
_MATCH_SQL = f"""
    r.service_id = s.service_id
    AND r.status = 'waiting'
    AND s.status = 'free' AND s.kind = 'first'
    AND s.start > %(now)s
    AND s.start < %(now)s + make_interval(days => svc.waitlist_lookahead_days)
    AND (r.date_from IS NULL OR s.start >= (r.date_from::timestamp AT TIME ZONE 'Europe/Warsaw'))
    AND (r.date_to IS NULL OR s.start < ((r.date_to + 1)::timestamp AT TIME ZONE 'Europe/Warsaw'))
    AND (r.facility_id IS NULL OR r.facility_id = s.facility_id)
    AND (r.practitioner_id IS NULL OR r.practitioner_id = s.practitioner_id)
    AND (COALESCE(r.voivodeship_id, %(default_voiv)s) IS NULL
         OR COALESCE(r.voivodeship_id, %(default_voiv)s) = s.voivodeship_id)
    AND (r.locality_id IS NULL
         OR (r.max_distance_km IS NULL AND r.locality_id = s.locality_id)
         OR (r.max_distance_km IS NOT NULL AND {
    DISTANCE_SQL.replace("scheduling_slot", "s").replace("%s", "loc.lat", 2).replace("%s", "loc.lon")
} <= r.max_distance_km))
    AND NOT (s.id = ANY(r.declined_slot_ids))
"""
_QUEUE_ORDER = "r.priority DESC, r.urgent DESC, r.joined_at, r.id"


def _explain(registration: Registration, slot: Slot, now: dt.datetime) -> dict[str, Any]:
    """Why this patient got this slot: staff can read it on the appointment (explainable ordering)."""
    return {
        "rule": "waitlist",
        "allocated_at": now.isoformat(),
        "entitlement": registration.entitlement.code if registration.entitlement_id else None,  # type: ignore[union-attr]
        "priority": registration.priority,
        "category": registration.category,
        "joined_at": registration.joined_at.isoformat(),
        "queue_position": waitlist_position(registration=registration),
        "preferences": {
            "date_from": registration.date_from.isoformat() if registration.date_from else None,
            "date_to": registration.date_to.isoformat() if registration.date_to else None,
            "voivodeship": registration.voivodeship_id,
            "locality": registration.locality_id,
            "max_distance_km": registration.max_distance_km,
            "facility": registration.facility_id,
            "practitioner": registration.practitioner_id,
        },
        "order": "entitlement priority, then urgent before stable, then time of joining",
    }


def waitlist_allocate_slot(*, slot_id: int, now: dt.datetime | None = None) -> Appointment | None:
    """Offer a free slot to the first matching patient in queue order, and book it for them."""
    now = _now(now)
    with transaction.atomic():
        slot = (
            Slot.objects.select_for_update(skip_locked=True)
            .select_related("service", "facility")
            .filter(pk=slot_id, status=Slot.Status.FREE, kind=Slot.Kind.FIRST, start__gt=now)
            .first()
        )
        if slot is None:
            return None
        with connection.cursor() as cursor:
            cursor.execute(  # constant SQL fragments only; every value is a bound parameter
                f"""
                SELECT r.id FROM booking_registration r
                JOIN catalog_service svc ON svc.id = r.service_id
                JOIN scheduling_slot s ON s.id = %(slot)s
                LEFT JOIN catalog_locality loc ON loc.id = r.locality_id
                WHERE {_MATCH_SQL}
                ORDER BY {_QUEUE_ORDER}
                LIMIT 1
                FOR UPDATE OF r SKIP LOCKED
                """,  # noqa: S608
                {"slot": slot.pk, "now": now, "default_voiv": None},
            )
            row = cursor.fetchone()
        if row is None:
            return None
        registration = Registration.objects.select_related("entitlement", "service").get(pk=row[0])
        return _book_from_waitlist(registration, slot, now)


def _book_from_waitlist(registration: Registration, slot: Slot, now: dt.datetime) -> Appointment:
    allocation = _explain(registration, slot, now)
    appointment = _create_appointment(
        registration=registration, slot=slot, channel=Channel.WAITLIST, now=now, allocation=allocation
    )
    _appointment_event(appointment, "appointment.allocated", allocation=allocation)
    return appointment


def _allocate_for_registration(
    registration: Registration,
    now: dt.datetime,
    *,
    default_voivodeship_id: str | None = None,
    exclude_slot: int | None = None,
) -> Appointment | None:
    """Book the earliest free slot matching a (locked, waiting) registration, if there is one."""
    with connection.cursor() as cursor:
        cursor.execute(  # constant SQL fragments only; every value is a bound parameter
            f"""
            SELECT s.id FROM scheduling_slot s
            JOIN booking_registration r ON r.id = %(reg)s
            JOIN catalog_service svc ON svc.id = r.service_id
            LEFT JOIN catalog_locality loc ON loc.id = r.locality_id
            WHERE {_MATCH_SQL} AND s.id <> %(exclude)s
            ORDER BY s.start, s.id
            LIMIT 1
            FOR UPDATE OF s SKIP LOCKED
            """,  # noqa: S608
            {
                "reg": registration.pk,
                "now": now,
                "default_voiv": default_voivodeship_id,
                "exclude": exclude_slot or 0,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    slot = Slot.objects.select_related("service", "facility").get(pk=row[0])
    registration = Registration.objects.select_related("entitlement", "service").get(pk=registration.pk)
    return _book_from_waitlist(registration, slot, now)


def waitlist_allocate_registration(
    *, registration_id: int, now: dt.datetime | None = None
) -> Appointment | None:
    now = _now(now)
    with transaction.atomic():
        registration = (
            Registration.objects.select_for_update(skip_locked=True)
            .filter(pk=registration_id, status=Registration.Status.WAITING)
            .first()
        )
        if registration is None:
            return None
        return _allocate_for_registration(registration, now)


def waitlist_sweep(*, service: Service, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Keep searching: give each waiting patient, in queue order, the earliest matching free slot.

    Runs after new slots are published and periodically (slots enter the look-ahead window every day).
    Each patient is one short transaction, so a sweep never blocks bookings for long.
    """
    now = _now(now)
    ids = list(
        Registration.objects.filter(service=service, status=Registration.Status.WAITING)
        .order_by("-priority", "-urgent", "joined_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    booked = 0
    for registration_id in ids:
        if waitlist_allocate_registration(registration_id=registration_id, now=now) is not None:
            booked += 1
    return booked


def allocation_release(*, appointment: Appointment, now: dt.datetime | None = None) -> Registration:
    """The patient does not want the slot the waiting list gave them: they stay in the queue at their
    place, that slot is never offered to them again, and it moves on to the next patient."""
    now = _now(now)
    with transaction.atomic():
        appointment = _lock_appointment(appointment)
        _require_live(appointment, "zwolniona / released")
        if appointment.channel != Channel.WAITLIST:
            raise DomainError(
                "booking_state", action="zwolniona / released", state=appointment.get_channel_display()
            )
        reason = _reason_code("ALLOCATION_DECLINED")
        _appointment_end(appointment, status=Status.RELEASED, reason=reason, now=now)
        registration = Registration.objects.select_for_update().get(pk=appointment.registration_id)
        registration.status = Registration.Status.WAITING
        registration.declined_slot_ids = [*registration.declined_slot_ids, appointment.slot_id]
        registration.save(update_fields=["status", "declined_slot_ids", "updated_at"])
        _free_slot(appointment.slot_id, now)
        _appointment_event(appointment, "appointment.released", reason="declined_by_patient")
        return registration


def schedule_close_day(
    *, schedule: Schedule, day: dt.date, reason_code: str, now: dt.datetime | None = None
) -> dict[str, int]:
    """Close a whole day of a schedule (the facility API's "close a day")."""
    return session_cancel_by_facility(schedule=schedule, day=day, reason_code=reason_code, now=now)
