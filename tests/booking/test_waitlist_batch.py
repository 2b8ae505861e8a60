"""Allocation of many freed slots in batches (issue 19): `waitlist_allocate_slots` gives the same
result as offering the slots one by one with `waitlist_allocate_slot`: the same patient for each slot,
in the same queue order, judged by the same rules, with the same explanation."""

import datetime as dt

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.booking import services
from apps.booking.models import Appointment, FreedSlot
from apps.booking.services import waitlist
from apps.scheduling.models import Slot
from tests.factories import (
    AppointmentFactory,
    EntitlementFactory,
    PatientEntitlementFactory,
    PatientFactory,
    ReferralFactory,
)

from .conftest import in_days


def join(patient, service, category="stable", **prefs):
    referral = ReferralFactory(patient=patient, service=service, category=category)
    return services.waitlist_join(
        patient=patient,
        service=service,
        referral_number=referral.number,
        referral_code=referral.access_code,
        **prefs,
    )


def _outcome(allocated: dict[int, Appointment | None]) -> dict[int, tuple[int, dict] | None]:
    return {
        slot_id: (a.registration_id, a.allocation) if a is not None else None
        for slot_id, a in allocated.items()
    }


@pytest.fixture
def queue(make_slot, cardiology, facility_a):
    """14 slots over three weeks and 18 waiting patients with different places in the queue and
    preferences (some match only late slots, some only this facility), more than there are slots."""
    today = timezone.localdate()
    slots = [
        make_slot(
            start=in_days(2 + i, hour=9 + i % 5),
            end=in_days(2 + i, hour=9 + i % 5) + dt.timedelta(minutes=20),
        )
        for i in range(14)
    ]
    for i in range(18):
        prefs = {}
        if i % 4 == 1:
            prefs["date_from"] = today + dt.timedelta(days=9)  # only the later slots
        if i % 5 == 2:
            prefs["facility"] = facility_a
        patient = PatientFactory()
        if i % 7 == 3:
            PatientEntitlementFactory(patient=patient, entitlement=EntitlementFactory())
        join(patient, cardiology, category="urgent" if i % 3 == 0 else "stable", **prefs)
    return [s.pk for s in slots]


@pytest.mark.parametrize("first", [1, 3])
@pytest.mark.parametrize("chunk", [1, 5, 50])
def test_a_batch_allocates_as_one_by_one_would(queue, monkeypatch, chunk, first):
    monkeypatch.setattr(waitlist, "BATCH", 3)  # candidate lists run out and are fetched again
    monkeypatch.setattr(waitlist, "FIRST", first)  # a batch's first lists too, taken by earlier slots
    now = timezone.now()
    order = queue[::2] + queue[1::2]  # not in date order: the order given is the order served
    with transaction.atomic():
        one_by_one = _outcome({s: services.waitlist_allocate_slot(slot_id=s, now=now) for s in order})
        transaction.set_rollback(True)
    assert Appointment.objects.count() == 0

    batched = _outcome(services.waitlist_allocate_slots(slot_ids=order, now=now, chunk=chunk))

    assert batched == one_by_one
    given = [outcome[0] for outcome in batched.values() if outcome]
    assert len(given) == len(set(given)) == 14  # every slot found a patient, nobody got two
    assert Appointment.objects.filter(channel="waitlist").count() == 14


def test_a_slot_no_longer_free_or_not_asked_for_is_left_alone(queue):
    first, second = queue[:2]
    services.waitlist_allocate_slot(slot_id=first)
    allocated = services.waitlist_allocate_slots(slot_ids=[first, second, first])
    assert allocated[first] is None
    assert allocated[second] is not None
    assert Appointment.objects.filter(slot_id__in=queue[2:]).count() == 0


def _booked(slot_ids: list[int]) -> dict[int, tuple[int, dict] | None]:
    found = {
        a.slot_id: (a.registration_id, a.allocation) for a in Appointment.objects.filter(channel="waitlist")
    }
    return {slot_id: found.get(slot_id) for slot_id in slot_ids}


def test_the_drain_offers_queued_slots_in_the_order_freed_as_one_by_one_would(queue, monkeypatch):
    monkeypatch.setattr(waitlist, "BATCH", 3)
    now = timezone.now()
    order = queue[1::2] + queue[::2]
    with transaction.atomic():
        one_by_one = _outcome({s: services.waitlist_allocate_slot(slot_id=s, now=now) for s in order})
        transaction.set_rollback(True)
    for i, slot_id in enumerate(order):  # freed one after the other, not in id order
        services.waitlist_queue_freed(slot_ids=[slot_id], now=now - dt.timedelta(seconds=len(order) - i))

    assert services.waitlist_drain(chunk=4, now=now) == 14

    assert _booked(order) == one_by_one
    assert not FreedSlot.objects.exists()


