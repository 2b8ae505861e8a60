"""Development only: a booking whose visit has already started, so an integrator can try reporting
its outcome (`POST /bookings/{id}/outcome`) and the visit report without waiting for a real visit.

The slot is published and booked through the ordinary services with their clock set to a day before
the visit (the `now` every service takes): every booking rule is judged as on that day. Refused
wherever demo data is off (CER_DEMO_DATA, never set in production settings)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.booking import services as booking
from apps.core.errors import DomainError
from apps.integration.selectors import patient_by_pesel
from apps.scheduling.models import Schedule
from apps.scheduling.services import slots_publish

TRIES = 24  # an hour earlier each time the wanted time overlaps a slot of the schedule


class Command(BaseCommand):
    help = "Development only: book a visit that started MINUTES ago at a facility (to try outcomes)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--facility", required=True, help="NFZ code, e.g. 14/DEMO/KARDIO")
        parser.add_argument("--service", required=True, help="Service code with a schedule at the facility")
        parser.add_argument("--pesel", required=True, help="A patient CeR knows")
        parser.add_argument("--referral-number")
        parser.add_argument("--referral-code")
        parser.add_argument("--minutes-ago", type=int, default=30)

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.CER_DEMO_DATA:
            raise CommandError(
                "demo_past_visit is off in these settings (CER_DEMO_DATA); it is for development"
            )
        schedule = (
            Schedule.objects.filter(
                facility__nfz_code=options["facility"], service__code=options["service"], active=True
            )
            .select_related("service")
            .order_by("id")
            .first()
        )
        if schedule is None:
            raise CommandError(f"no active {options['service']} schedule at {options['facility']}")
        patient = patient_by_pesel(pesel=options["pesel"])
        if patient is None:
            raise CommandError("no patient with this PESEL")
        length = dt.timedelta(minutes=schedule.service.slot_minutes or 20)
        start = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(minutes=options["minutes_ago"])
        for _ in range(TRIES):
            clock = start - dt.timedelta(days=1)
            try:
                slots_publish(schedule=schedule, slots=[(start, start + length, "first")], now=clock)
                break
            except DomainError as exc:
                if exc.code != "schedule_overlap":
                    raise CommandError(exc.message_in("en")) from None
                start -= dt.timedelta(hours=1)
        else:
            raise CommandError("no free time in the last day of this schedule")
        slot = schedule.slots.get(start=start)
        try:
            appointment = booking.appointment_book(
                slot_id=slot.pk,
                patient=patient,
                channel=booking.Channel.DESK,
                referral_number=options["referral_number"],
                referral_code=options["referral_code"],
                facility=schedule.facility,
                now=clock,
            )
        except DomainError as exc:
            raise CommandError(exc.message_in("en")) from None
        self.stdout.write(f"booking {appointment.pk}: visit started {start.isoformat()}")
