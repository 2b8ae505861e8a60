"""The central waiting list (Poczekalnia): join, leave, allocation of freed slots, release of an offer.

Allocation is in queue order (entitlement, then urgent before stable, then time of joining) among
the registrations whose preferences match the slot (`sql.MATCH_SQL`) and whose patient the rules of
sex, age and screening interval allow on the slot's date (`sql.ELIGIBLE_SQL`, so the walk does not
stall on entries those rules refuse); each candidate is then judged by the same booking rules as any
other booking, on the slot's date (`rules.check`), and one that fails keeps its place for a slot that
suits it.
"""

from __future__ import annotations

import collections
import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone

from apps.catalog.models import Entitlement, Facility, Locality, Service, Voivodeship
from apps.core import after_commit
from apps.core.errors import DomainError, localised
from apps.operations.metrics import waitlist_allocation_observed
from apps.patients.models import Patient
from apps.scheduling.models import Practitioner, Slot
from apps.scheduling.selectors import day_start

from .. import rules, sql
from ..models import Appointment, FreedSlot, Registration
from ..selectors import waitlist_position
from . import referrals
from ._transitions import (
    Channel,
    Status,
    appointment_end,
    appointment_event,
    appointment_event_new,
    appointment_new,
    close_registration,
    facts_for,
    free_slot,
    lock_appointment,
    lock_registration,
    now_or,
    reason_code,
    refuse_second_registration,
    registration_event,
    registration_new,
    require_live,
)

# Candidates judged per allocation: the queue is walked in batches, and a slot nobody in the first
# `SCAN_LIMIT` matching entries may take waits for the next sweep (bounded work per transaction).
BATCH = 20
SCAN_LIMIT = 200
# Candidates fetched at first per slot of a batch, beyond those the batch's earlier slots of the same
# service may take (by service, not region: entries without a region preference match every region, and
# a slot that runs out costs a statement of its own): the statement already passes over entries the
# rules of sex, age and interval refuse (`sql.ELIGIBLE_SQL`), so the first untaken one is nearly always
# the one; a slot that runs out fetches `BATCH` more.
FIRST = 3
# Freed slots allocated per transaction by `waitlist_allocate_slots` (the batch path).
SLOTS_PER_TRANSACTION = 50
# Freed slots one `waitlist_drain` call takes off the queue at most (its task asks for another drain
# if it stopped there).
DRAIN_LIMIT = 2000
RELEASED = localised("zwolnić", "released")


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
    urgent: bool | None = None,
    entitlement: Entitlement | None = None,
    registered_by: Facility | None = None,
    now: dt.datetime | None = None,
) -> Registration:
    """Join the national queue for a service with preferences; the system keeps searching for a slot.

    The booking rules are judged on the first day the entry asks for (its `date_from`, or today); each
    allocation judges them again on the offered slot's date. `urgent` states the medical category where
    no referral carries it; `entitlement` is an out-of-turn entitlement already recorded for the
    patient (else their strongest valid one applies). `registered_by`: the facility that entered it.
    """
    now = now_or(now)
    today = timezone.localdate(now)
    if date_from and date_to and date_to < date_from:
        raise DomainError("validation_error", field="date_to")
    if max_distance_km is not None and locality is None:
        raise DomainError("validation_error", field="locality")
    first_day = max(today, date_from or today)
    with transaction.atomic():
        last = sql.last_screening(patient_id=patient.pk, service_id=service.pk)
        facts = rules.Facts(
            patient=patient, service=service, day=first_day, last_screening=last, referral_known=False
        )
        rules.check(facts)
        referral = referrals.referral_find(
            patient=patient, service=service, number=referral_number, code=referral_code, today=today
        )
        rules.check(
            rules.Facts(
                patient=patient, service=service, day=first_day, last_screening=last, referral=referral
            )
        )
        try:
            with transaction.atomic():
                registration = registration_new(
                    patient=patient,
                    service=service,
                    referral=referral,
                    status=Registration.Status.WAITING,
                    now=now,
                    entitlement=entitlement or sql.entitlement_for(patient=patient, on=today),
                    urgent=urgent,
                    date_from=date_from,
                    date_to=date_to,
                    voivodeship=voivodeship,
                    locality=locality,
                    max_distance_km=max_distance_km,
                    facility=facility,
                    practitioner=practitioner,
                )
                registration.registered_by = registered_by
                registration.save(force_insert=True)
        except IntegrityError:
            raise refuse_second_registration(patient, service) from None
        if referral is not None:
            referrals.referral_register(
                referral=referral, registration_id=registration.pk, now=now, reason="waitlist_joined"
            )
        registration_event(
            registration,
            "registration.waiting",
            after="joined",
            facility_id=registered_by.pk if registered_by else None,
        )
        after_commit.later(after_commit.WAITING_ENTRY_CREATED, registration.pk)
        return registration


