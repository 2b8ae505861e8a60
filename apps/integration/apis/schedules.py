"""Schedules, weekly templates and slots of the caller's facility."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from apps.catalog.selectors import service_get
from apps.core.errors import DomainError, text
from apps.scheduling import services as scheduling
from apps.scheduling.models import Slot
from apps.scheduling.selectors import day_start

from ..selectors import practitioner_in_facility
from .base import (
    IDEMPOTENCY_PARAMETER,
    IF_MATCH_DESCRIPTION,
    IF_NONE_MATCH_PARAMETER,
    NOT_MODIFIED,
    PROBLEMS,
    READ_ERRORS,
    WRITE_ERRORS,
    BoundedDateField,
    FacilityApi,
    PageQuery,
    StrictSerializer,
    datetime_in_bounds,
    etag,
    example,
    example_of,
    if_match_check,
    not_modified,
    page_example,
    page_of,
    paginated,
    responses,
)

MAX_SLOTS_PER_REQUEST = 20_000

# --- ETag / If-Match -------------------------------------------------------------------------------


IF_MATCH_PARAMETER = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description=IF_MATCH_DESCRIPTION,
)

# --- serializers ----------------------------------------------------------------------------------


@extend_schema_field(
    {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", "example": "08:00"}
)
class WallClockTimeField(serializers.TimeField):
    """A wall-clock time `HH:MM` (Europe/Warsaw), answered as `08:00`. Not OpenAPI's `format: time`:
    that is RFC 3339's full-time, which needs a UTC offset a weekly template cannot have."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", input_formats=["%H:%M", "%H:%M:%S"], **kwargs)


class TemplateSchema(serializers.Serializer):
    weekday = serializers.IntegerField(min_value=0, max_value=6, help_text="0 = Monday ... 6 = Sunday")
    start_time = WallClockTimeField(help_text="Europe/Warsaw wall-clock time, HH:MM")
    end_time = WallClockTimeField(help_text="Europe/Warsaw wall-clock time, HH:MM")
    slot_minutes = serializers.IntegerField(min_value=5, max_value=480, required=False)
    valid_from = BoundedDateField()
    valid_to = BoundedDateField(required=False, allow_null=True)
    kind = serializers.ChoiceField(choices=Slot.Kind.choices, default=Slot.Kind.FIRST)


class TemplateInput(StrictSerializer, TemplateSchema):
    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end_time"] <= attrs["start_time"]:
            raise serializers.ValidationError({"end_time": [text("after_start_time")]})
        if attrs.get("valid_to") and attrs["valid_to"] < attrs["valid_from"]:
            raise serializers.ValidationError({"valid_to": [text("not_before_valid_from")]})
        return attrs


TEMPLATE_EXAMPLE = {
    "weekday": 0,
    "start_time": "08:00",
    "end_time": "12:00",
    "slot_minutes": 20,
    "valid_from": "2027-01-04",
    "valid_to": None,
    "kind": "first",
}


@example(
    {
        "id": 7,
        "service": "KARDIO_1",
        "place": "gab. 12",
        "practitioner_id": None,
        "external_id": "HIS-SCHED-7",
        "active": True,
        "generated_until": "2027-02-28",
        "version": 2,
        "templates": [TEMPLATE_EXAMPLE],
    }
)
class ScheduleOutput(serializers.Serializer):
    id = serializers.IntegerField()
    service = serializers.CharField(source="service.code")
    place = serializers.CharField()
    practitioner_id = serializers.IntegerField(allow_null=True)
    external_id = serializers.CharField()
    active = serializers.BooleanField()
    generated_until = serializers.DateField(allow_null=True)
    version = serializers.IntegerField()
    templates = serializers.SerializerMethodField()

    @extend_schema_field(TemplateSchema(many=True))
    def get_templates(self, schedule: Any) -> Any:
        return TemplateSchema(schedule.templates.order_by("weekday", "start_time"), many=True).data


class ScheduleCreateInput(StrictSerializer):
    service = serializers.CharField(max_length=32, help_text="Service code from /services")
    place = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    practitioner_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    external_id = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)


