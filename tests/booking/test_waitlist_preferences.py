"""A waiting patient changes their preferences (issue 18): the entry keeps its place in the queue, the
change is recorded (outbox event, to the facility that registered the entry), the new preferences are
searched at once, and an entry no longer waiting is refused under the row lock."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import close_old_connections, connection, transaction

from apps.booking import services
from apps.booking.models import Appointment, Registration
from apps.booking.selectors import waitlist_position
from apps.core.errors import DomainError
from apps.outbox.models import OutboxEvent
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    LocalityFactory,
    PatientFactory,
    PractitionerFactory,
    ReferralFactory,
    ScheduleFactory,
    SlotFactory,
    VoivodeshipFactory,
)

from .conftest import in_days

pytestmark = pytest.mark.django_db


def join(patient, service, **prefs):
    referral = ReferralFactory(patient=patient, service=service)
    return services.waitlist_join(
        patient=patient,
        service=service,
        referral_number=referral.number,
        referral_code=referral.access_code,
        **prefs,
    )


def krakow_facility(service):
    krakow = LocalityFactory(
        simc="0950463",
        name="Kraków",
        voivodeship=VoivodeshipFactory(teryt="12", name="małopolskie", name_en="Lesser Poland"),
        lat=50.0647,
        lon=19.9450,
    )
    facility = FacilityFactory(name="Kraków clinic", locality=krakow)
    ContractFactory(facility=facility, service=service)
    return facility


def preferences(entry, **changes):
    current = {
        "date_from": entry.date_from,
        "date_to": entry.date_to,
        "voivodeship": entry.voivodeship,
        "locality": entry.locality,
        "max_distance_km": entry.max_distance_km,
        "facility": entry.facility,
        "practitioner": entry.practitioner,
    }
    return services.waitlist_preferences_update(registration=entry, **(current | changes))


def test_changing_preferences_keeps_the_place_in_the_queue(cardiology):
    warsaw = LocalityFactory()
    first = join(PatientFactory(), cardiology, voivodeship=warsaw.voivodeship)
    second = join(PatientFactory(), cardiology, voivodeship=warsaw.voivodeship)
    third = join(PatientFactory(), cardiology)
    joined_at = first.joined_at

    changed = preferences(
        first, voivodeship=None, locality=warsaw, max_distance_km=30, date_to=in_days(30).date()
    )

    changed.refresh_from_db()
    assert changed.joined_at == joined_at and changed.status == Registration.Status.WAITING
    assert (changed.locality_id, changed.max_distance_km, changed.voivodeship_id) == (warsaw.pk, 30, None)
    assert [waitlist_position(registration=r) for r in (first, second, third)] == [1, 2, 3]
    # The freed slot still goes to the first in the queue, under the new preferences.
    facility = FacilityFactory(locality=warsaw)
    ContractFactory(facility=facility, service=cardiology)
    slot = SlotFactory(schedule=ScheduleFactory(facility=facility, service=cardiology), start=in_days(6))
    assert services.waitlist_allocate_slot(slot_id=slot.pk).registration_id == first.pk


def test_the_change_is_recorded_for_the_facility_that_registered_the_entry(cardiology, facility_a):
    entry = join(PatientFactory(), cardiology, registered_by=facility_a)
    mine = join(PatientFactory(), cardiology)

    preferences(entry, date_from=in_days(3).date(), facility=facility_a)
    preferences(mine, date_to=in_days(20).date())

    told = OutboxEvent.objects.get(type="registration.preferences_changed", aggregate_id=entry.pk)
    assert told.facility_id == facility_a.pk and told.patient_id == entry.patient_id
    assert told.payload == {
        "registration_id": entry.pk,
        "service": cardiology.code,
        "changes": ["date_from", "facility"],
    }
    own = OutboxEvent.objects.get(type="registration.preferences_changed", aggregate_id=mine.pk)
    assert own.facility_id is None and own.payload["changes"] == ["date_to"]


def test_saving_the_same_preferences_records_nothing(cardiology):
    entry = join(PatientFactory(), cardiology, date_to=in_days(20).date())
    preferences(entry)
    assert not OutboxEvent.objects.filter(type="registration.preferences_changed").exists()


def test_the_new_preferences_are_searched_at_once(cardiology, django_capture_on_commit_callbacks):
    krakow = krakow_facility(cardiology)
    slot = SlotFactory(schedule=ScheduleFactory(facility=krakow, service=cardiology), start=in_days(4))
    entry = join(PatientFactory(), cardiology, voivodeship=LocalityFactory().voivodeship)  # Warsaw's
    assert not Appointment.objects.filter(registration=entry).exists()

    with django_capture_on_commit_callbacks(execute=True):
        preferences(entry, voivodeship=krakow.voivodeship)

    appointment = Appointment.objects.get(registration=entry)
    assert appointment.slot_id == slot.pk and appointment.channel == "waitlist"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (lambda facility: {"date_from": dt.date(2030, 5, 2), "date_to": dt.date(2030, 5, 1)}, "date_to"),
        (lambda facility: {"max_distance_km": 25}, "locality"),
        # A doctor is seen at their own facility, not at the preferred one.
        (lambda facility: {"facility": facility, "practitioner": PractitionerFactory()}, "practitioner"),
    ],
)
def test_inconsistent_preferences_are_refused_and_change_nothing(cardiology, facility_a, changes, field):
    entry = join(PatientFactory(), cardiology)
    with pytest.raises(DomainError) as refused:
        preferences(entry, **changes(facility_a))
    assert refused.value.code == "validation_error" and refused.value.field == field
    entry.refresh_from_db()
    assert (entry.date_from, entry.facility_id, entry.practitioner_id) == (None, None, None)


def test_an_entry_no_longer_waiting_is_refused(cardiology, facility_a):
    ContractFactory(facility=facility_a, service=cardiology)
    entry = join(PatientFactory(), cardiology)
    slot = SlotFactory(schedule=ScheduleFactory(facility=facility_a, service=cardiology), start=in_days(5))
    services.waitlist_allocate_slot(slot_id=slot.pk)  # the waiting list booked it
    with pytest.raises(DomainError) as refused:
        preferences(entry, date_to=in_days(30).date())
    assert refused.value.code == "waitlist_entry_not_found"
    entry.refresh_from_db()
    assert entry.status == Registration.Status.BOOKED and entry.date_to is None


@pytest.mark.django_db(transaction=True)
def test_a_change_racing_an_allocation_waits_for_it_and_is_refused(cardiology):
    """GIVEN an allocation that holds the entry's row lock (booking it) WHEN the patient saves new
    preferences meanwhile THEN the save waits for the lock, sees the entry booked and is refused; it
    never writes preferences onto a booked registration."""
    entry = join(PatientFactory(), cardiology)
    locked = threading.Event()
    release = threading.Event()

    def allocation():
        try:
            with transaction.atomic():
                Registration.objects.select_for_update().get(pk=entry.pk)
                locked.set()
                release.wait(timeout=30)
                Registration.objects.filter(pk=entry.pk).update(status=Registration.Status.BOOKED)
        finally:
            connection.close()

    worker = threading.Thread(target=allocation)
    worker.start()
    assert locked.wait(timeout=30)
    outcome: list[object] = []

    def change():
        try:
            outcome.append(preferences(entry, date_to=in_days(30).date()))
        except DomainError as exc:
            outcome.append(exc)
        finally:
            connection.close()

    patient_save = threading.Thread(target=change)
    patient_save.start()
    # Let the allocation commit only once the save is waiting for the row lock (seen in pg_stat_activity).
    waiting = False
    with connection.cursor() as cursor:
        for _ in range(3000):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            if waiting := bool(cursor.fetchone()[0]):
                break
            threading.Event().wait(0.01)
    release.set()
    worker.join(timeout=30)
    patient_save.join(timeout=30)
    close_old_connections()
    assert waiting, "the save never waited for the allocation's row lock"
    (result,) = outcome
    assert isinstance(result, DomainError) and result.code == "waitlist_entry_not_found"
    entry.refresh_from_db()
    assert entry.status == Registration.Status.BOOKED and entry.date_to is None