def waitlist_leave(
    *, registration: Registration, facility: Facility | None = None, now: dt.datetime | None = None
) -> Registration:
    """Leave the queue (the patient, or the facility that entered the entry); the e-referral is freed."""
    now = now_or(now)
    with transaction.atomic():
        locked = lock_registration(registration.pk)
        if locked.status != Registration.Status.WAITING:
            raise DomainError("waitlist_entry_not_found")
        close_registration(locked, "left_waitlist", now)
        referrals.referral_free(registration=locked, now=now, reason="left_waitlist")
        registration_event(
            locked,
            "registration.closed",
            reason="left_waitlist",
            facility_id=facility.pk if facility else None,
        )
        return locked


# The preferences a waiting-list entry holds, in the order the change event names them.
PREFERENCES = (
    "date_from",
    "date_to",
    "voivodeship",
    "locality",
    "max_distance_km",
    "facility",
    "practitioner",
)
_RELATED = frozenset({"voivodeship", "locality", "facility", "practitioner"})


def waitlist_preferences_update(
    *,
    registration: Registration,
    date_from: dt.date | None,
    date_to: dt.date | None,
    voivodeship: Voivodeship | None,
    locality: Locality | None,
    max_distance_km: int | None,
    facility: Facility | None,
    practitioner: Practitioner | None,
) -> Registration:
    """Replace a waiting entry's preferences (all of them: what is not given is "any").

    The entry keeps its place: the queue order is entitlement, medical category and time of joining
    (DESIGN.md), none of which a preference touches, so `joined_at`, `priority`, `urgent`, the
    e-referral it holds and the slots the patient released (`declined_slot_ids`) stay as they are.
    Not a booking path (`rules.PATHS`): nothing is booked here; the allocation asked for after the
    commit judges every offered slot by the rules, as for a new entry. An entry that is no longer
    waiting (the waiting list booked it meanwhile, or it was left) is refused under the row lock.
    """
    if date_from and date_to and date_to < date_from:
        raise DomainError("validation_error", field="date_to")
    if max_distance_km is not None and locality is None:
        raise DomainError("validation_error", field="locality")
    if practitioner is not None and (facility is None or practitioner.facility_id != facility.pk):
        raise DomainError("validation_error", field="practitioner")  # a doctor is seen at their facility
    wanted = {
        "date_from": date_from,
        "date_to": date_to,
        "voivodeship": voivodeship,
        "locality": locality,
        "max_distance_km": max_distance_km,
        "facility": facility,
        "practitioner": practitioner,
    }
    with transaction.atomic():
        locked = lock_registration(registration.pk)
        if locked.status != Registration.Status.WAITING:
            raise DomainError("waitlist_entry_not_found")
        changes = [name for name in PREFERENCES if _comparable(wanted[name]) != _stored(locked, name)]
        if not changes:
            return locked
        for name in PREFERENCES:
            setattr(locked, name, wanted[name])
        locked.save(update_fields=[*PREFERENCES, "updated_at"])
        # Told to the facility that registered the entry (if one did): it reads the entry over the API.
        registration_event(
            locked,
            "registration.preferences_changed",
            changes=changes,
            facility_id=locked.registered_by_id,
        )
        # The new preferences may match a free slot at once: look for one, as after joining.
        after_commit.later(after_commit.WAITING_ENTRY_CHANGED, locked.pk)
        return locked


