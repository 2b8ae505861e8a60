"""The queue of freed slots (issue 19): every path that frees a slot queues it in its own transaction,
a burst of cancellations asks for one drain, and two workers draining at once (real threads, each with
its own PostgreSQL connection) offer every slot exactly once, as a single worker would."""

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.booking import services, tasks
from apps.booking.models import Appointment, FreedSlot
from apps.catalog.models import ReasonCode
from apps.scheduling.models import Slot
from apps.scheduling.services import slot_block, slot_unblock
from config.celery import app
from tests.factories import PatientFactory, ReasonCodeFactory, ReferralFactory

from .conftest import in_days
from .test_concurrency import race


def book(slot, service):
    patient = PatientFactory()
    return services.appointment_book(
        slot_id=slot.pk,
        patient=patient,
        referral_number=ReferralFactory(patient=patient, service=service).number,
        referral_code="1234",
    )


def join(service, **prefs):
    patient = PatientFactory()
    referral = ReferralFactory(patient=patient, service=service)
    return services.waitlist_join(
        patient=patient,
        service=service,
        referral_number=referral.number,
        referral_code=referral.access_code,
        **prefs,
    )


def queued() -> set[int]:
    return set(FreedSlot.objects.values_list("slot_id", flat=True))


@pytest.mark.django_db
def test_every_path_that_frees_a_slot_queues_it_in_its_transaction(make_slot, cardiology):
    cancelled, moved_from, moved_to, released, held, expired, blocked = (
        make_slot(start=in_days(3 + i), end=in_days(3 + i) + dt.timedelta(minutes=20)) for i in range(7)
    )
    with transaction.atomic():
        services.appointment_cancel_by_patient(appointment=book(cancelled, cardiology))
        transaction.set_rollback(True)  # the cancellation rolled back: nothing queued
    assert queued() == set()

    services.appointment_cancel_by_patient(appointment=book(cancelled, cardiology))
    services.appointment_reschedule(appointment=book(moved_from, cardiology), new_slot_id=moved_to.pk)
    late = book(released, cardiology)
    Appointment.objects.filter(pk=late.pk).update(confirm_by=timezone.now() - dt.timedelta(minutes=1))
    services.appointments_release_unconfirmed()
    patient = PatientFactory()
    services.slot_hold(slot_id=held.pk, patient=patient)
    services.slot_release_hold(slot_id=held.pk, patient=patient)
    services.slot_hold(slot_id=expired.pk, patient=PatientFactory())
    services.holds_expire(now=timezone.now() + dt.timedelta(hours=1))
    slot_unblock(slot=slot_block(slot=blocked))
    assert queued() == {s.pk for s in (cancelled, moved_from, released, held, expired, blocked)}


@pytest.mark.django_db
def test_an_allocation_declined_queues_its_slot_again(make_slot, cardiology):
    ReasonCodeFactory(code="ALLOCATION_DECLINED", kind=ReasonCode.Kind.RELEASE)
    join(cardiology)
    appointment = services.waitlist_allocate_slot(slot_id=make_slot().pk)
    services.allocation_release(appointment=appointment)
    assert queued() == {appointment.slot_id}


@pytest.fixture
def broker():
    """Tasks go to the real Redis broker instead of running inline; the queue is emptied around."""
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")
        yield conn.default_channel
        conn.default_channel.queue_purge("celery")
    app.conf.task_always_eager = eager


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_cancellations_sends_one_drain_and_the_drain_offers_them(broker, make_slot, cardiology):
    slots = [
        make_slot(start=in_days(3, hour=8 + i), end=in_days(3, hour=8 + i) + dt.timedelta(minutes=20))
        for i in range(5)
    ]
    appointments = [book(slot, cardiology) for slot in slots]
    waiting = [join(cardiology) for _ in range(5)]
    broker.client.delete(tasks.DRAIN_PENDING_KEY)
    before = broker.client.llen("celery")  # the joins' own searches for a slot
    for appointment in appointments:
        services.appointment_cancel_by_patient(appointment=appointment)
    assert broker.client.llen("celery") == before + 1  # one message for five freed slots
    assert queued() == {s.pk for s in slots}

    assert tasks.waitlist_drain_task() == 5  # what the worker runs; it clears the mark first
    assert not FreedSlot.objects.exists()
    assert {a.registration_id for a in Appointment.objects.filter(channel="waitlist")} == {
        r.pk for r in waiting
    }
    assert tasks.waitlist_drain_request() is True  # slots freed during a drain ask for another


def _queue_for_two_workers(make_slot, cardiology, slots=24, patients=36):
    for i in range(patients):  # first: each one's own search for a slot finds none yet
        join(
            cardiology, date_from=timezone.localdate() + dt.timedelta(days=3) if i % 3 == 0 else None
        )  # 24 match
    start = in_days(2, hour=7)
    ids = [
        make_slot(
            start=start + dt.timedelta(minutes=30 * i), end=start + dt.timedelta(minutes=30 * i + 20)
        ).pk
        for i in range(slots)
    ]
    now = timezone.now()
    order = ids[1::2] + ids[::2]
    for i, slot_id in enumerate(order):
        services.waitlist_queue_freed(slot_ids=[slot_id], now=now - dt.timedelta(seconds=len(order) - i))
    return order


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_two_workers_draining_at_once_offer_every_slot_once_as_one_worker_would(make_slot, cardiology):
    order = _queue_for_two_workers(make_slot, cardiology)
    now = timezone.now()
    with transaction.atomic():
        single = {s: services.waitlist_allocate_slot(slot_id=s, now=now) for s in order}
        one_by_one = {s: a.registration_id if a else None for s, a in single.items()}
        transaction.set_rollback(True)

    drained = race([lambda: services.waitlist_drain(chunk=3, now=now) for _ in range(2)])

    assert sum(drained) == len(order)  # type: ignore[arg-type]  (each slot claimed by one worker)
    assert not FreedSlot.objects.exists()
    booked = list(Appointment.objects.filter(channel="waitlist").values_list("slot_id", "registration_id"))
    assert len({s for s, _ in booked}) == len(booked) and len({r for _, r in booked}) == len(booked)
    assert dict(booked) == {s: r for s, r in one_by_one.items() if r is not None}
    assert len(booked) == len(order)  # more waiting patients than slots: every slot found one


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_slot_locked_by_a_booking_under_way_goes_back_on_the_queue(make_slot, cardiology):
    join(cardiology)
    slot = make_slot()
    services.waitlist_queue_freed(slot_ids=[slot.pk])
    locked, release = threading.Event(), threading.Event()

    def booking_under_way():
        with transaction.atomic():
            Slot.objects.select_for_update().get(pk=slot.pk)
            locked.set()
            release.wait(timeout=30)
        connection.close()

    holder = threading.Thread(target=booking_under_way)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        assert services.waitlist_drain() == 1
        assert queued() == {slot.pk}  # passed over, not lost
    finally:
        release.set()
        holder.join(timeout=30)
    assert services.waitlist_drain() == 1
    assert Appointment.objects.get(slot=slot).channel == "waitlist"
    assert not FreedSlot.objects.exists()
