"""Notifications dropped by their time-to-live (or after every attempt failed) are counted (issue 20)."""

import datetime as dt

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.notifications.models import Message
from apps.notifications.services import message_deliver, messages_expire
from tests.factories.portal import MessageFactory

pytestmark = pytest.mark.django_db


def _dropped(channel: str, reason: str) -> float:
    labels = {"channel": channel, "reason": reason}
    return REGISTRY.get_sample_value("cer_notifications_expired_total", labels) or 0.0


def test_a_message_past_its_time_to_live_is_dropped_and_counted_once(django_capture_on_commit_callbacks):
    message = MessageFactory(
        channel=Message.Channel.IN_APP,
        state=Message.State.PENDING,
        expires_at=timezone.now() - dt.timedelta(minutes=1),
    )
    before = _dropped("in_app", "time_to_live")

    with django_capture_on_commit_callbacks(execute=True):
        first = message_deliver(message_id=message.pk)
        again = message_deliver(message_id=message.pk)

    assert (first, again) == ("expired", "expired")
    assert _dropped("in_app", "time_to_live") == before + 1


def test_the_expiry_job_counts_what_it_drops_by_channel(django_capture_on_commit_callbacks):
    past = timezone.now() - dt.timedelta(minutes=1)
    MessageFactory.create_batch(
        2, channel=Message.Channel.IN_APP, state=Message.State.FAILED, expires_at=past
    )
    MessageFactory(channel=Message.Channel.IN_APP, state=Message.State.PENDING)  # still in time
    before = _dropped("in_app", "time_to_live")

    with django_capture_on_commit_callbacks(execute=True):
        dropped = messages_expire()
        messages_expire()

    assert dropped == 2
    assert _dropped("in_app", "time_to_live") == before + 2