def _comparable(value: Any) -> Any:
    return value.pk if isinstance(value, Model) else value


def _stored(registration: Registration, name: str) -> Any:
    return getattr(registration, f"{name}_id" if name in _RELATED else name)


def _explain(registration: Registration, now: dt.datetime, position: int | None = None) -> dict[str, Any]:
    """Why this patient got this slot: staff can read it on the appointment (explainable ordering).
    `position`: the registration's place in the queue, if the caller counted it already."""
    return {
        "rule": "waitlist",
        "allocated_at": now.isoformat(),
        "entitlement": registration.entitlement.code if registration.entitlement else None,
        "priority": registration.priority,
        "category": registration.category,
        "joined_at": registration.joined_at.isoformat(),
        "queue_position": position if position is not None else waitlist_position(registration=registration),
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
        "rules": [rule.name for rule in rules.RULES],
    }


def _book_from_waitlist(
    registration: Registration,
    slot: Slot,
    now: dt.datetime,
    *,
    position: int | None = None,
    appointment_id: int | None = None,
    savepoint: bool = True,
) -> Appointment | None:
    """Book a locked slot for a locked waiting registration through the one booking writer (in a
    savepoint of its own unless the caller holds one around several)."""
    free_since = slot.updated_at  # the slot's last change made it free (the write below moves it)
    allocation = _explain(registration, now, position)
    appointment = appointment_new(
        registration=registration, slot=slot, channel=Channel.WAITLIST, now=now, allocation=allocation
    )
    appointment.pk = appointment_id if appointment_id is not None else sql.next_appointment_id()
    event = appointment_event_new(appointment, "appointment.allocated", allocation=allocation)
    try:
        with transaction.atomic(savepoint=savepoint):
            if not sql.booking_write(
                registration=registration, new=False, appointment=appointment, event=event, now=now
            ):
                raise _NotWritten
    except _NotWritten:
        return None
    waitlist_allocation_observed(free_since=free_since, now=now)
    return appointment


class _NotWritten(Exception):
    """The booking write found a conflict: its savepoint is rolled back."""


def _choose(
    slot: Slot,
    now: dt.datetime,
    *,
    first: list[sql.Candidate] | None = None,
    first_limit: int = BATCH,
    taken: frozenset[int] | set[int] = frozenset(),
) -> Registration | None:
    """The first matching waiting registration, in queue order, whom the booking rules allow on the
    slot's date (locked), or None. `first`: the slot's first candidates, already fetched (and locked)
    for a batch, at most `first_limit` of them; `taken`: registrations booked earlier in the same batch
    (no longer waiting, so passed over)."""
    judged: list[int] = []
    batch, asked = first, first_limit
    while len(judged) < SCAN_LIMIT:
        if batch is None:
            batch = sql.waitlist_candidates(slot=slot, now=now, skip=[*judged, *taken], limit=BATCH)
            asked = BATCH
        fetched = len(batch)
        for candidate in batch:
            if candidate.registration_id in taken or len(judged) >= SCAN_LIMIT:
                continue
            judged.append(candidate.registration_id)
            person = facts_for(
                patient=candidate.patient,
                slot=slot,
                last_screening=candidate.last_screening,
                referral=None,
                referral_known=False,
            )
            if not rules.allows(person):
                continue
            # Locked by the candidates' statement, read with its e-referral and entitlement.
            registration = candidate.registration
            full = facts_for(
                patient=candidate.patient,
                slot=slot,
                last_screening=candidate.last_screening,
                referral=registration.referral,
            )
            if rules.allows(full):
                return registration
        if fetched < asked:
            break
        batch = None
    return None