@example({"place": "gab. 14"})
class ScheduleUpdateInput(StrictSerializer):
    place = serializers.CharField(max_length=200, required=False, allow_blank=True)
    external_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    active = serializers.BooleanField(required=False)


class TemplatesSetInput(StrictSerializer):
    templates = TemplateInput(many=True, max_length=200)  # type: ignore[call-arg]
    generate_until = BoundedDateField(
        required=False,
        allow_null=True,
        help_text="Generate template slots up to this day now (default: the service horizon)",
    )


@example({"schedule": example_of(ScheduleOutput), "slots_created": 96})
class TemplatesSetOutput(serializers.Serializer):
    schedule = ScheduleOutput()
    slots_created = serializers.IntegerField()


@extend_schema_field(
    {
        "type": "array",
        "maxItems": MAX_SLOTS_PER_REQUEST,
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["start", "end"],
            "properties": {
                "start": {"type": "string", "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
                "kind": {"type": "string", "enum": list(Slot.Kind.values)},
            },
        },
    }
)
class SlotListField(serializers.Field):
    """Parses up to 20,000 slots with plain `fromisoformat` (a nested serializer per slot is ~50x slower)."""

    def to_internal_value(self, data: Any) -> list[tuple[dt.datetime, dt.datetime, str]]:
        if not isinstance(data, list):
            raise serializers.ValidationError(text("expected_slot_list"))
        if not data:
            raise serializers.ValidationError(text("at_least_one_slot"))
        if len(data) > MAX_SLOTS_PER_REQUEST:
            raise serializers.ValidationError(text("at_most_slots", limit=MAX_SLOTS_PER_REQUEST))
        out = []
        errors: dict[str, list[str]] = {}
        kinds = set(Slot.Kind.values)
        for index, item in enumerate(data):
            try:
                if not isinstance(item, dict) or set(item) - {"start", "end", "kind"}:
                    raise ValueError("an object with start, end and optional kind")
                start = _aware(item.get("start"))
                end = _aware(item.get("end"))
                kind = item.get("kind", Slot.Kind.FIRST)
                if kind not in kinds:
                    raise ValueError(f"kind must be one of {sorted(kinds)}")
                if end <= start:
                    raise ValueError("end must be after start")
                out.append((start, end, kind))
            except ValueError as exc:
                errors[str(index)] = [str(exc)]
                if len(errors) >= 20:
                    break
        if errors:
            raise serializers.ValidationError(errors)
        return out

    def to_representation(self, value: Any) -> Any:
        return value


