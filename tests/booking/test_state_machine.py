"""A hypothesis state machine over the booking lifecycle; the invariants are checked after every step.

Steps: hold, book, confirm, cancel (patient/facility/a whole session), reschedule, outcome, release
unconfirmed, join/leave the waiting list, allocate a freed slot or a waiting entry, decline an
allocation. Two services: a screening programme (sex, age by birth year, interval) and a first visit
that needs an e-referral. Patients include a man, a woman who turns 75 by birth year in the year of
the last slot, and women with and without referrals. Whatever the order, PostgreSQL's data must keep:
one live appointment per slot, one live registration per patient and service, a booked slot for
every live appointment, no live appointment on a free slot, every live appointment allowed by every
booking rule on its visit date, and every referral held by at most one live registration, in the
state its registrations say.
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

from apps.booking import rules, services, sql
from apps.booking.models import LIVE_APPOINTMENT, Appointment, Registration
from apps.catalog.models import ReasonCode
from apps.core.errors import DomainError
from apps.patients.models import Referral
from apps.scheduling.models import Slot
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    PatientFactory,
    ReasonCodeFactory,
    ReferralFactory,
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
        self.screening = ServiceFactory(mammography=True)
        self.referred = ServiceFactory(referral_required=True)
        ReasonCodeFactory(code="DOCTOR_ILLNESS", kind=ReasonCode.Kind.FACILITY_CANCEL)
        ReasonCodeFactory(code="PATIENT_REQUEST", kind=ReasonCode.Kind.PATIENT_CANCEL)
        ReasonCodeFactory(code="UNCONFIRMED_RELEASED", kind=ReasonCode.Kind.RELEASE)
        ReasonCodeFactory(code="ALLOCATION_DECLINED", kind=ReasonCode.Kind.RELEASE)
        facility = FacilityFactory()
        base = timezone.now() + dt.timedelta(days=3)
        self.slots = []
        self.schedules = []
        for service in (self.screening, self.referred):
            ContractFactory(facility=facility, service=service)
            schedule = ScheduleFactory(facility=facility, service=service)
            self.schedules.append(schedule)
            for i in range(N_SLOTS):
                # A week apart: five weeks in all, so a December run crosses New Year.
                start = base + dt.timedelta(days=7 * i, hours=i)
                self.slots.append(
                    SlotFactory(
                        schedule=schedule,
                        start=start,
                        end=start + dt.timedelta(minutes=20),
                        kind="follow_up" if i == N_SLOTS - 1 else "first",
                    )
                )
        last_year = timezone.localdate(self.slots[-1].start).year
        # The patients whose rules depend on the date come first: hypothesis tries low indexes most.
        self.patients = [
            PatientFactory(birth_date=dt.date(1980, 1, 1), sex="F"),
            PatientFactory(birth_date=dt.date(last_year - 75, 6, 1), sex="F"),  # 75 by birth year
            PatientFactory(birth_date=dt.date(1968, 2, 1), sex="M"),
            PatientFactory(birth_date=dt.date(1970, 5, 17), sex="F"),
        ]
        self.referrals = [ReferralFactory(patient=p, service=self.referred) for p in self.patients[1:]]
        self.referrals.insert(0, None)  # the first patient has none: she is refused the referred service
        # Her interval ends on the third slot's day: she may book it and later ones, never earlier
        # ones (a reschedule or a facility cancellation must not move her into the interval).
        self.patients[0].screenings.create(
            service=self.screening,
            performed_on=rules.add_months(timezone.localdate(self.slots[2].start), -24),
        )
        # Both start booked where the rules allow it today, so every example can try to move them.
        services.appointment_book(slot_id=self.slots[3].pk, patient=self.patients[0])
        services.appointment_book(slot_id=self.slots[1].pk, patient=self.patients[1])

    def service(self, k):
        return (self.screening, self.referred)[k]

    def slot(self, k, s):
        return self.slots[k * N_SLOTS + s]

    def referral_args(self, p, k):
        referral = self.referrals[p]
        if k == 0 or referral is None:
            return {}
        return {"referral_number": referral.number, "referral_code": referral.access_code}

    def teardown(self):
        transaction.savepoint_rollback(self.savepoint)

    def live(self, patient, k=None):
        found = Appointment.objects.filter(patient=patient, status__in=LIVE_APPOINTMENT)
        if k is not None:
            found = found.filter(service=self.service(k))
        return found.first()

    def attempt(self, fn, **kwargs):
        # A refusal is a legal outcome; the invariants check that nothing changed wrongly.
        with contextlib.suppress(DomainError):
            fn(**kwargs)

    P = st.integers(0, N_PATIENTS - 1)
    S = st.integers(0, N_SLOTS - 1)
    K = st.integers(0, 1)

    @rule(p=P, k=K, s=S)
    def hold(self, p, k, s):
        self.attempt(services.slot_hold, slot_id=self.slot(k, s).pk, patient=self.patients[p])

    @rule(p=P, k=K, s=S, channel=st.sampled_from(["web", "desk", "phone"]))
    def book(self, p, k, s, channel):
        self.attempt(
            services.appointment_book,
            slot_id=self.slot(k, s).pk,
            patient=self.patients[p],
            channel=channel,
            **self.referral_args(p, k),
        )

    @rule(p=P)
    def confirm(self, p):
        if appointment := self.live(self.patients[p]):
            self.attempt(services.appointment_confirm, appointment=appointment)

    @rule(p=P)
    def cancel_by_patient(self, p):
        if appointment := self.live(self.patients[p]):
            self.attempt(services.appointment_cancel_by_patient, appointment=appointment)

    @rule(i=st.integers(0, 3))
    def cancel_by_facility(self, i):
        live = list(Appointment.objects.filter(status__in=LIVE_APPOINTMENT).order_by("id")[:4])
        if live:
            self.attempt(
                services.appointment_cancel_by_facility,
                appointment=live[i % len(live)],
                reason_code="DOCTOR_ILLNESS",
            )

    @rule(k=K, s=S)
    def cancel_session(self, k, s):
        self.attempt(
            services.session_cancel_by_facility,
            schedule=self.schedules[k],
            day=timezone.localdate(self.slot(k, s).start),
            reason_code="DOCTOR_ILLNESS",
        )

    @rule(i=st.integers(0, 3), s=S)
    def reschedule(self, i, s):
        live = list(Appointment.objects.filter(status__in=LIVE_APPOINTMENT).order_by("id")[:4])
        if live:
            appointment = live[i % len(live)]
            k = 0 if appointment.service_id == self.screening.pk else 1
            self.attempt(
                services.appointment_reschedule, appointment=appointment, new_slot_id=self.slot(k, s).pk
            )

    @rule(p=P, outcome=st.sampled_from(["attended", "no_show"]))
    def outcome(self, p, outcome):
        if appointment := self.live(self.patients[p]):
            after = appointment.start + dt.timedelta(minutes=30)
            self.attempt(
                services.appointment_record_outcome, appointment=appointment, outcome=outcome, now=after
            )

    @rule()
    def release_unconfirmed(self):
        services.appointments_release_unconfirmed(now=timezone.now() + dt.timedelta(days=2, hours=1))

    @rule(p=P, k=K)
    def join_waitlist(self, p, k):
        self.attempt(
            services.waitlist_join,
            patient=self.patients[p],
            service=self.service(k),
            **self.referral_args(p, k),
        )

    @rule(p=P)
    def leave_waitlist(self, p):
        registration = Registration.objects.filter(patient=self.patients[p], status="waiting").first()
        if registration:
            self.attempt(services.waitlist_leave, registration=registration)

    @rule(k=K, s=S)
    def allocate(self, k, s):
        services.waitlist_allocate_slot(slot_id=self.slot(k, s).pk)

    @rule(p=P)
    def allocate_entry(self, p):
        for registration in Registration.objects.filter(patient=self.patients[p], status="waiting"):
            services.waitlist_allocate_registration(registration_id=registration.pk)

    @rule(p=P)
    def decline_allocation(self, p):
        appointment = Appointment.objects.filter(
            patient=self.patients[p], status__in=LIVE_APPOINTMENT, channel="waitlist"
        ).first()
        if appointment:
            self.attempt(services.allocation_release, appointment=appointment)

    @invariant()
    def every_live_appointment_is_allowed_by_every_rule_on_its_date(self):
        for appointment in Appointment.objects.filter(status__in=LIVE_APPOINTMENT).select_related(
            "patient", "service", "slot", "registration__referral"
        ):
            facts = rules.Facts(
                patient=appointment.patient,
                service=appointment.service,
                day=timezone.localdate(appointment.start),
                last_screening=sql.last_screening(
                    patient_id=appointment.patient_id, service_id=appointment.service_id
                ),
                slot=appointment.slot,
                referral=appointment.registration.referral,
            )
            assert rules.failures(facts) == [], (appointment, rules.failures(facts))

    @invariant()
    def every_referral_is_in_the_state_its_registrations_say(self):
        for referral in Referral.objects.all():
            holders = Registration.objects.filter(referral=referral, status__in=["waiting", "booked"]).count()
            realised = Appointment.objects.filter(registration__referral=referral, status="attended").exists()
            assert holders <= 1
            if holders:
                assert referral.status == Referral.Status.REGISTERED
            elif realised:
                assert referral.status == Referral.Status.REALISED
            else:
                assert referral.status == Referral.Status.ISSUED

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
            .values("patient", "service")
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