def _allocate_locked_slot(slot: Slot, now: dt.datetime) -> Appointment | None:
    """Offer a locked free slot to the first matching patient in queue order whom the booking rules
    allow on the slot's date."""
    registration = _choose(slot, now)
    return _book_from_waitlist(registration, slot, now) if registration is not None else None


def _lock_free_slots(slot_ids: list[int], now: dt.datetime) -> dict[int, Slot]:
    return {
        slot.pk: slot
        for slot in Slot.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("service", "facility")
        .filter(pk__in=slot_ids, status=Slot.Status.FREE, kind=Slot.Kind.FIRST, start__gt=now)
    }


def waitlist_allocate_slot(*, slot_id: int, now: dt.datetime | None = None) -> Appointment | None:
    """Offer a free slot to the first matching patient in queue order whom the booking rules allow on
    the slot's date, and book it for them."""
    now = now_or(now)
    with transaction.atomic():
        slot = _lock_free_slots([slot_id], now).get(slot_id)
        if slot is None:
            return None
        return _allocate_locked_slot(slot, now)


def _queue_key(registration: Registration) -> tuple[int, int, dt.datetime, int]:
    """The queue order (`sql.QUEUE_ORDER`) as a sort key: entitlement priority, urgent, time, id."""
    return (-registration.priority, -int(registration.urgent), registration.joined_at, registration.pk)


def _positions(picks: list[tuple[int, Registration]]) -> list[int]:
    """Each pick's place in its queue at the moment it is booked, had the picks been booked one after
    the other (`selectors.waitlist_position`, as one by one): counted once for all (they are all
    waiting now), less the picks booked before it that were ahead of it in the same queue."""
    counted = sql.waitlist_positions(registration_ids=[r.pk for _, r in picks])
    positions = []
    for k, (_, registration) in enumerate(picks):
        key = _queue_key(registration)
        ahead = sum(
            1
            for _, earlier in picks[:k]
            if earlier.service_id == registration.service_id and _queue_key(earlier) < key
        )
        positions.append(counted[registration.pk] - ahead)
    return positions


def _allocate_chunk(slot_ids: list[int], now: dt.datetime) -> dict[int, Appointment | None]:
    """Allocate freed slots in the order given, inside the caller's transaction, with the result of
    offering them one by one: one statement locks the slots, one fetches (and locks) every slot's first
    candidates with their registrations; each slot's patient is chosen as `waitlist_allocate_slot`
    chooses (a patient chosen for an earlier slot is passed over for the later ones, as they would be
    once no longer booked); then one statement counts the chosen patients' queue places, one draws the
    appointment ids, and the bookings are written one statement each under one savepoint. Should a
    write find a conflict (the slot chosen for a patient no longer bookable), the chunk's writes are
    undone and written again one savepoint each, choosing again after the one that failed, as one by
    one would. Only the slots locked here (free, first-time, ahead) are in the result."""
    slots = _lock_free_slots(slot_ids, now)
    order = [slot_id for slot_id in dict.fromkeys(slot_ids) if slot_id in slots]
    earlier: collections.Counter[int] = collections.Counter()
    limits = {}
    for slot_id in order:  # the k-th slot of a service may find its first k-1 candidates taken
        service_id = slots[slot_id].service_id
        limits[slot_id] = min(FIRST + earlier[service_id], BATCH)
        earlier[service_id] += 1
    first = sql.waitlist_candidates_for_slots(
        slots=[slots[slot_id] for slot_id in order], now=now, limits=[limits[s] for s in order]
    )
    allocated: dict[int, Appointment | None] = {}
    taken: set[int] = set()
    remaining, together = order, True
    while remaining:
        chosen: dict[int, Registration | None] = {}
        picked = set(taken)
        for slot_id in remaining:
            registration = _choose(
                slots[slot_id], now, first=first[slot_id], first_limit=limits[slot_id], taken=picked
            )
            chosen[slot_id] = registration
            if registration is not None:
                picked.add(registration.pk)
        picks = [(slot_id, r) for slot_id, r in chosen.items() if r is not None]
        places = dict(zip([slot_id for slot_id, _ in picks], _positions(picks), strict=True))
        ids = iter(sql.next_appointment_ids(len(picks)))
        written: dict[int, Appointment | None] = {}
        failed: int | None = None
        try:
            with transaction.atomic(savepoint=together):
                for slot_id in remaining:
                    registration = chosen[slot_id]
                    if registration is None:
                        written[slot_id] = None
                        continue
                    appointment = _book_from_waitlist(
                        registration,
                        slots[slot_id],
                        now,
                        position=places[slot_id],
                        appointment_id=next(ids),
                        savepoint=not together,
                    )
                    written[slot_id] = appointment
                    if appointment is None:
                        if together:
                            raise _NotWritten
                        failed = slot_id
                        break
        except _NotWritten:
            together = False  # again, one savepoint per booking
            continue
        allocated.update(written)
        taken |= {a.registration_id for a in written.values() if a is not None}
        if failed is None:
            break
        # After a failed write, the later slots are chosen again without it (as one by one).
        remaining = remaining[remaining.index(failed) + 1 :]
        first = {slot_id: first[slot_id] for slot_id in remaining}
    return allocated


