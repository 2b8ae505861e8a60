"""Publishing slots queues one waiting-list sweep per service, on the real Redis broker."""

import datetime as dt

import pytest
from django.utils import timezone

from apps.booking import tasks
from apps.scheduling.services import slots_publish
from config.celery import app
from tests.factories import FacilityFactory, ScheduleFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker():
    """Tasks go to the broker instead of running inline; the queue is emptied before and after."""
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")
        yield conn.default_channel
        conn.default_channel.queue_purge("celery")
    app.conf.task_always_eager = eager


def _queued(channel) -> int:
    return channel.client.llen("celery")


def test_publishing_many_schedules_queues_one_sweep_until_it_starts(broker, cardiology, mammography):
    start = (timezone.localtime() + dt.timedelta(days=3)).replace(hour=8, minute=0, second=0, microsecond=0)
    for _ in range(5):
        schedule = ScheduleFactory(facility=FacilityFactory(), service=cardiology)
        slots_publish(schedule=schedule, slots=[(start, start + dt.timedelta(minutes=20), "first")])
    assert _queued(broker) == 1
    slots_publish(
        schedule=ScheduleFactory(facility=FacilityFactory(), service=mammography),
        slots=[(start, start + dt.timedelta(minutes=15), "first")],
    )
    assert _queued(broker) == 2  # another service: its own sweep

    tasks.waitlist_sweep_task(cardiology.pk)  # a worker starts the sweep: the mark is cleared
    assert tasks.waitlist_sweep_request(cardiology.pk) is True
    assert tasks.waitlist_sweep_request(cardiology.pk) is False
    assert _queued(broker) == 3
