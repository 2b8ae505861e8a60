"""Steps shared by the booking services: locks, events, the ends of an appointment, refusals."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from apps.catalog.models import Entitlement, ReasonCode, Service
from apps.catalog.reason_cache import reason_by_code
from apps.core import after_commit
from apps.core.errors import DomainError, localised, message_param
from apps.core.queries import one_or_none
from apps.outbox.models import OutboxEvent
from apps.outbox.services import event_new, event_record, event_save
from apps.patients.models import Patient, Referral
from apps.scheduling.models import Slot

from .. import rules, sql
from ..models import LIVE_APPOINTMENT, Appointment, Registration

Status = Appointment.Status
Channel = Appointment.Channel


def now_or(now: dt.datetime | None) -> dt.datetime:
    return now or timezone.now()


def status_label(status: str) -> dict[str, str]:
    return localised(str(Status(status).label), status.replace("_", " "))


# --- events ------------------------------------------------------------------------------------------


def appointment_payload(appointment: Appointment, **extra: Any) -> dict[str, Any]:
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


def appointment_event_new(appointment: Appointment, type: str, **extra: Any) -> OutboxEvent:
    return event_new(
        type=type,
        aggregate_type="appointment",
        aggregate_id=appointment.pk,
        facility_id=appointment.facility_id,
        patient_id=appointment.patient_id,
        payload=appointment_payload(appointment, **extra),
    )


def appointment_event(appointment: Appointment, type: str, **extra: Any) -> None:
    event_save(appointment_event_new(appointment, type, **extra))


def registration_event(registration: Registration, type: str, **extra: Any) -> None:
    event_record(
        type=type,
        aggregate_type="registration",
        aggregate_id=registration.pk,
        facility_id=extra.pop("facility_id", None),
        patient_id=registration.patient_id,
        payload={"registration_id": registration.pk, "service": registration.service.code, **extra},
    )


def offer_freed_slots(*slot_ids: int) -> None:
    """Queue slots that went back to the pool for the waiting list, in the current transaction."""
    if slot_ids:
        after_commit.record(after_commit.SLOT_FREED, *slot_ids)


# --- reasons ------------------------------------------------------------------------------------------


def reason(code: str, kinds: tuple[str, ...]) -> ReasonCode:
    found = reason_by_code(code)
    if found is None or found.kind not in kinds:
        raise DomainError("unknown_reason", field="reason", reason=code)
    return found


def reason_code(code: str) -> ReasonCode | None:
    """A reason the system gives itself, by its code (fixtures/reference/reason_codes.json); not the
    first of a kind, since a kind has several (NO_SHOW and LATE_ARRIVAL, UNCONFIRMED_RELEASED and
    MOVED_EARLIER)."""
    return reason_by_code(code)


# --- refusals -----------------------------------------------------------------------------------------


def _existing_registration_label(registration: Registration) -> dict[str, str]:
    appointment = (
        registration.appointments.filter(status__in=LIVE_APPOINTMENT).select_related("facility").first()
    )
    if appointment is None:
        return localised(f"Poczekalnia, wpis nr {registration.pk}", f"waiting list, entry {registration.pk}")
    place, number = appointment.facility.name, appointment.pk
    return localised(
        f"{place}, {message_param(appointment.start, 'pl')}, wizyta nr {number}",
        f"{place}, {message_param(appointment.start, 'en')}, appointment {number}",
    )


def refuse_second_registration(patient: Patient, service: Service) -> DomainError:
    existing = Registration.objects.filter(
        patient=patient, service=service, status__in=(Registration.Status.WAITING, Registration.Status.BOOKED)
    ).first()
    label = _existing_registration_label(existing) if existing else "?"
    error = DomainError("active_registration_exists", existing=label)
    error.params["registration_id"] = existing.pk if existing else ""
    return error


def require_live(appointment: Appointment, action: dict[str, str]) -> None:
    if appointment.status not in LIVE_APPOINTMENT:
        raise DomainError("booking_state", action=action, state=status_label(appointment.status))


# --- slots and appointments ---------------------------------------------------------------------------


def check_bookable(slot: Slot, patient: Patient, now: dt.datetime) -> None:
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


def lock_slot_facts(*, slot_id: int, patient: Patient, now: dt.datetime) -> sql.SlotFacts:
    facts = sql.slot_facts(slot_id=slot_id, patient_id=patient.pk, today=timezone.localdate(now))
    if facts is None:
        raise DomainError("slot_not_found")
    return facts


def appointment_key(appointment: Appointment | int) -> dict[str, Any]:
    """How to find an appointment again: by id and, from an instance that has it, its start (which
    never changes: a moved booking is a new appointment), so that PostgreSQL reads one month partition
    instead of probing every one (docs/scaling.md, "The appointments")."""
    if isinstance(appointment, int):
        return {"pk": appointment}
    if "start" in appointment.get_deferred_fields() or appointment.start is None:
        return {"pk": appointment.pk}
    return {"pk": appointment.pk, "start": appointment.start}


def appointment_save(appointment: Appointment, fields: list[str]) -> None:
    """`appointment.save(update_fields=fields)` in its own month partition: Django's save finds a row
    by primary key alone, which on the partitioned table probes every month (`appointment_key`). The
    same values (each field's `pre_save`: `updated_at`'s time) and the same refusal of a row that is
    not there; no model signals are connected to appointments."""
    values = {}
    for field in Appointment._meta.concrete_fields:
        if field.name in fields:
            values[field.attname] = field.pre_save(appointment, add=False)
    if len(values) != len(fields):
        raise ValueError(f"not fields of an appointment: {sorted(set(fields) - set(values))}")
    if not Appointment.objects.filter(**appointment_key(appointment)).update(**values):
        raise Appointment.DoesNotExist(f"appointment {appointment.pk} at {appointment.start} was not saved")


LOCK_RELATED = ("service", "facility", "registration", "registration__referral", "slot")


def lock_appointment(
    appointment: Appointment | int, *, related: tuple[str, ...] = LOCK_RELATED
) -> Appointment:
    """The appointment, locked, with the rows in `related` read in the same statement (a path that
    needs fewer names fewer: each join costs the locked read)."""
    key = appointment_key(appointment)
    if "slot" in related and "start" in key:
        key["slot__start"] = key["start"]  # the slot's month too: the join names its id alone
    locked = (
        Appointment.objects.select_for_update(of=("self",)).select_related(*related).filter(**key).first()
    )
    if locked is None:
        raise DomainError("booking_not_found")
    return locked


def lock_for_ending(appointment: Appointment | int) -> Appointment:
    """The appointment, locked, with its service, facility and registration: `lock_appointment` for
    the paths that end a booking, in one prepared statement (`sql.appointment_lock`)."""
    key = appointment_key(appointment)
    locked = sql.appointment_lock(appointment_id=key["pk"], start=key.get("start"))
    if locked is None:
        raise DomainError("booking_not_found")
    return locked


def end_booking(
    appointment: Appointment,
    *,
    status: str,
    reason: ReasonCode | None,
    now: dt.datetime,
    ending: sql.Ending,
    event: str,
    payload: dict[str, Any],
) -> None:
    """A locked, live appointment stops being live (`appointment_end`, `close_registration`,
    `referrals.referral_free` and `free_slot` with its queue row, and its event with `payload` added),
    in one statement
    (`sql.appointment_end_write`); a freed slot asks for a drain of the queue after the commit."""
    appointment.status = status
    appointment.reason = reason
    appointment.ended_at = now
    appointment.version += 1
    freed = sql.appointment_end_write(
        appointment=appointment,
        ending=ending,
        event=appointment_event_new(appointment, event, **payload),
        now=now,
    )
    if freed is not None:
        after_commit.later(after_commit.FREED_SLOTS_QUEUED)


def facts_for(
    *,
    patient: Patient,
    slot: Slot,
    last_screening: dt.date | None,
    referral: Referral | None,
    referral_known: bool = True,
) -> rules.Facts:
    """The rules' facts for booking `slot` (service loaded) on its own date."""
    return rules.Facts(
        patient=patient,
        service=slot.service,
        day=timezone.localdate(slot.start),
        last_screening=last_screening,
        slot=slot,
        referral=referral,
        referral_known=referral_known,
    )


