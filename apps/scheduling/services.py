"""Writes to the national schedule: schedules, weekly templates, slot generation and publication.

Times: templates are Europe/Warsaw wall-clock times; every slot is stored as a UTC instant computed
for its own day, so the DST switch (last Sunday of March and October) neither loses, doubles nor
shifts a slot. A session is laid out in real elapsed minutes between its local start and end
instants: on the night of a switch an overnight session is an hour shorter or longer, and no slot
ever starts at a wall-clock time that does not exist.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.catalog.models import Facility, Holiday, Service
from apps.catalog.selectors import contract_active
from apps.core import after_commit
from apps.core.errors import DomainError, localised
from apps.outbox.services import event_record

from .models import Practitioner, Schedule, ScheduleException, Slot, WeeklyTemplate

WARSAW = ZoneInfo("Europe/Warsaw")
DEFAULT_GENERATION_DAYS = 90


def local_instant(day: dt.date, at: dt.time) -> dt.datetime:
    """A Warsaw wall-clock time on a day as an aware datetime (fold=0: the first of a repeated hour)."""
    return dt.datetime.combine(day, at).replace(tzinfo=WARSAW)


def session_starts(
    day: dt.date, start: dt.time, end: dt.time, minutes: int
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Slots of `minutes` real minutes from the local start to the local end of one session, in UTC."""
    begin = local_instant(day, start).astimezone(dt.UTC)
    finish = local_instant(day, end).astimezone(dt.UTC)
    step = dt.timedelta(minutes=minutes)
    slots = []
    cursor = begin
    while cursor + step <= finish:
        slots.append((cursor, cursor + step))
        cursor += step
    return slots


def _event(
    schedule: Schedule, type: str, payload: dict[str, Any], aggregate: str = "schedule", agg_id: int = 0
) -> None:
    event_record(
        type=type,
        aggregate_type=aggregate,
        aggregate_id=agg_id or schedule.pk,
        facility_id=schedule.facility_id,
        payload={"schedule_id": schedule.pk, "service": schedule.service.code, **payload},
    )


def _after_new_free_slots(service_id: int) -> None:
    """Freshly published slots are offered to the central waiting list first (after commit).
    One sweep per service is queued at a time: publishing 200 schedules queues one, not 200."""
    after_commit.later(after_commit.SLOTS_PUBLISHED, service_id)


def _external_id_taken(*, facility_id: int, external_id: str) -> DomainError:
    """A re-run of a publication script names the schedule it already made (the id to use instead)."""
    existing = (
        Schedule.objects.filter(facility_id=facility_id, external_id=external_id)
        .values_list("pk", flat=True)
        .first()
    )
    return DomainError("external_id_taken", field="external_id", external_id=external_id, existing=existing)


@transaction.atomic
def schedule_create(
    *,
    facility: Facility,
    service: Service,
    place: str = "",
    practitioner: Practitioner | None = None,
    external_id: str = "",
    today: dt.date | None = None,
) -> Schedule:
    today = today or timezone.localdate()
    if not contract_active(facility_id=facility.pk, service_id=service.pk, on=today):
        raise DomainError("facility_not_contracted")
    if practitioner is not None and practitioner.facility_id != facility.pk:
        raise DomainError("not_found", field="practitioner")
    try:
        with transaction.atomic():
            schedule = Schedule.objects.create(
                facility=facility,
                service=service,
                place=place,
                practitioner=practitioner,
                external_id=external_id,
            )
    except IntegrityError:
        raise _external_id_taken(facility_id=facility.pk, external_id=external_id) from None
    _event(schedule, "schedule.created", {"place": place})
    return schedule


@transaction.atomic
def template_set(*, schedule: Schedule, templates: Sequence[dict[str, Any]]) -> list[WeeklyTemplate]:
    """Replace the weekly templates. Slots already generated stay; new ones follow the new rules."""
    Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
    rows = [
        WeeklyTemplate(
            schedule=schedule,
            weekday=t["weekday"],
            start_time=t["start_time"],
            end_time=t["end_time"],
            slot_minutes=t.get("slot_minutes") or schedule.service.slot_minutes,
            valid_from=t["valid_from"],
            valid_to=t.get("valid_to"),
            kind=t.get("kind", "first"),
        )
        for t in templates
    ]
    for row in rows:
        row.full_clean(exclude=["schedule"])
        if row.end_time <= row.start_time:
            raise DomainError("validation_error", field="end_time")
        if row.slot_minutes > schedule.service.max_slot_minutes:
            raise DomainError(
                "slot_too_long", field="slot_minutes", minutes=schedule.service.max_slot_minutes
            )
    schedule.templates.all().delete()
    WeeklyTemplate.objects.bulk_create(rows)
    Schedule.objects.filter(pk=schedule.pk).update(version=schedule.version + 1)
    schedule.version += 1
    _event(schedule, "schedule.templates_changed", {"templates": len(rows)})
    return rows