def test_a_drain_that_dies_after_its_claim_leaves_the_slots_queued(queue, monkeypatch):
    services.waitlist_queue_freed(slot_ids=queue)

    def dies(slot_ids, now):
        raise RuntimeError("worker lost")

    with monkeypatch.context() as patched:
        patched.setattr(waitlist, "_allocate_chunk", dies)
        with pytest.raises(RuntimeError):
            services.waitlist_drain(chunk=5)
    assert set(FreedSlot.objects.values_list("slot_id", flat=True)) == set(queue)
    assert not Appointment.objects.exists()

    assert services.waitlist_drain(chunk=5) == 14
    assert Appointment.objects.filter(channel="waitlist").count() == 14


def test_the_drain_stops_at_its_limit_and_drops_slots_no_longer_free(queue):
    services.waitlist_allocate_slot(slot_id=queue[0])  # booked meanwhile: not offered again
    services.waitlist_queue_freed(slot_ids=queue)
    assert services.waitlist_drain(limit=6, chunk=4) == 6
    assert FreedSlot.objects.count() == 8
    assert services.waitlist_drain() == 8
    assert not FreedSlot.objects.exists()
    assert Appointment.objects.filter(channel="waitlist").count() == 14


def test_a_write_that_finds_a_conflict_mid_batch_gives_what_one_by_one_gives(queue):
    """A slot whose booking cannot be written (here: a live appointment left on a slot marked free, as
    a repair by hand could leave it) gets nobody, and the batch goes on as one by one would: the
    chunk's writes are undone and written again one savepoint each, the later slots chosen again."""
    stuck = queue[5]
    AppointmentFactory(slot_id=stuck, slot=Slot.objects.get(pk=stuck))
    Slot.objects.filter(pk=stuck).update(status="free")
    now = timezone.now()
    with transaction.atomic():
        one_by_one = _outcome({s: services.waitlist_allocate_slot(slot_id=s, now=now) for s in queue})
        transaction.set_rollback(True)
    assert one_by_one[stuck] is None

    batched = _outcome(services.waitlist_allocate_slots(slot_ids=queue, now=now, chunk=50))

    assert batched == one_by_one
    assert Appointment.objects.filter(channel="waitlist").count() == 13


def test_a_drained_batch_costs_one_statement_per_booking_plus_a_few_per_chunk(queue):
    """Per chunk: the drain lock, the claim, its deletion, the slots' locks, every slot's candidates
    with their registrations, the queue places of the chosen, their appointment ids, a savepoint and
    the check for slots put back; per slot booked: one write. (One by one it was six per booking: the
    registration read, its queue place, an id, a savepoint, the write, its release.)"""
    services.waitlist_queue_freed(slot_ids=queue)
    with CaptureQueriesContext(connection) as queries:
        assert services.waitlist_drain(chunk=50) == 14
    assert Appointment.objects.filter(channel="waitlist").count() == 14
    assert len(queries) <= 14 + 12, [q["sql"] for q in queries]


@pytest.mark.parametrize("path", ["one", "batch", "drain"])
def test_a_slot_reaches_the_first_eligible_entry_past_more_ineligible_ones_than_it_judges(path, monkeypatch):
    """A screening queue may hold many entries the rules refuse on a slot's date (screened since they
    joined, aged out at New Year, joined under an older catalogue): the candidates' statements pass over
    them by sex, age and interval,
    so the slot is not given up after `SCAN_LIMIT` judged candidates while an eligible patient waits
    behind them. Every allocation path."""
    from apps.booking.models import Registration
    from apps.patients.models import ScreeningRecord
    from tests.factories import RegistrationFactory, ServiceFactory, SlotFactory

    monkeypatch.setattr(waitlist, "BATCH", 3)
    monkeypatch.setattr(waitlist, "SCAN_LIMIT", 6)
    mammography = ServiceFactory(mammography=True)
    slot = SlotFactory(schedule__service=mammography)
    early = timezone.now() - dt.timedelta(days=30)
    for i in range(16):  # ahead in the queue: men, women too old or too young, women screened lately
        if i < 8:
            patient = PatientFactory(
                sex="M" if i % 2 else "F",
                birth_date=dt.date(1940, 1, 1) if i % 4 == 0 else dt.date(2000, 1, 1),
            )
        else:
            patient = PatientFactory(sex="F", birth_date=dt.date(1970, 5, 17))
            screened = timezone.localdate() - dt.timedelta(days=90)
            ScreeningRecord.objects.create(patient=patient, service=mammography, performed_on=screened)
        RegistrationFactory(
            patient=patient, service=mammography, status="waiting", joined_at=early + dt.timedelta(hours=i)
        )
    woman = RegistrationFactory(
        patient=PatientFactory(sex="F", birth_date=dt.date(1970, 5, 17)),
        service=mammography,
        status="waiting",
        joined_at=early + dt.timedelta(days=1),
    )
    if path == "one":
        services.waitlist_allocate_slot(slot_id=slot.pk)
    elif path == "batch":
        services.waitlist_allocate_slots(slot_ids=[slot.pk])
    else:
        services.waitlist_queue_freed(slot_ids=[slot.pk])
        services.waitlist_drain()
    booked = Appointment.objects.get(slot=slot)
    assert booked.registration_id == woman.pk
    assert Registration.objects.filter(service=mammography, status="waiting").count() == 16