def confirm_by(*, service: Service, channel: str, start: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The deadline to confirm attendance (catalogue data per service and channel), or None.

    None when the service or the channel needs no confirmation, and when the deadline would fall
    sooner than `confirm_min_notice_hours` after the booking: a patient is never held to a deadline
    they could hardly have been told about (the booking notice, in the booking's channel, states it).
    """
    if not service.confirmation_required or not service.confirm_deadline_hours:
        return None
    if channel in (service.confirm_exempt_channels or []):
        return None
    deadline = start - dt.timedelta(hours=service.confirm_deadline_hours)
    if deadline < now + dt.timedelta(hours=service.confirm_min_notice_hours):
        return None
    return deadline


def appointment_new(
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
        confirm_by=confirm_by(service=slot.service, channel=channel, start=slot.start, now=now),
        allocation=allocation or {},
    )


def registration_new(
    *,
    patient: Patient,
    service: Service,
    referral: Referral | None,
    status: str,
    now: dt.datetime,
    entitlement: Entitlement | None,
    urgent: bool | None = None,
    **preferences: Any,
) -> Registration:
    """A registration in the queue order of DESIGN.md (entitlement, urgency, time), not yet written.
    Urgency is the referral's medical category unless stated (a facility's waiting-list entry)."""
    return Registration(
        patient=patient,
        service=service,
        status=status,
        referral=referral,
        entitlement=entitlement,
        priority=entitlement.priority if entitlement else 0,
        urgent=urgent
        if urgent is not None
        else bool(referral and referral.category == Referral.Category.URGENT),
        joined_at=now,
        **preferences,
    )


def free_slot(
    slot_id: int, now: dt.datetime, *, start: dt.datetime | None = None, offer: bool = True
) -> None:
    """Give a slot back to the pool (if it is still ahead) and offer it to the waiting list. `start`,
    the slot's (its appointment's), confines the write to its month's partition."""
    key = {"pk": slot_id} if start is None else {"pk": slot_id, "start": start}
    updated = Slot.objects.filter(**key, status=Slot.Status.BOOKED, start__gt=now).update(
        status=Slot.Status.FREE, hold_until=None, held_by=None, updated_at=now
    )
    if updated and offer:
        offer_freed_slots(slot_id)


def appointment_end(
    appointment: Appointment, *, status: str, reason: ReasonCode | None, now: dt.datetime
) -> None:
    """The appointment stops being live (cancelled, released, no-show): state, reason, time, version."""
    appointment.status = status
    appointment.reason = reason
    appointment.ended_at = now
    appointment.version += 1
    appointment_save(appointment, ["status", "reason", "ended_at", "version", "updated_at"])


def close_registration(registration: Registration, reason: str, now: dt.datetime) -> None:
    registration.status = Registration.Status.CLOSED
    registration.closed_at = now
    registration.closed_reason = reason
    registration.save(update_fields=["status", "closed_at", "closed_reason", "updated_at"])


def lock_registration(pk: int) -> Registration:
    found = one_or_none(
        Registration.objects.select_for_update(of=("self",))
        .select_related("service", "referral", "entitlement")
        .filter(pk=pk)
    )
    if found is None:
        raise DomainError("waitlist_entry_not_found")
    return found
