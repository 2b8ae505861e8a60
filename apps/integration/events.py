"""The event catalogue: every event type the changes feed and webhooks carry, with its typed payload.

One registry (`EVENT_TYPES`) feeds the OpenAPI document (`components`: one schema per type, the feed's
`Event` is one of them), docs/events.md (`make manage ARGS=events_catalogue`, kept equal by a test),
and the check of webhook subscriptions (an unknown type is refused, not silently never delivered).
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import serializers

# --- payloads ---------------------------------------------------------------------------------------


class AppointmentPayload(serializers.Serializer):
    """What every appointment.* event carries."""

    appointment_id = serializers.IntegerField()
    registration_id = serializers.IntegerField()
    slot_id = serializers.IntegerField()
    service = serializers.CharField(help_text="Service code")
    facility = serializers.CharField(help_text="NFZ code of the facility")
    start = serializers.DateTimeField()
    status = serializers.CharField(help_text="The booking's status after the change")
    channel = serializers.CharField(help_text="web, desk, phone, email, waitlist")


class AppointmentBookedPayload(AppointmentPayload):
    rescheduled_from = serializers.IntegerField(required=False, help_text="The booking this one replaces")


class AppointmentAllocatedPayload(AppointmentPayload):
    allocation = serializers.DictField(help_text="Why this patient got this slot (queue position, rules...)")


class AppointmentCancelledPayload(AppointmentPayload):
    by = serializers.ChoiceField(choices=["patient", "facility"], help_text="Whose cancellation it is")
    reason = serializers.CharField(help_text="Reason code (GET /api/v1/reason-codes)")
    recorded_by = serializers.CharField(
        required=False,
        help_text="patient or facility (the patient asked at the desk and the facility recorded it)",
    )


class AppointmentRescheduledPayload(AppointmentPayload):
    new_appointment_id = serializers.IntegerField()
    new_start = serializers.DateTimeField()


class AppointmentReleasedPayload(AppointmentPayload):
    reason = serializers.ChoiceField(choices=["unconfirmed", "declined_by_patient"])


class AppointmentNoShowPayload(AppointmentPayload):
    automatic = serializers.BooleanField(required=False, help_text="Marked by CeR after the visit's end")


class RegistrationPayload(serializers.Serializer):
    registration_id = serializers.IntegerField()
    service = serializers.CharField()


class RegistrationWaitingPayload(RegistrationPayload):
    after = serializers.ChoiceField(choices=["joined", "facility_cancellation"])


class RegistrationPreferencesChangedPayload(RegistrationPayload):
    changes = serializers.ListField(
        child=serializers.CharField(),
        help_text="Names of the changed preferences (date_from, date_to, voivodeship, locality, "
        "max_distance_km, facility, practitioner); the entry keeps its place in the queue",
    )


class RegistrationClosedPayload(RegistrationPayload):
    reason = serializers.CharField(help_text="e.g. left_waitlist")


class SchedulePayload(serializers.Serializer):
    schedule_id = serializers.IntegerField()
    service = serializers.CharField()


class ScheduleCreatedPayload(SchedulePayload):
    place = serializers.CharField()


class ScheduleUpdatedPayload(SchedulePayload):
    changes = serializers.ListField(child=serializers.CharField(), help_text="Names of the changed fields")


class ScheduleTemplatesChangedPayload(SchedulePayload):
    templates = serializers.IntegerField(help_text="Number of templates now in force")


class ScheduleDayClosedPayload(serializers.Serializer):
    schedule_id = serializers.IntegerField()
    day = serializers.DateField()
    reason = serializers.CharField()


# `from` is a Python keyword, so this payload's class is built from a dict of its fields.
SlotsPublishedPayload = type(
    "SlotsPublishedPayload",
    (SchedulePayload,),
    {
        "count": serializers.IntegerField(),
        "until": serializers.DateField(required=False, help_text="Generated from templates up to this day"),
        "from": serializers.DateTimeField(required=False, help_text="Explicit slots: the first one's start"),
    },
)


class SlotBlockedPayload(serializers.Serializer):
    slot_id = serializers.IntegerField()
    start = serializers.DateTimeField()
    reason = serializers.CharField()


class SlotUnblockedPayload(serializers.Serializer):
    slot_id = serializers.IntegerField()
    start = serializers.DateTimeField()


class WebhookTestPayload(serializers.Serializer):
    subscription_id = serializers.IntegerField()
    message = serializers.CharField()


@dataclass(frozen=True)
class EventType:
    description: str
    payload: type[serializers.Serializer]


EVENT_TYPES: dict[str, EventType] = {
    "appointment.booked": EventType(
        "A booking was made (web, desk, or the new booking of a reschedule).", AppointmentBookedPayload
    ),
    "appointment.allocated": EventType(
        "The waiting list gave a patient a slot.", AppointmentAllocatedPayload
    ),
    "appointment.confirmed": EventType(
        "The patient (or the facility) confirmed the visit.", AppointmentPayload
    ),
    "appointment.cancelled": EventType(
        "A booking was cancelled by the patient or the facility.", AppointmentCancelledPayload
    ),
    "appointment.rescheduled": EventType(
        "A booking moved to another slot (see appointment.booked).", AppointmentRescheduledPayload
    ),
    "appointment.released": EventType(
        "An unconfirmed or declined booking gave its slot back.", AppointmentReleasedPayload
    ),
    "appointment.attended": EventType("The facility reported that the patient came.", AppointmentPayload),
    "appointment.no_show": EventType(
        "The patient did not come (reported, or marked after the visit).", AppointmentNoShowPayload
    ),
    "registration.waiting": EventType(
        "A patient is on the waiting list (joined, or back after a facility cancellation).",
        RegistrationWaitingPayload,
    ),
    "registration.preferences_changed": EventType(
        "A waiting patient changed the preferences of their entry (its place in the queue is kept).",
        RegistrationPreferencesChangedPayload,
    ),
    "registration.closed": EventType(
        "A waiting-list entry ended without a booking.", RegistrationClosedPayload
    ),
    "schedule.created": EventType("A schedule was created.", ScheduleCreatedPayload),
    "schedule.updated": EventType(
        "A schedule's place, external id or active flag changed.", ScheduleUpdatedPayload
    ),
    "schedule.templates_changed": EventType(
        "A schedule's weekly templates were replaced.", ScheduleTemplatesChangedPayload
    ),
    "schedule.day_closed": EventType(
        "A day of a schedule was closed or its session cancelled.", ScheduleDayClosedPayload
    ),
    "slots.published": EventType(
        "Slots were published (from templates or explicitly).", SlotsPublishedPayload
    ),
    "slot.blocked": EventType("A free slot was blocked.", SlotBlockedPayload),
    "slot.unblocked": EventType("A blocked slot is free again.", SlotUnblockedPayload),
    "webhook.test": EventType(
        "Sent by POST /api/v1/webhooks/{id}/test only; never in the changes feed.", WebhookTestPayload
    ),
}


def event_type_component(name: str) -> str:
    """The OpenAPI component name of a type's event: appointment.no_show -> AppointmentNoShowEvent."""
    return "".join(part.capitalize() for part in name.replace(".", "_").split("_")) + "Event"