def _template_slots(schedule: Schedule, first: dt.date, last: dt.date) -> Iterable[Slot]:
    templates = list(schedule.templates.all())
    closed = set(
        ScheduleException.objects.filter(schedule=schedule, date__range=(first, last)).values_list(
            "date", flat=True
        )
    )
    closed |= set(Holiday.objects.filter(date__range=(first, last)).values_list("date", flat=True))
    facility = schedule.facility
    day = first
    while day <= last:
        if day not in closed:
            for t in templates:
                if t.weekday != day.weekday() or day < t.valid_from or (t.valid_to and day > t.valid_to):
                    continue
                for start, end in session_starts(day, t.start_time, t.end_time, t.slot_minutes):
                    yield Slot(
                        schedule=schedule,
                        facility=facility,
                        service_id=schedule.service_id,
                        practitioner_id=schedule.practitioner_id,
                        voivodeship_id=facility.voivodeship_id,
                        locality_id=facility.locality_id,
                        lat=facility.lat,
                        lon=facility.lon,
                        start=start,
                        end=end,
                        kind=t.kind,
                        from_template=True,
                    )
        day += dt.timedelta(days=1)


def _not_overlapping(schedule: Schedule, candidates: list[Slot]) -> list[Slot]:
    """The template slots that overlap no live slot of the schedule. ON CONFLICT DO NOTHING skips the
    others within a month partition, but an overlap across a month boundary is refused by the slot
    table's trigger (apps/scheduling/partitions.py), which would fail the whole generation; so they
    are left out here (the schedule row is locked: no slot of it appears meanwhile)."""
    if not candidates:
        return []
    live = sorted(
        Slot.objects.filter(schedule=schedule, start__lt=max(c.end for c in candidates))
        .filter(end__gt=min(c.start for c in candidates))
        .exclude(status=Slot.Status.CANCELLED)
        .values_list("start", "end")
    )
    starts = [start for start, _end in live]
    kept = []
    for slot in candidates:
        # Live slots never overlap each other, so only the last one starting before this slot's end
        # can reach into it.
        # A slot already generated (same start) is left out too: the trigger runs before the unique
        # constraint's ON CONFLICT, and a re-run would otherwise fail on the 1st of a month.
        i = bisect.bisect_left(starts, slot.end) - 1
        if i < 0 or live[i][1] <= slot.start:
            kept.append(slot)
    return kept


@transaction.atomic
def schedule_generate_slots(
    *, schedule: Schedule, until: dt.date | None = None, today: dt.date | None = None
) -> int:
    """Create the template slots from today until `until` (default: 90 days or the service's horizon).

    Idempotent: a slot that exists (same schedule and start) is left alone, so running it daily only
    adds the new days at the end of the horizon. Returns the number of slots created.
    """
    schedule = Schedule.objects.select_for_update().select_related("facility", "service").get(pk=schedule.pk)
    today = today or timezone.localdate()
    until = until or today + dt.timedelta(
        days=max(DEFAULT_GENERATION_DAYS, schedule.service.min_horizon_days)
    )
    now = timezone.now()
    candidates = _not_overlapping(
        schedule, [s for s in _template_slots(schedule, today, until) if s.start > now]
    )
    before = Slot.objects.filter(schedule=schedule).count()
    # ON CONFLICT DO NOTHING: existing slots (unique start) and overlaps with hand-published slots
    # (exclusion constraint) are skipped rather than failing the whole generation.
    Slot.objects.bulk_create(candidates, batch_size=2000, ignore_conflicts=True)
    created = Slot.objects.filter(schedule=schedule).count() - before
    Schedule.objects.filter(pk=schedule.pk).update(generated_until=until)
    if created:
        _event(schedule, "slots.published", {"count": created, "until": until.isoformat()})
        _after_new_free_slots(schedule.service_id)
    return created