def _aware(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("start and end must be ISO 8601 date-times with a UTC offset")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a valid date-time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise ValueError("date-times need a UTC offset (e.g. 2026-09-01T08:00:00+02:00)")
    try:
        return datetime_in_bounds(parsed)
    except serializers.ValidationError as exc:
        raise ValueError(" ".join(str(e) for e in exc.detail)) from None


class SlotsPublishInput(StrictSerializer):
    slots = SlotListField()


@example({"created": 2, "skipped": 0})
class SlotsPublishOutput(serializers.Serializer):
    created = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Identical slots that already existed")


@example(
    {
        "id": 123,
        "schedule_id": 7,
        "service": "KARDIO_1",
        "practitioner_id": None,
        "start": "2027-01-05T08:00:00+01:00",
        "end": "2027-01-05T08:20:00+01:00",
        "kind": "first",
        "status": "free",
    }
)
class SlotOutput(serializers.Serializer):
    id = serializers.IntegerField()
    schedule_id = serializers.IntegerField()
    service = serializers.CharField(source="service.code")
    practitioner_id = serializers.IntegerField(allow_null=True)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    kind = serializers.CharField()
    status = serializers.CharField()


@example(page_example(example_of(SlotOutput)))
class SlotPage(serializers.Serializer):
    results = SlotOutput(many=True)
    next = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page")


class WindowQuery(serializers.Serializer):
    date_from = BoundedDateField(required=False, help_text="First day (Europe/Warsaw), inclusive")
    date_to = BoundedDateField(required=False, help_text="Last day (Europe/Warsaw), inclusive")
    service = serializers.CharField(required=False, max_length=32)
    cursor = serializers.CharField(required=False, max_length=200)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_to"] < attrs["date_from"]:
            raise serializers.ValidationError({"date_to": [text("not_before_date_from")]})
        return attrs

    def window(self) -> dict[str, Any]:
        data = self.validated_data
        return {
            "date_from": day_start(data["date_from"]) if data.get("date_from") else None,
            "date_to": day_start(data["date_to"] + dt.timedelta(days=1)) if data.get("date_to") else None,
            "service": data.get("service"),
            "cursor": data.get("cursor"),
            "limit": data["limit"],
        }


class SlotQuery(WindowQuery):
    status = serializers.ChoiceField(choices=Slot.Status.choices, required=False)
    schedule_id = serializers.IntegerField(required=False, min_value=1)


@example({"reason": "equipment service"})
class SlotBlockInput(StrictSerializer):
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class EmptyInput(StrictSerializer):
    pass


@example({"day": "2027-01-05", "reason_code": "DOCTOR_ILLNESS"})
class DayInput(StrictSerializer):
    day = BoundedDateField(help_text="The day (Europe/Warsaw)")
    reason_code = serializers.CharField(max_length=32, help_text="A facility_cancel code from /reason-codes")

    def validate_day(self, value: dt.date) -> dt.date:
        if value < timezone.localdate():
            raise serializers.ValidationError(text("day_in_past"))
        return value


@example({"cancelled": 9, "rebooked": 6, "waiting": 3, "slots_closed": 12})
class DayOutput(serializers.Serializer):
    cancelled = serializers.IntegerField()
    rebooked = serializers.IntegerField()
    waiting = serializers.IntegerField()
    slots_closed = serializers.IntegerField()


def _parse(serializer_class: type[serializers.Serializer], data: Any) -> Any:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer


def _with_etag(response: Response, version: int) -> Response:
    response["ETag"] = etag(version)
    return response


# --- schedules ------------------------------------------------------------------------------------


class ScheduleListApi(FacilityApi):
    """Your facility's schedules (one per service, place and practitioner), cursor pagination."""

    required_scope = "schedules:read"

    @extend_schema(
        operation_id="schedules_list",
        tags=["schedules"],
        summary="Your facility's schedules (cursor pagination)",
        parameters=[PageQuery],
        responses=responses({200: page_of(ScheduleOutput)}, READ_ERRORS, codes=("invalid_cursor",)),
    )
    def get(self, request: Any) -> Response:
        schedules = self.scope.schedules().select_related("service").prefetch_related("templates")
        return paginated(request, schedules, ScheduleOutput)


class ScheduleCreateApi(FacilityApi):
    """Create a schedule for a contracted service. `external_id` is your system's id: a second schedule
    with the same one is refused with `external_id_taken`, naming the existing schedule."""

    sends_location = True
    sends_etag = True
    required_scope = "schedules:write"

    @extend_schema(
        operation_id="schedules_create",
        tags=["schedules"],
        summary="Create a schedule",
        request=ScheduleCreateInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({201: ScheduleOutput}, WRITE_ERRORS),
        examples=[
            OpenApiExample(
                "cardiology",
                value={"service": "KARDIO_1", "place": "gab. 12", "external_id": "HIS-SCHED-7"},
                request_only=True,
            ),
            OpenApiExample(
                "created",
                value={
                    **example_of(ScheduleOutput),
                    "generated_until": None,
                    "version": 1,
                    "templates": [],
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request: Any) -> Response:
        data = _parse(ScheduleCreateInput, request.data).validated_data
        practitioner = None
        if data.get("practitioner_id"):
            practitioner = practitioner_in_facility(scope=self.scope, pk=data["practitioner_id"])
        schedule = scheduling.schedule_create(
            facility=self.principal.facility,
            service=service_get(code=data["service"]),
            place=data["place"],
            practitioner=practitioner,
            external_id=data["external_id"],
        )
        schedule = self.scope.schedule(schedule.pk)
        response = Response(ScheduleOutput(schedule).data, status=201)
        response["Location"] = f"/api/v1/schedules/{schedule.pk}"
        return _with_etag(response, schedule.version)


class ScheduleDetailApi(FacilityApi):
    """One schedule with its templates and ETag; If-None-Match answers 304 while it is unchanged."""

    sends_etag = True
    required_scope = "schedules:read"

    @extend_schema(
        operation_id="schedules_retrieve",
        tags=["schedules"],
        summary="One schedule (with its ETag)",
        parameters=[IF_NONE_MATCH_PARAMETER],
        responses={**responses({200: ScheduleOutput}, READ_ERRORS), 304: NOT_MODIFIED},
    )
    def get(self, request: Any, schedule_id: int) -> Response:
        schedule = self.scope.schedule(schedule_id)
        unchanged = not_modified(request, schedule.version)
        if unchanged is not None:
            return unchanged
        return _with_etag(Response(ScheduleOutput(schedule).data), schedule.version)


class ScheduleUpdateApi(FacilityApi):
    """Change place, external id or the active flag. If-Match is required (the ETag from GET, or `*`): a
    change made meanwhile by another system is refused with 412."""

    sends_etag = True
    required_scope = "schedules:write"

    @extend_schema(
        operation_id="schedules_partial_update",
        tags=["schedules"],
        summary="Change place, external id or active (If-Match required)",
        request=ScheduleUpdateInput,
        parameters=[IF_MATCH_PARAMETER, IDEMPOTENCY_PARAMETER],
        responses=responses({200: ScheduleOutput}, (*WRITE_ERRORS, 412, 428)),
    )
    def patch(self, request: Any, schedule_id: int) -> Response:
        # The row lock (inside the request transaction) keeps the version checked here current until
        # the conditional UPDATE of the service.
        schedule = self.scope.schedule(schedule_id, for_update=True)
        data = _parse(ScheduleUpdateInput, request.data).validated_data
        if_match_check(request, schedule.version, required=True)
        schedule = scheduling.schedule_update(
            schedule_id=schedule.pk, expected_version=schedule.version, changes=data
        )
        return _with_etag(Response(ScheduleOutput(schedule).data), schedule.version)


class TemplatesSetApi(FacilityApi):
    """Replace the weekly templates of a schedule (If-Match required) and generate their slots up to
    `generate_until` (default: the service's horizon). Times are Europe/Warsaw wall-clock `HH:MM`."""

    sends_etag = True
    required_scope = "schedules:write"

    @extend_schema(
        operation_id="schedules_templates_set",
        tags=["schedules"],
        summary="Replace the weekly templates and generate slots (If-Match required)",
        request=TemplatesSetInput,
        parameters=[IF_MATCH_PARAMETER, IDEMPOTENCY_PARAMETER],
        responses=responses({200: TemplatesSetOutput}, (*WRITE_ERRORS, 412, 428)),
        examples=[
            OpenApiExample(
                "mornings",
                request_only=True,
                value={
                    "templates": [
                        {
                            "weekday": 0,
                            "start_time": "08:00",
                            "end_time": "12:00",
                            "slot_minutes": 20,
                            "valid_from": "2026-09-01",
                        }
                    ]
                },
            )
        ],
    )
    def put(self, request: Any, schedule_id: int) -> Response:
        # The row lock (inside the request transaction) serialises writers; the version check
        # refuses a writer that read an older version.
        schedule = self.scope.schedule(schedule_id, for_update=True)
        data = _parse(TemplatesSetInput, request.data).validated_data
        if_match_check(request, schedule.version, required=True)
        until = data.get("generate_until")
        if until is not None and until > timezone.localdate() + dt.timedelta(days=730):
            raise DomainError("generate_until_too_far", field="generate_until")
        if until is not None and until < timezone.localdate():
            # Issue 17: a past day answered 200 with slots_created 0 and no hint why.
            raise serializers.ValidationError({"generate_until": [text("day_in_past")]})
        scheduling.template_set(schedule=schedule, templates=data["templates"])
        created = scheduling.schedule_generate_slots(schedule=schedule, until=until)
        schedule = self.scope.schedule(schedule.pk)
        body = TemplatesSetOutput({"schedule": schedule, "slots_created": created}).data
        return _with_etag(Response(body), schedule.version)


class SlotsPublishApi(FacilityApi):
    required_scope = "schedules:write"

    @extend_schema(
        operation_id="schedules_slots_publish",
        tags=["schedules"],
        summary="Publish explicit slots (up to 20,000 per request; all or nothing)",
        description="Identical slots already published are skipped, so a retried publication is harmless. "
        "A slot in the past, end not after start, or an overlap refuses the whole request.",
        request=SlotsPublishInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({201: SlotsPublishOutput}, WRITE_ERRORS),
        examples=[
            OpenApiExample(
                "two slots",
                request_only=True,
                value={
                    "slots": [
                        {
                            "start": "2026-09-01T08:00:00+02:00",
                            "end": "2026-09-01T08:20:00+02:00",
                            "kind": "first",
                        },
                        {"start": "2026-09-01T08:20:00+02:00", "end": "2026-09-01T08:40:00+02:00"},
                    ]
                },
            )
        ],
    )
    def post(self, request: Any, schedule_id: int) -> Response:
        schedule = self.scope.schedule(schedule_id)
        slots = _parse(SlotsPublishInput, request.data).validated_data["slots"]
        created = scheduling.slots_publish(schedule=schedule, slots=slots)
        return Response({"created": created, "skipped": len(slots) - created}, status=201)


class ScheduleCloseDayApi(FacilityApi):
    """Close one day of a schedule (holiday, closure): its free slots are withdrawn and its bookings
    cancelled with the reason given, every patient keeping their place."""

    required_scope = "schedules:write"

    @extend_schema(
        operation_id="schedules_close_day",
        tags=["schedules"],
        summary="Close a day: free slots withdrawn, bookings cancelled (patients keep their place)",
        request=DayInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({200: DayOutput}, WRITE_ERRORS),
    )
    def post(self, request: Any, schedule_id: int) -> Response:
        schedule = self.scope.schedule(schedule_id)
        data = _parse(DayInput, request.data).validated_data
        from apps.booking.services import schedule_close_day

        result = schedule_close_day(schedule=schedule, day=data["day"], reason_code=data["reason_code"])
        return Response(DayOutput(result).data)


# --- slots ----------------------------------------------------------------------------------------


class SlotListApi(FacilityApi):
    """Slots of your facility by day window, service, schedule and status, cursor pagination."""

    required_scope = "schedules:read"

    @extend_schema(
        operation_id="slots_list",
        tags=["slots"],
        summary="Your slots (cursor pagination)",
        parameters=[SlotQuery],
        responses=responses({200: SlotPage}, READ_ERRORS),
    )
    def get(self, request: Any) -> Response:
        query = _parse(SlotQuery, request.query_params)
        rows, next_cursor = self.scope.slot_list(
            **query.window(),
            status=query.validated_data.get("status"),
            schedule_id=query.validated_data.get("schedule_id"),
        )
        return Response({"results": SlotOutput(rows, many=True).data, "next": next_cursor})


class SlotBlockApi(FacilityApi):
    """Block a free slot (it can no longer be booked). Blocking a blocked slot is harmless."""

    required_scope = "schedules:write"

    @extend_schema(
        operation_id="slots_block",
        tags=["slots"],
        summary="Block a free slot",
        request=SlotBlockInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({200: SlotOutput}, WRITE_ERRORS),
        examples=[
            OpenApiExample(
                "blocked",
                value={**example_of(SlotOutput), "status": "blocked"},
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def post(self, request: Any, slot_id: int) -> Response:
        slot = self.scope.slot(slot_id)
        data = _parse(SlotBlockInput, request.data).validated_data
        slot = scheduling.slot_block(slot=slot, reason=data["reason"])
        return Response(SlotOutput(slot).data)


class SlotUnblockApi(FacilityApi):
    """Make a blocked slot free again; the waiting list is offered it."""

    required_scope = "schedules:write"

    @extend_schema(
        operation_id="slots_unblock",
        tags=["slots"],
        summary="Unblock a blocked slot",
        request=EmptyInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({200: SlotOutput}, WRITE_ERRORS),
    )
    def post(self, request: Any, slot_id: int) -> Response:
        slot = self.scope.slot(slot_id)
        _parse(EmptyInput, request.data)
        slot = scheduling.slot_unblock(slot=slot)
        return Response(SlotOutput(slot).data)


__all__ = ["PROBLEMS", "OpenApiTypes"]
