"""Lifecycle notifications and checks: outbox-driven notices, reminders, SMS replies, compliance.

Notices follow the outbox (apps.outbox): this consumer keeps its own cursor, so a booking made by a
facility over the API or by the waiting list reaches the patient exactly like one made on the web.
Each notice has a key of kind + appointment, so reprocessing an event (a crash before the cursor
moved, two workers) never sends it twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.booking import services as booking_services
from apps.booking.models import LIVE_APPOINTMENT, Appointment
from apps.catalog.models import Contract, Service
from apps.core.errors import DomainError
from apps.outbox.models import OutboxEvent
from apps.outbox.selectors import event_list_after
from apps.patients.models import Patient
from apps.patients.services import acting_check
from apps.portal.manage import manage_url
from apps.scheduling.models import Slot

from .models import ComplianceCheck, ConsumerCursor, InboundSms, Message
from .services import guardian_in_key, message_compose

logger = logging.getLogger("cer.notifications")

CONSUMER = "patient-notifications"
CANCEL_WORDS = frozenset({"ANULUJ", "CANCEL"})
CONFIRM_WORDS = frozenset({"TAK", "POTWIERDZAM", "YES", "CONFIRM"})
NOTICE_TTL_AFTER_PAST_VISIT = dt.timedelta(days=1)


def _context(appointment: Appointment, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    return {
        "appointment": appointment,
        "service": appointment.service,
        "facility": appointment.facility,
        "start": timezone.localtime(appointment.start),
        "confirm_by": timezone.localtime(appointment.confirm_by) if appointment.confirm_by else None,
        # The signed link to confirm, cancel or move this appointment without signing in (issue 18).
        "manage_url": manage_url(appointment_id=appointment.pk),
        # Ask for a TAK reply only while it can still count (never after the deadline).
        "confirm_pending": bool(
            appointment.status == Appointment.Status.BOOKED
            and appointment.confirm_by
            and appointment.confirm_by > now
        ),
    }


def _notice(
    appointment: Appointment, *, kind: str, template: str, extra: dict[str, Any] | None = None
) -> int:
    now = timezone.now()
    # A notice about a visit is pointless after the visit; a cancellation may still matter a day.
    expires_at = appointment.start if appointment.start > now else now + NOTICE_TTL_AFTER_PAST_VISIT
    if kind == "cancelled":
        expires_at = max(appointment.start, now + dt.timedelta(hours=1))
    messages = message_compose(
        patient=appointment.patient,
        kind=kind,
        key=f"{kind}:{appointment.pk}",
        template=template,
        context={**_context(appointment), **(extra or {})},
        expires_at=expires_at,
        appointment=appointment,
    )
    return len(messages)


def notification_for_event(*, event: OutboxEvent) -> int:
    """Compose the patient's notice for one outbox event (if the event concerns them). Idempotent."""
    if event.aggregate_type != "appointment" or event.patient_id is None:
        return 0
    appointment = (
        Appointment.objects.select_related("patient", "service", "facility", "reason", "rescheduled_to")
        .filter(pk=event.aggregate_id)
        .first()
    )
    if appointment is None:
        return 0
    payload = event.payload or {}
    if event.type == "appointment.booked":
        if payload.get("rescheduled_from"):
            return 0  # announced by the appointment.rescheduled notice
        return _notice(appointment, kind="booked", template="appointment-booked")
    if event.type == "appointment.allocated":
        return _notice(appointment, kind="allocated", template="appointment-allocated")
    if event.type == "appointment.rescheduled":
        new = appointment.rescheduled_to
        if new is None:
            return 0
        return _notice(
            new, kind="rescheduled", template="appointment-rescheduled", extra={"previous": appointment}
        )
    if event.type == "appointment.cancelled":
        return _notice(
            appointment,
            kind="cancelled",
            template="appointment-cancelled",
            extra={"by_facility": payload.get("by") == "facility"},
        )
    if event.type == "appointment.released" and payload.get("reason") == "unconfirmed":
        return _notice(appointment, kind="released", template="appointment-released")
    if event.type == "appointment.no_show" and payload.get("automatic"):
        return _notice(appointment, kind="no_show", template="appointment-no-show")
    return 0


def notifications_consume(*, batch: int = 200) -> int:
    """Read the outbox after this consumer's cursor and compose notices; returns events handled.

    The cursor row is locked with SKIP LOCKED: a second worker finds it busy and returns at once,
    so events are handled in order by one worker at a time; notices and the new cursor position
    commit together.
    """
    ConsumerCursor.objects.get_or_create(name=CONSUMER)
    with transaction.atomic():
        cursor = ConsumerCursor.objects.select_for_update(skip_locked=True).filter(name=CONSUMER).first()
        if cursor is None:
            return 0
        after = (cursor.txid, cursor.event_id) if cursor.event_id else None
        events = event_list_after(after=after, limit=batch)
        for event in events:
            notification_for_event(event=event)
        if events:
            cursor.txid, cursor.event_id = events[-1].txid, events[-1].pk
            cursor.save(update_fields=["txid", "event_id", "updated_at"])
        return len(events)


