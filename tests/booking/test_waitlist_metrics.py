"""The time from a freed slot to its allocation from the waiting list (issue 20), in /metrics."""

import datetime as dt

from django.utils import timezone
from prometheus_client import REGISTRY

from apps.booking import services
from apps.scheduling.models import Slot
from tests.factories import PatientFactory

from .test_waitlist import join

NAME = "cer_waitlist_allocation_delay_seconds"


def _observed() -> tuple[float, float]:
    return REGISTRY.get_sample_value(f"{NAME}_count") or 0.0, REGISTRY.get_sample_value(f"{NAME}_sum") or 0.0


def test_the_time_from_a_freed_slot_to_its_allocation_is_observed_on_commit(
    make_slot, cardiology, django_capture_on_commit_callbacks
):
    """GIVEN a slot freed at 10:00 and a waiting patient WHEN it is allocated at 10:07
    THEN the histogram gets one observation of 420 s, once the allocation commits."""
    slot = make_slot()
    freed_at = timezone.now() - dt.timedelta(hours=1)
    Slot.objects.filter(pk=slot.pk).update(updated_at=freed_at)  # as `free_slot` leaves it
    join(PatientFactory(), cardiology)
    count, total = _observed()

    with django_capture_on_commit_callbacks(execute=True):
        appointment = services.waitlist_allocate_slot(slot_id=slot.pk, now=freed_at + dt.timedelta(minutes=7))

    assert appointment is not None
    assert _observed() == (count + 1, total + 420)
    assert REGISTRY.get_sample_value(f"{NAME}_bucket", {"le": "300.0"}) is not None


def test_nothing_is_observed_when_no_one_is_allocated(
    make_slot, cardiology, django_capture_on_commit_callbacks
):
    slot = make_slot()
    count, _ = _observed()

    with django_capture_on_commit_callbacks(execute=True):
        assert services.waitlist_allocate_slot(slot_id=slot.pk) is None

    assert _observed()[0] == count