@transaction.atomic
def slots_publish(
    *,
    schedule: Schedule,
    slots: Sequence[tuple[dt.datetime, dt.datetime, str]],
    now: dt.datetime | None = None,
) -> int:
    """Publish explicit slots (start, end, kind). All or nothing.

    Refused: a slot in the past, end not after start, an overlap with another slot of the batch or
    of the schedule. A slot identical to an existing one (same start and end) is skipped, so a
    retried publication is harmless. Returns the number created.
    """
    now = now or timezone.now()
    schedule = Schedule.objects.select_for_update().select_related("facility", "service").get(pk=schedule.pk)
    ordered = sorted(slots, key=lambda s: s[0])
    service = schedule.service
    latest_start = now + dt.timedelta(days=service.publish_horizon_days)
    longest = dt.timedelta(minutes=service.max_slot_minutes)
    for start, end, _kind in ordered:
        if end <= start:
            raise DomainError("validation_error", field="end")
        if start <= now:
            raise DomainError("slot_in_past")
        if start > latest_start:
            raise DomainError("slot_beyond_horizon", field="slots", days=service.publish_horizon_days)
        if end - start > longest:
            raise DomainError("slot_too_long", field="slots", minutes=service.max_slot_minutes)
    if not ordered:
        return 0
    existing = {
        (s, e)
        for s, e in Slot.objects.filter(schedule=schedule, start__lt=ordered[-1][1], end__gt=ordered[0][0])
        .exclude(status=Slot.Status.CANCELLED)
        .values_list("start", "end")
    }
    fresh = [s for s in ordered if (s[0], s[1]) not in existing]
    intervals = sorted([*existing, *((s, e) for s, e, _ in fresh)])
    for (_s1, e1), (s2, _e2) in itertools.pairwise(intervals):
        if s2 < e1:
            raise DomainError("schedule_overlap", field="slots")
    facility = schedule.facility
    rows = [
        Slot(
            schedule=schedule,
            facility=facility,
            service_id=schedule.service_id,
            practitioner_id=schedule.practitioner_id,
            voivodeship_id=facility.voivodeship_id,
            locality_id=facility.locality_id,
            lat=facility.lat,
            lon=facility.lon,
            start=start,
            end=end,
            kind=kind or Slot.Kind.FIRST,
        )
        for start, end, kind in fresh
    ]
    try:
        with transaction.atomic():
            Slot.objects.bulk_create(rows, batch_size=5000)
    except IntegrityError:
        # A concurrent publication won the race for the same time (exclusion constraint).
        raise DomainError("schedule_overlap", field="slots") from None
    if rows:
        _event(schedule, "slots.published", {"count": len(rows), "from": rows[0].start.isoformat()})
        _after_new_free_slots(schedule.service_id)
    return len(rows)


@transaction.atomic
def slot_block(*, slot: Slot, reason: str = "") -> Slot:
    """Take a free (or held) slot out of the pool. A booked slot must be cancelled first."""
    updated = Slot.objects.filter(pk=slot.pk, status__in=[Slot.Status.FREE, Slot.Status.HELD]).update(
        status=Slot.Status.BLOCKED, hold_until=None, held_by=None, updated_at=timezone.now()
    )
    slot.refresh_from_db()
    if not updated and slot.status != Slot.Status.BLOCKED:
        raise DomainError("slot_not_free")
    if updated:
        event_record(
            type="slot.blocked",
            aggregate_type="slot",
            aggregate_id=slot.pk,
            facility_id=slot.facility_id,
            payload={"slot_id": slot.pk, "start": slot.start.isoformat(), "reason": reason},
        )
    return slot


@transaction.atomic
def slot_unblock(*, slot: Slot) -> Slot:
    updated = Slot.objects.filter(pk=slot.pk, status=Slot.Status.BLOCKED).update(
        status=Slot.Status.FREE, updated_at=timezone.now()
    )
    slot.refresh_from_db()
    if not updated and slot.status != Slot.Status.FREE:
        raise DomainError(
            "booking_state",
            action=localised("odblokowany", "unblocked"),
            state=localised(str(Slot.Status(slot.status).label), slot.status),
        )
    if updated:
        event_record(
            type="slot.unblocked",
            aggregate_type="slot",
            aggregate_id=slot.pk,
            facility_id=slot.facility_id,
            payload={"slot_id": slot.pk, "start": slot.start.isoformat()},
        )
        after_commit.record(after_commit.SLOT_FREED, slot.pk)
    return slot


# --- schedule attributes (optimistic concurrency) ----------------------------------------------------


@transaction.atomic
def schedule_update(*, schedule_id: int, expected_version: int, changes: dict) -> Schedule:
    """Change place / external id / active of a schedule if nobody changed it since `expected_version`.

    The conditional UPDATE ... WHERE version = expected is the lock: of two systems of one facility
    editing the same schedule, the second gets 412 instead of silently overwriting the first.
    """
    allowed = {k: v for k, v in changes.items() if k in ("place", "external_id", "active")}
    try:
        with transaction.atomic():
            updated = Schedule.objects.filter(pk=schedule_id, version=expected_version).update(
                **allowed, version=F("version") + 1, updated_at=timezone.now()
            )
    except IntegrityError:
        facility_id = Schedule.objects.values_list("facility_id", flat=True).get(pk=schedule_id)
        raise _external_id_taken(facility_id=facility_id, external_id=allowed["external_id"]) from None
    if not updated:
        raise DomainError("precondition_failed")
    schedule = Schedule.objects.select_related("service").get(pk=schedule_id)
    event_record(
        type="schedule.updated",
        aggregate_type="schedule",
        aggregate_id=schedule.pk,
        facility_id=schedule.facility_id,
        payload={"schedule_id": schedule.pk, "service": schedule.service.code, "changes": sorted(allowed)},
    )
    return schedule
