"""The test factories themselves: defaults that stay valid however long a test process runs."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.factories import SlotFactory


@pytest.mark.django_db
def test_a_slot_made_late_in_a_long_run_is_still_within_three_weeks():
    SlotFactory.reset_sequence(5000)  # as after thousands of slots in one xdist worker
    slot = SlotFactory()
    assert timezone.now() < slot.start < timezone.now() + dt.timedelta(days=22)