def reminders_send(*, now: dt.datetime | None = None) -> int:
    """Compose the reminders due now at the catalogue's offsets (CeR: SMS 7 days and 1 day before).

    A reminder for offset d is due from `start - d days` until the visit. Only the closest due
    offset is sent (after an outage a patient gets one reminder, not two), and only if the booking
    already existed when it fell due. Its time-to-live is the visit start, and delivery re-checks
    that the booking is still live, so a reminder never goes out late or for a cancelled booking.
    """
    now = now or timezone.now()
    longest = max(
        (max(o) for o in Service.objects.values_list("reminder_offsets_days", flat=True) if o), default=0
    )
    if not longest:
        return 0
    due = (
        Appointment.objects.filter(
            status__in=LIVE_APPOINTMENT, start__gt=now, start__lte=now + dt.timedelta(days=longest)
        )
        .select_related("patient", "service", "facility")
        .order_by("start")
    )
    composed = 0
    for appointment in due.iterator(chunk_size=500):
        offsets = sorted(appointment.service.reminder_offsets_days or [])
        current = [d for d in offsets if appointment.start - dt.timedelta(days=d) <= now]
        if not current:
            continue
        offset = current[0]
        if appointment.created_at > appointment.start - dt.timedelta(days=offset):
            continue  # booked after this reminder fell due: the booking notice said it all
        with transaction.atomic():
            composed += len(
                message_compose(
                    patient=appointment.patient,
                    kind=f"reminder_{offset}d",
                    key=f"reminder:{offset}:{appointment.pk}",
                    template="appointment-reminder",
                    context={**_context(appointment, now), "days": offset},
                    expires_at=appointment.start,
                    appointment=appointment,
                    requires_live_appointment=True,
                )
            )
    return composed


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-9:]


def sms_inbound_handle(*, provider_id: str, sender: str, text: str) -> str:
    """A patient's SMS reply: the cancel word cancels, the confirm word confirms the booking the last
    SMS to that number was about. Returns the outcome; a redelivered webhook returns the first one."""
    number = _digits(sender)
    try:
        with transaction.atomic():
            inbound = InboundSms.objects.create(
                provider_id=provider_id[:100], sender=sender[:20], text=text[:500]
            )
    except IntegrityError:
        return InboundSms.objects.get(provider_id=provider_id[:100]).outcome or "duplicate"
    word = (text.strip().split() or [""])[0].upper().strip(".!")
    if word not in CANCEL_WORDS | CONFIRM_WORDS:
        outcome = "ignored"
    elif len(number) < 9:
        outcome = "unknown_sender"
    else:
        last = (
            Message.objects.filter(
                channel=Message.Channel.SMS,
                to__endswith=number,
                appointment__isnull=False,
                state=Message.State.SENT,
            )
            .select_related("appointment")
            .order_by("-created_at", "-id")
            .first()
        )
        if last is None or last.appointment is None:
            outcome = "no_booking"
        else:
            inbound.appointment = last.appointment
            try:
                _guardian_may_still_act(last)
                if word in CANCEL_WORDS:
                    booking_services.appointment_cancel_by_patient(appointment=last.appointment)
                    outcome = "cancelled"
                else:
                    booking_services.appointment_confirm(appointment=last.appointment)
                    outcome = "confirmed"
            except DomainError as exc:
                outcome = exc.code
    inbound.outcome = outcome
    inbound.save(update_fields=["appointment", "outcome"])
    return outcome


def _guardian_may_still_act(message: Message) -> None:
    """A child's SMS went to a parent or guardian (its key ends with ":g<their id>"): their reply acts
    for the child only while the registry still lets them (the child may have come of age since).
    Raises `DomainError` (acting_*) otherwise."""
    guardian_id = guardian_in_key(message.key)
    if guardian_id is None or message.appointment is None:
        return
    guardian = Patient.objects.filter(pk=guardian_id).first()
    if guardian is None:
        raise DomainError("acting_not_allowed")
    acting_check(actor=guardian, patient=message.appointment.patient_id)


def _local_day(instant: dt.datetime) -> dt.date:
    """The Warsaw day of an instant; a slot published at the very end of year 9999 (UTC) falls after
    the last representable day in Warsaw: it counts as the last day, not as a crash of the whole check."""
    try:
        return timezone.localtime(instant).date()
    except OverflowError:
        return dt.date.max


def compliance_check(*, today: dt.date | None = None) -> int:
    """Record, per facility and contracted service in CeR scope, how far ahead its schedule is published.

    One aggregate query over the slots of the contracted pairs; rows are upserted per day, so running
    the check twice on a day leaves one result per pair. Returns the number of pairs checked.
    """
    today = today or timezone.localdate()
    pairs = (
        Contract.objects.filter(valid_from__lte=today, service__cer_from__lte=today, facility__active=True)
        .exclude(valid_to__lt=today)
        .values_list("facility_id", "service_id")
        .distinct()
    )
    pair_set = set(pairs)
    if not pair_set:
        return 0
    horizon = {
        (row["facility_id"], row["service_id"]): row["last"]
        for row in Slot.objects.filter(facility_id__in={f for f, _ in pair_set}, start__gte=timezone.now())
        .exclude(status=Slot.Status.CANCELLED)
        .values("facility_id", "service_id")
        .annotate(last=Max("start"))
    }
    required = dict(
        Service.objects.filter(pk__in={s for _, s in pair_set}).values_list("pk", "min_horizon_days")
    )
    rows = []
    for facility_id, service_id in pair_set:
        last = horizon.get((facility_id, service_id))
        until = _local_day(last) if last else None
        days = (until - today).days if until else 0
        rows.append(
            ComplianceCheck(
                day=today,
                facility_id=facility_id,
                service_id=service_id,
                published_until=until,
                published_days=days,
                required_days=required[service_id],
                compliant=days >= required[service_id],
            )
        )
    ComplianceCheck.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["day", "facility", "service"],
        update_fields=["published_until", "published_days", "required_days", "compliant", "checked_at"],
    )
    return len(rows)
