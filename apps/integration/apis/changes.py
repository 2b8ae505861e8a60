"""The changes feed: every outbox event of the caller's facility, in commit order, never skipping one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response

from ..events import EVENT_TYPES, EventEnvelope, event_serializer
from .base import READ_ERRORS, FacilityApi, responses
from .schedules import _parse


class ChangesQuery(serializers.Serializer):
    cursor = serializers.CharField(required=False, max_length=200, help_text="`next` of the previous page")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


class EventOutput(EventEnvelope):
    payload = serializers.JSONField()  # type: ignore[assignment]


# The schema of an event is one of the catalogue's typed events, chosen by `type` (docs/events.md).
EVENT_SCHEMA = PolymorphicProxySerializer(
    component_name="Event",
    serializers={name: event_serializer(name) for name in EVENT_TYPES if name != "webhook.test"},
    resource_type_field_name="type",
    many=True,
)


class ChangesPage(serializers.Serializer):
    results = EventOutput(many=True)
    next = serializers.CharField(
        allow_null=True, help_text="Always pass it back as `cursor`; unchanged when nothing is new"
    )


@extend_schema_serializer(component_name="ChangesPage")
class ChangesPageSchema(serializers.Serializer):
    results = EVENT_SCHEMA
    next = serializers.CharField(
        allow_null=True, help_text="Always pass it back as `cursor`; unchanged when nothing is new"
    )


class ChangesApi(FacilityApi):
    # Its own scope (issue 15): the feed carries every change of the facility, bookings included.
    required_scope = "changes:read"

    @extend_schema(
        operation_id="changes_list",
        tags=["changes"],
        summary="Changes feed (poll with the returned cursor)",
        description="Events that concern your facility, in commit order. Pass `next` as `cursor` on "
        "the next call; an empty page keeps the cursor. No event is skipped or repeated. Events are kept "
        "for at least three months: a cursor from before an event that is no longer kept answers `410 "
        "cursor_expired`; a system away that long re-reads what it needs (bookings, schedules, "
        "waiting-list entries), then polls without a cursor. Each event's "
        "payload is typed by its `type` (docs/events.md); `request_id` is the X-Request-ID of the request "
        "that made the change.",
        parameters=[ChangesQuery],
        responses=responses(
            {200: ChangesPageSchema}, (*READ_ERRORS, 410), codes=("invalid_cursor", "cursor_expired")
        ),
        examples=[
            OpenApiExample(
                "page",
                response_only=True,
                value={
                    "results": [
                        {
                            "id": 42,
                            "type": "appointment.booked",
                            "created_at": "2026-09-01T08:00:00Z",
                            "aggregate_type": "appointment",
                            "aggregate_id": 7,
                            "request_id": "5f0c3e7aa1b94c0e9d2b7c1f3e4a5b6c",
                            "payload": {
                                "appointment_id": 7,
                                "registration_id": 5,
                                "slot_id": 3,
                                "service": "KARDIO_1",
                                "facility": "061/000123",
                                "start": "2026-09-14T09:20:00+02:00",
                                "status": "booked",
                                "channel": "desk",
                            },
                        }
                    ],
                    "next": "WzEyLDQyXQ",
                },
            )
        ],
    )
    def get(self, request: Any) -> Response:
        query = _parse(ChangesQuery, request.query_params).validated_data
        events, next_cursor = self.scope.changes(cursor=query.get("cursor"), limit=query["limit"])
        return Response({"results": EventOutput(events, many=True).data, "next": next_cursor})
