"""Factories for reconciliation tests: registrations and appointments (until the booking core ships
its own in tests/factories/__init__.py) and reported visits."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import factory
import time_machine
from django.utils import timezone

from apps.booking.models import LIVE_APPOINTMENT, Appointment, Registration
from apps.reconciliation.models import ReportedVisit
from tests.factories import FacilityFactory, PatientFactory, ServiceFactory, SlotFactory

WARSAW = ZoneInfo("Europe/Warsaw")


def warsaw(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=WARSAW)


# The reconciliation tests report visits of July 2026 against catalogue dates of 2026 (a service joins
# CeR on 2026-08-01 ...). An import refuses visits older than the settlement window (730 days), so with
# the real clock these tests would start failing in July 2028. Tests that import visits run at this
# moment instead (the clock still ticks from there): late enough that July 2026 has ended, within the
# window of every fixed date the tests use.
SETTLEMENT_NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def settlement_clock() -> time_machine.travel:
    """Python's clock at `SETTLEMENT_NOW` (ticking) for as long as the context lasts."""
    return time_machine.travel(SETTLEMENT_NOW, tick=True)


class RegistrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Registration

    patient = factory.SubFactory(PatientFactory)
    service = factory.SubFactory(ServiceFactory)
    status = Registration.Status.BOOKED
    joined_at = factory.LazyFunction(timezone.now)


class AppointmentFactory(factory.django.DjangoModelFactory):
    """An appointment of `patient` for `service` at `facility` starting at `start` (a slot is made for
    it). Ended states get `ended_at` (default: a day before the start, i.e. before the visit). It was
    booked (`created_at`) at `booked_at`, by default a week before the start."""

    class Meta:
        model = Appointment
        exclude = ("booked_at",)

    booked_at = factory.LazyAttribute(lambda o: o.start - dt.timedelta(days=7))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        booked_at = kwargs.pop("created_at", None)
        appointment = super()._create(model_class, *args, **kwargs)
        if booked_at is not None:
            # `created_at` is auto_now_add: the booking time is set after the insert.
            model_class.objects.filter(pk=appointment.pk).update(created_at=booked_at)
            appointment.created_at = booked_at
        return appointment

    patient = factory.SubFactory(PatientFactory)
    service = factory.SubFactory(ServiceFactory)
    facility = factory.SubFactory(FacilityFactory)
    start = factory.LazyFunction(lambda: warsaw(2026, 7, 14))
    status = Appointment.Status.BOOKED
    channel = Appointment.Channel.WEB
    created_at = factory.SelfAttribute("booked_at")
    ended_at = factory.LazyAttribute(
        lambda o: None if o.status in LIVE_APPOINTMENT else o.start - dt.timedelta(days=1)
    )
    registration = factory.LazyAttribute(
        lambda o: RegistrationFactory(
            patient=o.patient,
            service=o.service,
            status=(
                Registration.Status.BOOKED if o.status in LIVE_APPOINTMENT else Registration.Status.CLOSED
            ),
        )
    )
    slot = factory.LazyAttribute(
        lambda o: SlotFactory(
            schedule__facility=o.facility,
            schedule__service=o.service,
            start=o.start,
            end=o.start + dt.timedelta(minutes=20),
            status="booked",
        )
    )


class ReportedVisitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReportedVisit

    patient = factory.SubFactory(PatientFactory)
    patient_pesel = factory.LazyAttribute(lambda o: o.patient.pesel if o.patient else "")
    facility = factory.SubFactory(FacilityFactory)
    service = factory.SubFactory(ServiceFactory)
    facility_visit_id = factory.Sequence(lambda n: f"V{n:06d}")
    visit_at = factory.LazyFunction(lambda: warsaw(2026, 7, 14, 9, 5))
    emergency = False