def event_serializer(name: str) -> type[serializers.Serializer]:
    """The whole event (envelope and typed payload) of one type, as the feed and webhooks send it."""
    return type(
        event_type_component(name),
        (EventEnvelope,),
        {
            "__doc__": EVENT_TYPES[name].description,
            "type": serializers.ChoiceField(choices=[name]),
            "payload": EVENT_TYPES[name].payload(),
        },
    )


class EventEnvelope(serializers.Serializer):
    id = serializers.IntegerField(
        help_text="The event's id (CeR-Event-Id); the same in the feed and webhooks"
    )
    type = serializers.CharField()
    created_at = serializers.DateTimeField()
    aggregate_type = serializers.CharField()
    aggregate_id = serializers.IntegerField()
    request_id = serializers.CharField(
        help_text="X-Request-ID of the request that made the change (empty for CeR's own jobs)"
    )
    payload = serializers.DictField()


def catalogue_markdown() -> str:
    lines = [
        "# Event catalogue",
        "",
        "<!-- Generated from apps/integration/events.py by `make manage ARGS=events_catalogue`. -->",
        "",
        "The changes feed (`GET /api/v1/changes`) and webhooks carry the same events, in the same shape:",
        "",
        "```json",
        '{"id": 42, "type": "appointment.cancelled", "created_at": "2026-09-01T08:00:00Z",',
        ' "aggregate_type": "appointment", "aggregate_id": 7, "request_id": "5f0c3e7a...",',
        ' "payload": {"appointment_id": 7, "by": "patient", "reason": "PATIENT_REQUEST", "...": "..."}}',
        "```",
        "",
        "- `request_id` is the `X-Request-ID` of the API request that made the change: match events to your",
        "  own requests. Empty for changes CeR makes itself (a no-show after the visit, a release).",
        "- Each type's schema is in the OpenAPI document (`components.schemas.<Type>Event`, e.g.",
        "  `AppointmentCancelledEvent`); the feed's `Event` is one of them, chosen by `type`.",
        "- A webhook subscription lists the types it wants (`event_types`, empty: all); a type not listed",
        "  here is refused with `400 validation_error`. New types may be added within v1",
        "  (docs/versioning.md): ignore types you do not know.",
        "- Events, and the webhook delivery log with them, are kept for at least three months (a month's",
        "  events go together once it ended three months ago; a month with a delivery still being retried",
        "  waits for it). Read the feed, or re-send failed deliveries, within that time; a system away",
        "  longer re-reads the resources it needs (bookings, schedules, waiting-list entries). A feed cursor",
        "  from before an event of your facility that is no longer kept answers `410 cursor_expired`",
        "  ([errors.md](errors.md#cursor_expired)): re-read, then poll without a cursor.",
        "",
        "## Webhooks",
        "",
        "Each delivery is a `POST` of one event with the headers `CeR-Event-Id`, `CeR-Event-Type`,",
        "`CeR-Delivery-Id`, `CeR-Timestamp` and `CeR-Signature: t=<timestamp>,v1=<hex>`, where `<hex>` is",
        "HMAC-SHA256 of `<timestamp>.<body>` keyed by the subscription's secret. Answer 2xx within 10 s;",
        "anything else is retried with backoff (30 s doubling, up to 6 h, 8 attempts).",
        "`POST /api/v1/webhooks/{id}/test` sends one signed `webhook.test` event to that subscription; its",
        "result is in `GET /api/v1/webhooks/{id}/deliveries`.",
        "",
        "### Testing a receiver locally (development only)",
        "",
        "Production accepts only `https` URLs on public addresses and ports 443/8443. A development server",
        "(`config.settings.dev`) can deliver to a receiver on your machine with, in `.env`:",
        "",
        "```",
        "CER_WEBHOOK_ALLOW_HTTP=true      # http:// URLs",
        "CER_WEBHOOK_ALLOW_PRIVATE=true   # loopback and private addresses, any port",
        "```",
        "",
        "then subscribe e.g. `http://127.0.0.1:9000/hooks` and call `.../test`.",
        "Never set these in production.",
        "",
        "## Types",
        "",
        "| type | when | payload fields |",
        "| --- | --- | --- |",
    ]
    for name, event in EVENT_TYPES.items():
        fields = []
        for field_name, field in event.payload().fields.items():
            fields.append(f"`{field_name}`" + ("" if field.required else " (optional)"))
        lines.append(f"| `{name}` | {event.description} | {', '.join(fields)} |")
    lines.append("")
    return "\n".join(lines)
