"""The booking answer built by hand (`booking_output`, issue 19: cheaper than a serializer instance per
request) against the `BookingOutput` serializer the schema documents: the same JSON for every state."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from apps.booking.models import Appointment
from apps.integration.apis.bookings import BookingOutput, booking_output
from tests.factories import AppointmentFactory, ReasonCodeFactory, ReferralFactory

pytestmark = pytest.mark.django_db


def test_the_hand_built_answer_is_the_serializers():
    referral = ReferralFactory(status="registered")
    plain = AppointmentFactory()
    with_referral = AppointmentFactory(
        registration__referral=referral,
        registration__patient=referral.patient,
        confirm_by=timezone.now() + dt.timedelta(days=2),
    )
    ended = AppointmentFactory(
        status="cancelled_by_patient",
        reason=ReasonCodeFactory(code="PATIENT_REQUEST", kind="patient_cancel"),
        confirmed_at=timezone.now(),
        ended_at=timezone.now(),
        version=3,
    )
    moved = AppointmentFactory(status="rescheduled")
    moved.rescheduled_to = plain
    moved.save()
    for made in (plain, with_referral, ended, moved):
        appointment = Appointment.objects.select_related(
            "service", "patient", "registration__referral", "reason"
        ).get(pk=made.pk)
        expected = BookingOutput(appointment).data
        assert booking_output(appointment) == expected
        assert JSONRenderer().render(booking_output(appointment)) == JSONRenderer().render(expected)