def waitlist_allocate_slots(
    *, slot_ids: list[int], now: dt.datetime | None = None, chunk: int = SLOTS_PER_TRANSACTION
) -> dict[int, Appointment | None]:
    """`waitlist_allocate_slot` for many freed slots, in the order given, with the same result as
    offering them one by one: the same queue order, rules and explanation, `chunk` slots per
    transaction (`_allocate_chunk`). Slots locked elsewhere (SKIP LOCKED) or no longer free get None."""
    now = now_or(now)
    allocated: dict[int, Appointment | None] = {}
    for i in range(0, len(slot_ids), chunk):
        part = slot_ids[i : i + chunk]
        with transaction.atomic():
            allocated.update(_allocate_chunk(part, now))
        for slot_id in part:
            allocated.setdefault(slot_id, None)
    return allocated


# --- the queue of freed slots ------------------------------------------------------------------------


def waitlist_queue_freed(*, slot_ids: list[int], now: dt.datetime | None = None) -> None:
    """Queue slots that went back to the pool for the waiting list, in the caller's transaction (one
    INSERT; a slot already queued keeps its place). `waitlist_drain` offers them in batches."""
    now = now_or(now)
    FreedSlot.objects.bulk_create(
        [FreedSlot(slot_id=slot_id, freed_at=now) for slot_id in dict.fromkeys(slot_ids)],
        ignore_conflicts=True,
    )


def waitlist_drain(
    *, limit: int = DRAIN_LIMIT, chunk: int = SLOTS_PER_TRANSACTION, now: dt.datetime | None = None
) -> int:
    """Offer up to `limit` queued freed slots to the waiting list, oldest first, `chunk` per
    transaction; returns how many were taken off the queue.

    Each transaction takes the drain lock (`sql.waitlist_drain_lock`: two workers take turns chunk by
    chunk, so the result is a single worker's), claims its rows (FOR UPDATE SKIP LOCKED) and deletes
    them before allocating them (`_allocate_chunk`: the same order, rules and explanation as one slot
    at a time); if the worker dies, the rollback puts them back. A slot another transaction holds
    locked while still free (a booking under way) goes back on the queue with its time."""
    drained = 0
    while drained < limit:
        with transaction.atomic():
            sql.waitlist_drain_lock()
            claimed = dict(
                FreedSlot.objects.select_for_update(skip_locked=True)
                .order_by("freed_at", "slot_id")
                .values_list("slot_id", "freed_at")[: min(chunk, limit - drained)]
            )
            if not claimed:
                break
            FreedSlot.objects.filter(slot_id__in=list(claimed)).delete()
            at = now_or(now)
            allocated = _allocate_chunk(list(claimed), at)
            busy = Slot.objects.filter(
                pk__in=[slot_id for slot_id in claimed if slot_id not in allocated],
                status=Slot.Status.FREE,
                kind=Slot.Kind.FIRST,
                start__gt=at,
            ).values_list("pk", flat=True)
            FreedSlot.objects.bulk_create([FreedSlot(slot_id=pk, freed_at=claimed[pk]) for pk in busy])
        drained += len(claimed)
        if len(claimed) < chunk:
            break
    return drained


