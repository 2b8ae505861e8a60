"""iCalendar (RFC 5545/5546) export of one booking, for the patient's own calendar.

One booking is one calendar event for its whole life: the UID names the registration (which a
reschedule keeps), so a moved visit replaces the old event instead of adding a second one, and the
SEQUENCE only grows (every earlier appointment of the registration and every change of this one count).
A cancelled or released booking is a METHOD:CANCEL with the ORGANIZER calendars need to act on it.
The texts follow the language asked for (the page's); an alarm reminds the patient a day before.
"""

from __future__ import annotations

import datetime as dt

from django.utils import dateformat, timezone, translation
from django.utils.translation import gettext as _

from apps.booking.models import LIVE_APPOINTMENT, Appointment
from apps.booking.selectors import appointment_in_month

ORGANIZER = "ORGANIZER;CN=Centralna e-Rejestracja NFZ:mailto:cer@nfz.gov.pl"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _fold(line: str) -> str:
    """Lines longer than 75 octets are folded (RFC 5545 section 3.1)."""
    out, current = [], ""
    for char in line:
        if len((current + char).encode()) > 75:
            out.append(current)
            current = " " + char
        else:
            current += char
    out.append(current)
    return "\r\n".join(out)


def _latest(appointment: Appointment) -> Appointment:
    """A moved appointment's event is its registration's: the file describes where it went."""
    seen = 0
    while appointment.rescheduled_to_id is not None and seen < 100:
        key = appointment_in_month(appointment.rescheduled_to_id, slot=True)
        if key is None:
            raise Appointment.DoesNotExist(f"appointment {appointment.rescheduled_to_id}")
        appointment = Appointment.objects.select_related("service", "facility", "slot").get(**key)
        seen += 1
    return appointment


def sequence(appointment: Appointment) -> int:
    """Grows with every change of the booking, across reschedules: each earlier appointment of the
    registration counts its own changes plus one."""
    earlier = Appointment.objects.filter(registration_id=appointment.registration_id, pk__lt=appointment.pk)
    return sum(version + 1 for version in earlier.values_list("version", flat=True)) + appointment.version


def appointment_ics(*, appointment: Appointment, language: str = "pl") -> str:
    appointment = _latest(appointment)
    facility = appointment.facility
    cancelled = appointment.status not in LIVE_APPOINTMENT
    with translation.override("en" if language.startswith("en") else "pl"):
        service = appointment.service.name_en if language.startswith("en") else appointment.service.name_pl
        description = _("Central e-Registration (NFZ), appointment number %(number)s.") % {
            "number": appointment.pk
        }
        when = dateformat.format(timezone.localtime(appointment.start), "j E Y, H:i")
        alarm = _("Tomorrow: %(service)s, %(when)s.") % {"service": service, "when": when}
        summary = service if not cancelled else _("Cancelled: %(service)s") % {"service": service}
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//NFZ//Centralna e-Rejestracja//PL",
        "CALSCALE:GREGORIAN",
        "METHOD:CANCEL" if cancelled else "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:registration-{appointment.registration_id}@cer.nfz.gov.pl",
        f"DTSTAMP:{_utc(timezone.now())}",
        f"DTSTART:{_utc(appointment.start)}",
        f"DTEND:{_utc(appointment.slot.end)}",
        f"SEQUENCE:{sequence(appointment)}",
        ORGANIZER,
        f"SUMMARY:{_escape(summary)}",
        f"LOCATION:{_escape(f'{facility.name}, {facility.address}')}",
        f"DESCRIPTION:{_escape(description)}",
        f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
    ]
    if not cancelled:
        lines += [
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "TRIGGER:-P1D",
            f"DESCRIPTION:{_escape(alarm)}",
            "END:VALARM",
        ]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"
