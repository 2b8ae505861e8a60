"""What happens to a booking after it is made: confirm, cancel, reschedule, outcome, release, no-show."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from apps.catalog.models import ReasonCode, Service
from apps.core.errors import DomainError, localised
from apps.outbox.services import event_record
from apps.patients.models import Patient, Referral
from apps.scheduling.models import Schedule, Slot
from apps.scheduling.selectors import day_start

from .. import rules, sql
from ..models import LIVE_APPOINTMENT, Appointment, Registration
from . import referrals
from ._transitions import (
    Status,
    appointment_end,
    appointment_event,
    appointment_event_new,
    appointment_new,
    appointment_save,
    check_bookable,
    close_registration,
    end_booking,
    facts_for,
    free_slot,
    lock_appointment,
    lock_for_ending,
    lock_slot_facts,
    now_or,
    reason,
    reason_code,
    registration_event,
    require_live,
)
from .waitlist import allocate_for_registration

# The verb of "Tej wizyty nie można już {action}" / "This appointment can no longer be {action}".
CONFIRMED = localised("potwierdzić", "confirmed")
CANCELLED = localised("odwołać", "cancelled")
RESCHEDULED = localised("przenieść", "rescheduled")
GIVEN_AN_OUTCOME = localised("rozliczyć", "given an outcome")

NO_SHOW_AUTO = "NO_SHOW_AUTO"


def appointment_confirm(*, appointment: Appointment, now: dt.datetime | None = None) -> Appointment:
    now = now_or(now)
    with transaction.atomic():
        appointment = lock_appointment(appointment)
        if appointment.status == Status.CONFIRMED:
            return appointment  # confirming twice (SMS and web) is fine
        require_live(appointment, CONFIRMED)
        if appointment.start <= now:
            raise DomainError("slot_in_past")
        appointment.status = Status.CONFIRMED
        appointment.confirmed_at = now
        appointment.version += 1
        appointment_save(appointment, ["status", "confirmed_at", "version", "updated_at"])
        appointment_event(appointment, "appointment.confirmed")
        return appointment


def appointment_cancel_by_patient(
    *,
    appointment: Appointment,
    reason_code: str = "PATIENT_REQUEST",
    recorded_by: str = "patient",
    now: dt.datetime | None = None,
) -> Appointment:
    """The patient gives the slot back: the registration ends, its e-referral is freed for another
    booking, and the slot returns to the pool. `recorded_by="facility"`: the patient asked at the desk
    or on the phone and the facility's system recorded it (the same cancellation)."""
    now = now_or(now)
    with transaction.atomic():
        # Two statements: the appointment locked with its service, facility and registration, then
        # one that ends it, closes the registration, frees the e-referral and the slot, queues the slot
        # for the waiting list and writes the event (`sql.appointment_end_write`).
        appointment = lock_for_ending(appointment)
        require_live(appointment, CANCELLED)
        cause = reason(reason_code, (ReasonCode.Kind.PATIENT_CANCEL,))  # reference data, in the process
        end_booking(
            appointment,
            status=Status.CANCELLED_BY_PATIENT,
            reason=cause,
            now=now,
            ending=sql.Ending(
                closed_reason="cancelled_by_patient",
                free_slot=True,
                referral_from=(Referral.Status.REGISTERED,),
                referral_to=Referral.Status.ISSUED,
                referral_reason="cancelled_by_patient",
            ),
            event="appointment.cancelled",
            payload={"by": "patient", "reason": cause.code, "recorded_by": recorded_by},
        )
        return appointment


def appointment_cancel_for_caller(
    *, appointment: Appointment, reason_code: str, now: dt.datetime | None = None
) -> Appointment:
    """A facility system's cancellation: the reason's kind says whose it is. A patient_cancel reason
    (PATIENT_REQUEST, ...) is the patient's own cancellation recorded at the desk: the registration ends
    and the e-referral is freed, nobody is re-queued. A facility_cancel reason keeps the patient's
    place (`appointment_cancel_by_facility`)."""
    kind = (
        ReasonCode.objects.filter(
            code=reason_code, kind__in=(ReasonCode.Kind.PATIENT_CANCEL, ReasonCode.Kind.FACILITY_CANCEL)
        )
        .values_list("kind", flat=True)
        .first()
    )
    if kind == ReasonCode.Kind.PATIENT_CANCEL:
        return appointment_cancel_by_patient(
            appointment=appointment, reason_code=reason_code, recorded_by="facility", now=now
        )
    return appointment_cancel_by_facility(appointment=appointment, reason_code=reason_code, now=now)