def allocate_for_registration(
    registration: Registration,
    now: dt.datetime,
    *,
    default_voivodeship_id: str | None = None,
    exclude_slot: int | None = None,
) -> Appointment | None:
    """Book the earliest free slot matching a (locked, waiting) registration that the booking rules
    allow on that slot's date, if there is one."""
    registration = lock_registration(registration.pk)
    patient = Patient.objects.get(pk=registration.patient_id)
    last = sql.last_screening(patient_id=patient.pk, service_id=registration.service_id)
    allowed_from = rules.next_screening_day(patient, registration.service, last)
    judged: list[int] = [exclude_slot] if exclude_slot else []
    while len(judged) < SCAN_LIMIT:
        ids = sql.waitlist_slots(
            registration_id=registration.pk,
            now=now,
            not_before=day_start(allowed_from) if allowed_from else None,
            default_voivodeship_id=default_voivodeship_id,
            exclude=judged,
            limit=BATCH,
        )
        slots = Slot.objects.select_related("service", "facility").in_bulk(ids)
        for slot_id in ids:
            judged.append(slot_id)
            slot = slots[slot_id]
            facts = facts_for(patient=patient, slot=slot, last_screening=last, referral=registration.referral)
            if rules.allows(facts):
                return _book_from_waitlist(registration, slot, now)
        if len(ids) < BATCH:
            break
    return None


def waitlist_allocate_registration(
    *, registration_id: int, now: dt.datetime | None = None
) -> Appointment | None:
    now = now_or(now)
    with transaction.atomic():
        registration = (
            Registration.objects.select_for_update(skip_locked=True)
            .filter(pk=registration_id, status=Registration.Status.WAITING)
            .first()
        )
        if registration is None:
            return None
        return allocate_for_registration(registration, now)


def waitlist_sweep(*, service: Service, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Keep searching: give each waiting patient, in queue order, the earliest matching free slot.

    Runs after new slots are published and periodically (slots enter the look-ahead window every day).
    Each patient is one short transaction, so a sweep never blocks bookings for long.
    """
    now = now_or(now)
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
    place (the entry keeps holding the e-referral), that slot is never offered to them again, and it
    moves on to the next patient."""
    now = now_or(now)
    with transaction.atomic():
        appointment = lock_appointment(appointment)
        require_live(appointment, RELEASED)
        if appointment.channel != Channel.WAITLIST:
            raise DomainError(
                "booking_state",
                action=RELEASED,
                state=localised(str(Channel(appointment.channel).label), appointment.channel),
            )
        appointment_end(
            appointment, status=Status.RELEASED, reason=reason_code("ALLOCATION_DECLINED"), now=now
        )
        registration = lock_registration(appointment.registration_id)
        registration.status = Registration.Status.WAITING
        registration.declined_slot_ids = [*registration.declined_slot_ids, appointment.slot_id]
        registration.save(update_fields=["status", "declined_slot_ids", "updated_at"])
        free_slot(appointment.slot_id, now, start=appointment.start)
        appointment_event(appointment, "appointment.released", reason="declined_by_patient")
        return registration
