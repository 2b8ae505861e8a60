"""iCalendar (RFC 5545) export of one appointment, for the patient's own calendar."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from apps.booking.models import Appointment


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


def appointment_ics(*, appointment: Appointment) -> str:
    facility = appointment.facility
    cancelled = appointment.status not in ("booked", "confirmed")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//NFZ//Centralna e-Rejestracja//PL",
        "CALSCALE:GREGORIAN",
        "METHOD:CANCEL" if cancelled else "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:appointment-{appointment.pk}@cer.nfz.gov.pl",
        f"DTSTAMP:{_utc(timezone.now())}",
        f"DTSTART:{_utc(appointment.start)}",
        f"DTEND:{_utc(appointment.slot.end)}",
        f"SUMMARY:{_escape(appointment.service.name_pl)}",
        f"LOCATION:{_escape(f'{facility.name}, {facility.address}')}",
        f"DESCRIPTION:{_escape(f'Centralna e-Rejestracja, wizyta nr {appointment.pk}')}",
        f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
        f"SEQUENCE:{appointment.version}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"