def appointment_cancel_by_facility(
    *, appointment: Appointment, reason_code: str, now: dt.datetime | None = None
) -> Appointment:
    """The facility cannot see the patient. The patient keeps their place: rebooked at the earliest
    matching slot the booking rules allow, or back on the waiting list with their original position
    (the waiting-list entry keeps holding the e-referral). The slot is withdrawn."""
    now = now_or(now)
    with transaction.atomic():
        appointment = lock_appointment(appointment)
        require_live(appointment, CANCELLED)
        cause = reason(reason_code, (ReasonCode.Kind.FACILITY_CANCEL,))
        _facility_cancel_one(appointment, cause, now)
        appointment.refresh_from_db()
        return appointment


def _facility_cancel_one(appointment: Appointment, cause: ReasonCode, now: dt.datetime) -> Appointment | None:
    appointment_end(appointment, status=Status.CANCELLED_BY_FACILITY, reason=cause, now=now)
    Slot.objects.filter(pk=appointment.slot_id).update(status=Slot.Status.CANCELLED, updated_at=now)
    appointment_event(appointment, "appointment.cancelled", by="facility", reason=cause.code)
    registration = (
        Registration.objects.select_for_update(of=("self",))
        .select_related("service")
        .get(pk=appointment.registration_id)
    )
    registration.status = Registration.Status.WAITING  # joined_at unchanged: the place is kept
    registration.save(update_fields=["status", "updated_at"])
    # Without stated preferences, "matching" means the same voivodeship as the cancelled visit.
    new = allocate_for_registration(
        registration,
        now,
        default_voivodeship_id=appointment.facility.voivodeship_id,
        exclude_slot=appointment.slot_id,
    )
    if new is None:
        registration_event(registration, "registration.waiting", after="facility_cancellation")
    return new


def session_cancel_by_facility(
    *, schedule: Schedule, day: dt.date, reason_code: str, now: dt.datetime | None = None
) -> dict[str, int]:
    """A doctor falls ill: cancel every booking of one schedule on one day, and close its free slots.

    Patients are handled in waiting-list order (entitlement, category, time of registration), so the
    earliest replacement slots go to those first in line; each keeps their place either way.
    """
    now = now_or(now)
    with transaction.atomic():
        cause = reason(reason_code, (ReasonCode.Kind.FACILITY_CANCEL,))
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
            if _facility_cancel_one(appointment, cause, now) is not None:
                rebooked += 1
        event_record(
            type="schedule.day_closed",
            aggregate_type="schedule",
            aggregate_id=schedule.pk,
            facility_id=schedule.facility_id,
            payload={"schedule_id": schedule.pk, "day": day.isoformat(), "reason": cause.code},
        )
        return {
            "cancelled": len(appointments),
            "rebooked": rebooked,
            "waiting": len(appointments) - rebooked,
            "slots_closed": closed,
        }


def schedule_close_day(
    *, schedule: Schedule, day: dt.date, reason_code: str, now: dt.datetime | None = None
) -> dict[str, int]:
    """Close a whole day of a schedule (the facility API's "close a day")."""
    return session_cancel_by_facility(schedule=schedule, day=day, reason_code=reason_code, now=now)


def appointment_reschedule(
    *, appointment: Appointment, new_slot_id: int, now: dt.datetime | None = None
) -> Appointment:
    """Move a booking to another slot of the same service: both changes commit together or neither.
    The booking rules are judged again for the new slot's date (age by birth year, interval, scope)."""
    now = now_or(now)
    with transaction.atomic():
        current = lock_appointment(appointment)
        require_live(current, RESCHEDULED)
        patient = Patient.objects.get(pk=current.patient_id)
        facts = lock_slot_facts(slot_id=new_slot_id, patient=patient, now=now)
        new_slot = facts.slot
        if new_slot.service_id != current.service_id:
            raise DomainError("slot_not_found")
        check_bookable(new_slot, patient, now)
        registration = current.registration
        rules.check(
            facts_for(
                patient=patient,
                slot=new_slot,
                last_screening=facts.last_screening,
                referral=registration.referral,
            )
        )
        was_confirmed = current.status == Status.CONFIRMED
        current.status = Status.RESCHEDULED
        current.ended_at = now
        current.version += 1
        # The new booking's id is known already: one write ends the old row and names its successor
        # (the key is not checked by the database; if the new one is refused, the transaction rolls back).
        current.rescheduled_to_id = facts.appointment_id
        appointment_save(current, ["status", "ended_at", "version", "updated_at", "rescheduled_to"])
        new = appointment_new(
            registration=registration,
            slot=new_slot,
            channel=current.channel,
            now=now,
            allocation=current.allocation,
        )
        new.pk = facts.appointment_id
        if was_confirmed:
            new.status, new.confirmed_at = Status.CONFIRMED, now
        event = appointment_event_new(new, "appointment.booked", rescheduled_from=current.pk)
        if not sql.booking_write(registration=registration, new=False, appointment=new, event=event, now=now):
            raise DomainError("slot_not_free")
        current.rescheduled_to = new
        free_slot(current.slot_id, now, start=current.start)
        appointment_event(
            current, "appointment.rescheduled", new_appointment_id=new.pk, new_start=new.start.isoformat()
        )
        return new


