"""Factories for the patient pages and notifications."""

from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.notifications.models import Message
from tests.factories import PatientFactory


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"patient-user-{n}")


class SignedInPatientFactory(PatientFactory):
    """A patient with a linked Django user, as after a first sign-in."""

    user = factory.SubFactory(UserFactory)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    key = factory.Sequence(lambda n: f"test:{n}:in_app")
    kind = "test"
    channel = Message.Channel.IN_APP
    patient = factory.SubFactory(PatientFactory)
    subject = "Wiadomość testowa"
    body_text = "Treść"
    state = Message.State.SENT
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=1))
