"""A hypothesis state machine over the booking lifecycle; the invariants are checked after every step.

Steps: hold, book, confirm, cancel (patient/facility), reschedule, outcome, release unconfirmed,
join/leave the waiting list, allocate a freed slot. Whatever the order, PostgreSQL's data must keep:
one live appointment per slot, one live registration per patient and service, a booked slot for
every live appointment, and no live appointment on a slot that is free.
"""

import contextlib
import datetime as dt

import pytest
from django.db import transaction
from django.db.models import Count
from django.test import TestCase
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from apps.booking import services
from apps.booking.models import LIVE_APPOINTMENT, Appointment, Registration
from apps.catalog.models import ReasonCode
from apps.core.errors import DomainError
from apps.scheduling.models import Slot
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    PatientFactory,
    ReasonCodeFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
)

N_SLOTS = 6
N_PATIENTS = 4


class BookingLifecycle(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.savepoint = transaction.savepoint()  # each example starts from an empty schedule
        self.service = ServiceFactory(referral_required=False)
        ReasonCodeFactory(code="DOCTOR_ILLNESS", kind=ReasonCode.Kind.FACILITY_CANCEL)
        ReasonCodeFactory(code="PATIENT_REQUEST", kind=ReasonCode.Kind.PATIENT_CANCEL)
        ReasonCodeFactory(code="UNCONFIRMED_RELEASED", kind=ReasonCode.Kind.RELEASE)
        facility = FacilityFactory()
        ContractFactory(facility=facility, service=self.service)
        schedule = ScheduleFactory(facility=facility, service=self.service)
        base = timezone.now() + dt.timedelta(days=3)
        self.slots = [
            SlotFactory(
                schedule=schedule,
                start=base + dt.timedelta(hours=i),
                end=base + dt.timedelta(hours=i, minutes=20),
            )
            for i in range(N_SLOTS)
        ]
        self.patients = [PatientFactory() for _ in range(N_PATIENTS)]

    def teardown(self):
        transaction.savepoint_rollback(self.savepoint)

    def live(self, patient):
        return Appointment.objects.filter(patient=patient, status__in=LIVE_APPOINTMENT).first()

    def attempt(self, fn, **kwargs):
        # A refusal is a legal outcome; the invariants check that nothing changed wrongly.
        with contextlib.suppress(DomainError):
            fn(**kwargs)

    @rule(p=st.integers(0, N_PATIENTS - 1), s=st.integers(0, N_SLOTS - 1))
    def hold(self, p, s):
        self.attempt(services.slot_hold, slot_id=self.slots[s].pk, patient=self.patients[p])

    @rule(p=st.integers(0, N_PATIENTS - 1), s=st.integers(0, N_SLOTS - 1))
    def book(self, p, s):
        self.attempt(services.appointment_book, slot_id=self.slots[s].pk, patient=self.patients[p])

    @rule(p=st.integers(0, N_PATIENTS - 1))
    def confirm(self, p):
        if appointment := self.live(self.patients[p]):
            self.attempt(services.appointment_confirm, appointment=appointment)

    @rule(p=st.integers(0, N_PATIENTS - 1))
    def cancel_by_patient(self, p):
        if appointment := self.live(self.patients[p]):
            self.attempt(services.appointment_cancel_by_patient, appointment=appointment)

    @rule(p=st.integers(0, N_PATIENTS - 1))
    def cancel_by_facility(self, p):
        if appointment := self.live(self.patients[p]):
            self.attempt(
                services.appointment_cancel_by_facility, appointment=appointment, reason_code="DOCTOR_ILLNESS"
            )

    @rule(p=st.integers(0, N_PATIENTS - 1), s=st.integers(0, N_SLOTS - 1))
    def reschedule(self, p, s):
        if appointment := self.live(self.patients[p]):
            self.attempt(
                services.appointment_reschedule, appointment=appointment, new_slot_id=self.slots[s].pk
            )

    @rule(p=st.integers(0, N_PATIENTS - 1), outcome=st.sampled_from(["attended", "no_show"]))
    def outcome(self, p, outcome):
        if appointment := self.live(self.patients[p]):
            after = appointment.start + dt.timedelta(minutes=30)
            self.attempt(
                services.appointment_record_outcome, appointment=appointment, outcome=outcome, now=after
            )

    @rule()
    def release_unconfirmed(self):
        services.appointments_release_unconfirmed(now=timezone.now() + dt.timedelta(days=2, hours=1))

    @rule(p=st.integers(0, N_PATIENTS - 1))
    def join_waitlist(self, p):
        self.attempt(services.waitlist_join, patient=self.patients[p], service=self.service)

    @rule(p=st.integers(0, N_PATIENTS - 1))
    def leave_waitlist(self, p):
        registration = Registration.objects.filter(patient=self.patients[p], status="waiting").first()
        if registration:
            self.attempt(services.waitlist_leave, registration=registration)

    @rule(s=st.integers(0, N_SLOTS - 1))
    def allocate(self, s):
        services.waitlist_allocate_slot(slot_id=self.slots[s].pk)

    @invariant()
    def one_live_appointment_per_slot(self):
        counts = (
            Appointment.objects.filter(status__in=LIVE_APPOINTMENT).values("slot").annotate(n=Count("id"))
        )
        assert all(row["n"] == 1 for row in counts)

    @invariant()
    def one_live_registration_per_patient(self):
        counts = (
            Registration.objects.filter(status__in=["waiting", "booked"])
            .values("patient")
            .annotate(n=Count("id"))
        )
        assert all(row["n"] == 1 for row in counts)

    @invariant()
    def live_appointments_sit_on_booked_slots_and_booked_registrations(self):
        for appointment in Appointment.objects.filter(status__in=LIVE_APPOINTMENT).select_related(
            "slot", "registration"
        ):
            assert appointment.slot.status == Slot.Status.BOOKED
            assert appointment.registration.status == Registration.Status.BOOKED

    @invariant()
    def booked_slots_have_a_live_or_attended_appointment(self):
        booked = set(Slot.objects.filter(status="booked").values_list("pk", flat=True))
        live = set(Appointment.objects.filter(status__in=LIVE_APPOINTMENT).values_list("slot_id", flat=True))
        used = set(
            Appointment.objects.filter(status__in=["attended", "no_show"]).values_list("slot_id", flat=True)
        )
        assert live <= booked <= live | used

    @invariant()
    def a_booked_registration_has_exactly_one_live_appointment(self):
        for registration in Registration.objects.filter(status="booked"):
            assert registration.appointments.filter(status__in=LIVE_APPOINTMENT).count() == 1


@pytest.mark.slow
class TestBookingLifecycle(TestCase):
    """The test's transaction holds every example; each example rolls back to its own savepoint."""

    def test_invariants_hold_whatever_the_order_of_operations(self):
        BookingLifecycle.TestCase.settings = settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        BookingLifecycle.TestCase().runTest()