def appointment_record_outcome(
    *, appointment: Appointment, outcome: str, now: dt.datetime | None = None
) -> Appointment:
    """After the visit: attended or no-show. Ends the registration; attended realises the e-referral
    (a no-show does what the catalogue says); a screening counts for intervals."""
    now = now_or(now)
    if outcome not in (Status.ATTENDED, Status.NO_SHOW):
        raise DomainError("validation_error", field="outcome")
    with transaction.atomic():
        appointment = lock_appointment(appointment)
        if appointment.status == outcome:
            return appointment
        # The facility may still record the visit as attended after the automatic no-show rule.
        correcting = outcome == Status.ATTENDED and _is_automatic_no_show(appointment)
        if not correcting:
            require_live(appointment, GIVEN_AN_OUTCOME)
        if appointment.start > now:
            raise DomainError("outcome_too_early")
        appointment.status = outcome
        appointment.ended_at = now
        appointment.version += 1
        appointment.reason = reason_code("NO_SHOW") if outcome == Status.NO_SHOW else None
        appointment_save(appointment, ["status", "ended_at", "reason", "version", "updated_at"])
        close_registration(appointment.registration, outcome, now)
        referrals.referral_after_outcome(
            registration=appointment.registration,
            service=appointment.service,
            outcome=outcome,
            now=now,
            reason=outcome,
        )
        # An attended screening's record (the interval rules' history) is written by the database, on
        # every path that makes a screening attended (booking 0011).
        appointment_event(appointment, f"appointment.{outcome}")
        return appointment


def _is_automatic_no_show(appointment: Appointment) -> bool:
    return (
        appointment.status == Status.NO_SHOW
        and appointment.reason is not None
        and appointment.reason.code == NO_SHOW_AUTO
    )


def appointments_mark_no_show(*, now: dt.datetime | None = None, batch: int = 500) -> int:
    """The no-show rule (catalogue `no_show_after_hours`): a booking still without an outcome that many
    hours after its visit ended becomes a no-show with reason NO_SHOW_AUTO. That ends the registration,
    so the patient can book the service again; the facility can still record it as attended.

    Rows are claimed with SKIP LOCKED and re-checked under the lock, so two workers running this at
    once, or a run that repeats after a crash, change each booking once and record one event.
    """
    now = now_or(now)
    cause = reason_code(NO_SHOW_AUTO)
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
                    appointment_end(appointment, status=Status.NO_SHOW, reason=cause, now=now)
                    close_registration(appointment.registration, Status.NO_SHOW, now)
                    referrals.referral_after_outcome(
                        registration=appointment.registration,
                        service=service,
                        outcome=Status.NO_SHOW,
                        now=now,
                        reason="no_show_auto",
                    )
                    appointment_event(appointment, "appointment.no_show", automatic=True)
            marked += len(due)
            if len(due) < batch:
                break
    return marked


def appointments_release_unconfirmed(*, now: dt.datetime | None = None, batch: int = 500) -> int:
    """Release bookings not confirmed by their deadline (catalogue rule); the e-referral is freed and
    the slot goes to the waiting list.

    Rows are claimed with SKIP LOCKED, so two workers running this at once share the work and never
    release one booking twice.
    """
    now = now_or(now)
    released = 0
    cause = reason_code("UNCONFIRMED_RELEASED")
    while True:
        with transaction.atomic():
            due = list(
                Appointment.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("service", "facility", "registration")
                .filter(status=Status.BOOKED, confirm_by__lte=now, start__gt=now)[:batch]
            )
            for appointment in due:
                end_booking(
                    appointment,
                    status=Status.RELEASED,
                    reason=cause,
                    now=now,
                    ending=sql.Ending(
                        closed_reason="released_unconfirmed",
                        free_slot=True,
                        referral_from=(Referral.Status.REGISTERED,),
                        referral_to=Referral.Status.ISSUED,
                        referral_reason="released_unconfirmed",
                    ),
                    event="appointment.released",
                    payload={"reason": "unconfirmed"},
                )
        released += len(due)
        if len(due) < batch:
            return released
