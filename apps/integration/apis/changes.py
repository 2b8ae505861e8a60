"""The changes feed: every outbox event of the caller's facility, in commit order, never skipping one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from .base import READ_ERRORS, FacilityApi, responses
from .schedules import _parse


class ChangesQuery(serializers.Serializer):
    cursor = serializers.CharField(required=False, max_length=200, help_text="`next` of the previous page")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


class EventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField(help_text="e.g. appointment.booked, slots.published")
    created_at = serializers.DateTimeField()
    aggregate_type = serializers.CharField()
    aggregate_id = serializers.IntegerField()
    payload = serializers.JSONField()


class ChangesPage(serializers.Serializer):
    results = EventOutput(many=True)
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
        "the next call; an empty page keeps the cursor. No event is skipped or repeated.",
        parameters=[ChangesQuery],
        responses=responses({200: ChangesPage}, READ_ERRORS),
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
                            "payload": {"appointment_id": 7, "slot_id": 3, "service": "KARDIO_1"},
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
