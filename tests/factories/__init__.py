"""factory-boy factories for every model the booking core owns. Apps add their own modules here."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from apps.catalog.models import Contract, Entitlement, Facility, Locality, ReasonCode, Service, Voivodeship
from apps.core import pesel
from apps.patients.models import Patient, PatientEntitlement, Referral
from apps.scheduling.models import Practitioner, Schedule, Slot


class VoivodeshipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Voivodeship
        django_get_or_create = ("teryt",)

    teryt = "14"
    name = "mazowieckie"
    name_en = "Masovian"


class LocalityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Locality
        django_get_or_create = ("simc",)

    simc = "9140001"
    name = "Warszawa"
    voivodeship = factory.SubFactory(VoivodeshipFactory)
    population = 1_800_000
    lat = 52.2297
    lon = 21.0122


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ("code",)

    code = "KARDIO_1"
    name_pl = "Pierwsza wizyta w poradni kardiologicznej"
    name_en = "First visit, cardiology clinic"
    specialty = "kardiologia"
    kind = Service.Kind.VISIT
    referral_required = True
    cer_from = dt.date(2026, 1, 1)
    obligatory_from = dt.date(2026, 7, 1)
    min_horizon_days = 30
    waitlist_lookahead_days = 40
    slot_minutes = 20
    reminder_offsets_days = [7, 1]
    confirmation_required = True
    confirm_deadline_hours = 48
    no_show_after_hours = 72

    class Params:
        mammography = factory.Trait(
            code="MAMMO_SCR",
            name_pl="Mammografia przesiewowa",
            name_en="Screening mammography",
            specialty="radiologia",
            kind=Service.Kind.TEST,
            referral_required=False,
            eligible_sex="F",
            age_min=45,
            age_max=74,
            interval_months=24,
            interval_months_risk=12,
            waitlist_lookahead_days=90,
            confirmation_required=False,
            confirm_deadline_hours=None,
        )
        cytology = factory.Trait(
            code="CYTO_SCR",
            name_pl="Cytologia",
            name_en="Cytology",
            specialty="ginekologia",
            kind=Service.Kind.TEST,
            referral_required=False,
            eligible_sex="F",
            age_min=25,
            age_max=64,
            interval_months=36,
            interval_months_risk=12,
            waitlist_lookahead_days=90,
            confirmation_required=False,
            confirm_deadline_hours=None,
        )
        endocrinology = factory.Trait(
            code="ENDO_1",
            name_pl="Endokrynologia",
            name_en="Endocrinology",
            specialty="endokrynologia",
            cer_from=dt.date(2026, 8, 1),
            obligatory_from=dt.date(2026, 8, 1),
        )


class FacilityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Facility

    nfz_code = factory.Sequence(lambda n: f"14/T/{n:04d}")
    name = factory.Sequence(lambda n: f"Przychodnia testowa {n}")
    address = "ul. Testowa 1"
    locality = factory.SubFactory(LocalityFactory)
    voivodeship = factory.SelfAttribute("locality.voivodeship")
    lat = factory.SelfAttribute("locality.lat")
    lon = factory.SelfAttribute("locality.lon")


class ContractFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contract

    facility = factory.SubFactory(FacilityFactory)
    service = factory.SubFactory(ServiceFactory)
    valid_from = dt.date(2026, 1, 1)


class EntitlementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Entitlement
        django_get_or_create = ("code",)

    code = "ZHDK"
    name_pl = "Zasłużony Honorowy Dawca Krwi"
    name_en = "Honorary Blood Donor of Merit"
    priority = 10


class ReasonCodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReasonCode
        django_get_or_create = ("code",)

    code = "DOCTOR_ILLNESS"
    kind = ReasonCode.Kind.FACILITY_CANCEL
    name_pl = "Choroba lekarza"
    name_en = "Doctor illness"


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    birth_date = dt.date(1970, 5, 17)
    sex = Patient.Sex.FEMALE
    pesel = factory.LazyAttributeSequence(lambda o, n: pesel.generate(o.birth_date, o.sex, n % 5000))
    first_name = factory.Sequence(lambda n: f"Anna{n}")
    last_name = "Kowalska"
    email = factory.Sequence(lambda n: f"patient{n}@example.org")
    phone = "+48500100200"


class PatientEntitlementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PatientEntitlement

    patient = factory.SubFactory(PatientFactory)
    entitlement = factory.SubFactory(EntitlementFactory)
    valid_from = dt.date(2020, 1, 1)


class ReferralFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Referral

    number = factory.Sequence(lambda n: f"REF{n:010d}")
    access_code = "1234"
    patient = factory.SubFactory(PatientFactory)
    service = factory.SubFactory(ServiceFactory)
    category = Referral.Category.STABLE
    issued_on = factory.LazyFunction(lambda: timezone.localdate() - dt.timedelta(days=5))
    valid_until = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=365))


class PractitionerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Practitioner

    facility = factory.SubFactory(FacilityFactory)
    name = factory.Sequence(lambda n: f"dr Jan Nowak {n}")


class ScheduleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Schedule

    facility = factory.SubFactory(FacilityFactory)
    service = factory.SubFactory(ServiceFactory)


class SlotFactory(factory.django.DjangoModelFactory):
    """A free first-time slot, by default tomorrow + 20 min x n (so never in the past).

    n wraps every 1,440 slots (20 days): one xdist worker makes thousands of slots in a run, and an
    ever-growing n put slots beyond windows the tests assume (the waiting list's 40 days) late in
    long runs. Slots made one after the other still never share a start below 1,440 per schedule."""

    class Meta:
        model = Slot

    schedule = factory.SubFactory(ScheduleFactory)
    facility = factory.SelfAttribute("schedule.facility")
    service = factory.SelfAttribute("schedule.service")
    practitioner = factory.SelfAttribute("schedule.practitioner")
    voivodeship = factory.SelfAttribute("facility.voivodeship")
    locality = factory.SelfAttribute("facility.locality")
    lat = factory.SelfAttribute("facility.lat")
    lon = factory.SelfAttribute("facility.lon")
    start = factory.Sequence(
        lambda n: (
            (timezone.now() + dt.timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
            + dt.timedelta(minutes=20 * (n % 1440))
        )
    )
    end = factory.LazyAttribute(lambda o: o.start + dt.timedelta(minutes=20))
    status = Slot.Status.FREE


class RegistrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "booking.Registration"

    patient = factory.SubFactory(PatientFactory)
    service = factory.SubFactory(ServiceFactory)
    status = "booked"
    joined_at = factory.LazyFunction(timezone.now)


class AppointmentFactory(factory.django.DjangoModelFactory):
    """A live booking of a (booked) slot. Prefer booking services in behaviour tests."""

    class Meta:
        model = "booking.Appointment"

    slot = factory.SubFactory(SlotFactory, status="booked")
    registration = factory.SubFactory(RegistrationFactory, service=factory.SelfAttribute("..slot.service"))
    patient = factory.SelfAttribute("registration.patient")
    service = factory.SelfAttribute("slot.service")
    facility = factory.SelfAttribute("slot.facility")
    start = factory.SelfAttribute("slot.start")
    channel = "web"
