"""Races settled by PostgreSQL: real threads, each with its own connection, on real tables."""

import threading

import pytest
from django.db import close_old_connections, connection

from apps.booking import services
from apps.booking.models import Appointment, Registration
from apps.core.errors import DomainError
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    PatientFactory,
    ReferralFactory,
    ScheduleFactory,
    SlotFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


# PostgreSQL's default max_connections is 100 (CI's too), shared with the test runner itself: at most
# this many threads hold a connection at the same moment; all threads are released together.
MAX_CONNECTIONS = 40


def race(workers):
    """Start every worker at once (barrier) and collect what each returned or raised."""
    barrier = threading.Barrier(len(workers))
    connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
    results: list[object] = [None] * len(workers)

    def run(i, work):
        barrier.wait()
        with connections:
            try:
                results[i] = work()
            except Exception as exc:  # each outcome is inspected by the test
                results[i] = exc
            finally:
                connection.close()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    close_old_connections()
    return results


def test_200_patients_racing_for_50_slots_get_exactly_50_bookings(cardiology):
    facility = FacilityFactory()
    ContractFactory(facility=facility, service=cardiology)
    schedule = ScheduleFactory(facility=facility, service=cardiology)
    slots = [SlotFactory(schedule=schedule) for _ in range(50)]
    patients = [PatientFactory() for _ in range(200)]
    referrals = [ReferralFactory(patient=p, service=cardiology) for p in patients]

    def attempt(i):
        def work():
            # Four patients per slot, all at once: the slot's row lock lets exactly one through.
            return services.appointment_book(
                slot_id=slots[i % 50].pk,
                patient=patients[i],
                referral_number=referrals[i].number,
                referral_code="1234",
            )

        return work

    results = race([attempt(i) for i in range(200)])
    booked = [r for r in results if isinstance(r, Appointment)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert not [r for r in results if not isinstance(r, Appointment | DomainError)], results
    assert len(booked) == 50
    assert len(refused) == 150 and {e.code for e in refused} == {"slot_not_free"}
    assert Appointment.objects.filter(status="booked").count() == 50
    assert Appointment.objects.values("slot").distinct().count() == 50
    used = sum(1 for r in referrals if type(r).objects.get(pk=r.pk).status == "registered")
    assert used == 50  # a refused booking did not burn the patient's referral


def test_one_patient_trying_20_facilities_at_once_gets_exactly_one_booking(cardiology):
    patient = PatientFactory()
    referrals = [ReferralFactory(patient=patient, service=cardiology) for _ in range(20)]
    slots = []
    for _ in range(20):
        facility = FacilityFactory()
        ContractFactory(facility=facility, service=cardiology)
        slots.append(SlotFactory(schedule=ScheduleFactory(facility=facility, service=cardiology)))

    def attempt(i):
        return lambda: services.appointment_book(
            slot_id=slots[i].pk, patient=patient, referral_number=referrals[i].number, referral_code="1234"
        )

    results = race([attempt(i) for i in range(20)])
    booked = [r for r in results if isinstance(r, Appointment)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(booked) == 1
    assert len(refused) == 19 and {e.code for e in refused} == {"active_registration_exists"}
    assert Registration.objects.filter(patient=patient).count() == 1
    assert Appointment.objects.filter(patient=patient).count() == 1


def test_two_workers_releasing_unconfirmed_bookings_release_each_once(cardiology):
    import datetime as dt

    from django.utils import timezone

    facility = FacilityFactory()
    ContractFactory(facility=facility, service=cardiology)
    schedule = ScheduleFactory(facility=facility, service=cardiology)
    start = timezone.now() + dt.timedelta(days=5)
    for i in range(30):
        patient = PatientFactory()
        slot = SlotFactory(
            schedule=schedule,
            start=start + dt.timedelta(minutes=20 * i),
            end=start + dt.timedelta(minutes=20 * (i + 1)),
        )
        services.appointment_book(
            slot_id=slot.pk,
            patient=patient,
            referral_number=ReferralFactory(patient=patient, service=cardiology).number,
            referral_code="1234",
        )
    later = start + dt.timedelta(hours=12) - dt.timedelta(hours=48)  # every confirm_by has passed
    results = race([lambda: services.appointments_release_unconfirmed(now=later, batch=5) for _ in range(2)])
    assert sum(results) == 30  # type: ignore[arg-type]
    assert Appointment.objects.filter(status="released").count() == 30
