"""Bookings (appointments) of the caller's facility: reads (audited), desk bookings and transitions."""

from __future__ import annotations

import contextlib
from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.booking import services as booking
from apps.booking.models import Appointment
from apps.patients import registry
from apps.patients.models import Referral

from ..selectors import patient_by_pesel_read, patient_from_read
from ..services import ConfirmedPatient, patient_for_facility
from .base import (
    IDEMPOTENCY_PARAMETER,
    IF_MATCH_DESCRIPTION,
    IF_NONE_MATCH_PARAMETER,
    NOT_MODIFIED,
    READ_ERRORS,
    WRITE_ERRORS,
    FacilityApi,
    StrictSerializer,
    etag,
    example,
    example_of,
    if_match_check,
    not_modified,
    page_example,
    responses,
)
from .schedules import DayInput, DayOutput, WindowQuery, _parse

IF_MATCH_PARAMETER = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description="Optional for bookings. " + IF_MATCH_DESCRIPTION,
)

API_CHANNELS = (Appointment.Channel.DESK, Appointment.Channel.PHONE, Appointment.Channel.EMAIL)


# The refusals of each booking operation (the schema lists them per status; docs/errors.md explains).
RULE_CODES = (
    "slot_in_past",
    "slot_not_free",
    "hold_not_yours",
    "active_registration_exists",
    "referral_required",
    "referral_invalid",
    "referral_used",
    "referral_expired",
    "referral_wrong_service",
    "referral_registered",
    "referral_locked",
    "slot_kind_mismatch",
    "not_eligible_sex",
    "not_eligible_age",
    "not_eligible_interval",
    "service_not_covered",
)
BOOK_CODES = ("slot_not_found", "patient_not_found", "invalid_pesel", *RULE_CODES)
CANCEL_CODES = ("booking_not_found", "booking_state", "unknown_reason")
RESCHEDULE_CODES = ("booking_not_found", "booking_state", "slot_not_found", *RULE_CODES)


class PatientOutput(serializers.Serializer):
    """The least a desk needs to recognise the patient it booked (issue 15: phone and e-mail were
    returned for any PESEL a facility typed in). Birth date and sex follow from the PESEL."""

    pesel = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()


class ReferralOutput(serializers.Serializer):
    number = serializers.CharField()
    status = serializers.ChoiceField(
        choices=Referral.Status.choices,
        help_text="issued: free to register; registered: held by one registration (this one while it "
        "is live); realised: spent by the visit",
    )


@example(
    {
        "id": 456,
        "slot_id": 123,
        "service": "KARDIO_1",
        "start": "2027-01-05T08:00:00+01:00",
        "status": "booked",
        "channel": "desk",
        "confirm_by": None,
        "confirmed_at": None,
        "reason": None,
        "rescheduled_to": None,
        "version": 1,
        "referral": {"number": "REF0000000001", "status": "registered"},
        "patient": {"pesel": "44051401359", "first_name": "Jan", "last_name": "Kowalski"},
    }
)
class BookingOutput(serializers.Serializer):
    id = serializers.IntegerField()
    slot_id = serializers.IntegerField()
    service = serializers.CharField(source="service.code")
    start = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=Appointment.Status.choices)
    channel = serializers.ChoiceField(choices=Appointment.Channel.choices)
    confirm_by = serializers.DateTimeField(allow_null=True)
    confirmed_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(source="reason.code", allow_null=True, default=None)
    rescheduled_to = serializers.IntegerField(source="rescheduled_to_id", allow_null=True)
    version = serializers.IntegerField()
    referral = ReferralOutput(source="registration.referral", allow_null=True, read_only=True)
    patient = PatientOutput()


_WHEN = serializers.DateTimeField()


def _when(value: Any) -> str | None:
    return None if value is None else _WHEN.to_representation(value)


def booking_output(appointment: Appointment) -> dict[str, Any]:
    """`BookingOutput(appointment).data`, built directly: a serializer instance deep-copies its declared
    fields and those of its nested serializers on every use, a measurable share of a booking request's
    CPU (docs/performance.md). `BookingOutput` stays the schema; a test keeps the two equal."""
    a = appointment
    referral = a.registration.referral
    patient = a.patient
    return {
        "id": a.pk,
        "slot_id": a.slot_id,
        "service": str(a.service.code),
        "start": _when(a.start),
        "status": str(a.status),
        "channel": str(a.channel),
        "confirm_by": _when(a.confirm_by),
        "confirmed_at": _when(a.confirmed_at),
        "reason": str(a.reason.code) if a.reason_id is not None and a.reason is not None else None,
        "rescheduled_to": a.rescheduled_to_id,
        "version": a.version,
        "referral": None
        if referral is None
        else {"number": str(referral.number), "status": str(referral.status)},
        "patient": {
            "pesel": str(patient.pesel),
            "first_name": str(patient.first_name),
            "last_name": str(patient.last_name),
        },
    }


@example(page_example(example_of(BookingOutput)))
class BookingPage(serializers.Serializer):
    results = BookingOutput(many=True)
    next = serializers.CharField(allow_null=True)


class BookingQuery(WindowQuery):
    status = serializers.ChoiceField(choices=Appointment.Status.choices, required=False)


class PatientInput(StrictSerializer):
    """A person CeR may not know yet, as the facility confirmed them (ID card at the desk, or asked on
    the phone). Sex and date of birth come from the PESEL."""

    first_name = serializers.CharField(max_length=registry.NAME_MAX)
    last_name = serializers.CharField(max_length=registry.NAME_MAX)
    phone = serializers.RegexField(
        registry.PHONE_PATTERN,
        max_length=32,
        required=False,
        allow_blank=True,
        help_text="e.g. +48 600 100 200",
    )
    email = serializers.EmailField(max_length=registry.EMAIL_MAX, required=False, allow_blank=True)


def confirmed_patient(data: dict[str, Any] | None) -> ConfirmedPatient | None:
    if data is None:
        return None
    return ConfirmedPatient(
        first_name=data["first_name"],
        last_name=data["last_name"],
        phone=data.get("phone", ""),
        email=data.get("email", ""),
    )


PATIENT_HELP = (
    "Only for a PESEL CeR does not know yet: the person as your facility confirmed them. The patient is "
    "then created (source: your facility); for a known PESEL only a missing phone or e-mail is filled in."
)


class BookingCreateInput(StrictSerializer):
    slot_id = serializers.IntegerField(min_value=1)
    pesel = serializers.CharField(
        max_length=11, min_length=11, help_text="The patient's PESEL (in the body only)"
    )
    channel = serializers.ChoiceField(choices=[(c.value, c.label) for c in API_CHANNELS])
    referral_number = serializers.CharField(max_length=44, required=False, allow_null=True)
    referral_code = serializers.RegexField(r"^[0-9]{4}$", required=False, allow_null=True)
    patient = PatientInput(required=False, help_text=PATIENT_HELP)


# The everyday desk booking body, validated without a serializer instance (issue 19): `BookingCreateInput`
# deep-copies its declared fields, the nested `patient` serializer's included, every time it is made, the
# largest single Python item of a booking request and of every refused one. Only a body the serializer
# is certain to accept, and to give back unchanged, is taken here; any other (a `patient`, a referral
# number typed with spaces or hyphens, a string slot id, a missing, unknown, empty or hostile field...)
# goes to the serializer, which stays the one definition of the field rules, their refusals and the
# OpenAPI schema. tests/integration/test_booking_input.py runs both on valid and hostile bodies.
_BOOK_REQUIRED = frozenset({"slot_id", "pesel", "channel"})
_BOOK_PLAIN = _BOOK_REQUIRED | {"referral_number", "referral_code"}
_BOOK_CHANNELS = frozenset(str(c.value) for c in API_CHANNELS)
_ID_MAX = 2**63 - 1  # a bigint; the serializer takes any larger int too, so those go to it


def _ascii_of(value: Any, sizes: range, *, digits: bool) -> bool:
    """An ASCII string of digits (or letters and digits) of a length in `sizes`: no whitespace to trim,
    no NUL, no surrogate, nothing a CharField or its validators would change or refuse."""
    return (
        type(value) is str
        and len(value) in sizes
        and value.isascii()
        and (value.isdigit() if digits else value.isalnum())
    )


def booking_input_plain(data: Any) -> dict[str, Any] | None:
    """`BookingCreateInput(data=data).validated_data` for a body in the plainest form (JSON integers and
    ASCII strings, nothing to trim or convert), else None: the caller then asks the serializer."""
    if type(data) is not dict or not _BOOK_REQUIRED <= data.keys() <= _BOOK_PLAIN:
        return None
    slot_id, pesel, channel = data["slot_id"], data["pesel"], data["channel"]
    if type(slot_id) is not int or not 1 <= slot_id <= _ID_MAX:
        return None
    if not _ascii_of(pesel, range(11, 12), digits=True):
        return None
    if type(channel) is not str or channel not in _BOOK_CHANNELS:
        return None
    validated: dict[str, Any] = {"slot_id": slot_id, "pesel": pesel, "channel": channel}
    if "referral_number" in data:
        number = data["referral_number"]
        if number is not None and not _ascii_of(number, range(1, 45), digits=False):
            return None
        validated["referral_number"] = number
    if "referral_code" in data:
        code = data["referral_code"]
        if code is not None and not _ascii_of(code, range(4, 5), digits=True):
            return None
        validated["referral_code"] = code
    return validated


def booking_input(data: Any) -> dict[str, Any]:
    """The validated booking body: the plain form directly, anything else through the serializer (its
    answers, refusals included, unchanged)."""
    plain = booking_input_plain(data)
    if plain is not None:
        return plain
    return _parse(BookingCreateInput, data).validated_data  # type: ignore[no-any-return]


@example({"reason_code": "DOCTOR_ILLNESS"})
class CancelInput(StrictSerializer):
    reason_code = serializers.CharField(
        max_length=32,
        help_text="A code from /reason-codes. facility_cancel (the facility cannot see the patient): the "
        "patient keeps their place, rebooked or back on the waiting list. patient_cancel (PATIENT_REQUEST: "
        "the patient asked at the desk or by phone): the patient's own cancellation, the registration ends "
        "and the e-referral is freed.",
    )


@example({"slot_id": 124})
class RescheduleInput(StrictSerializer):
    slot_id = serializers.IntegerField(min_value=1, help_text="A free slot of your facility, same service")


class OutcomeInput(StrictSerializer):
    outcome = serializers.ChoiceField(choices=[("attended", "attended"), ("no_show", "no_show")])


class ConfirmInput(StrictSerializer):
    pass


class BookingApi(FacilityApi):
    """Responses carry personal data: every one is recorded in the append-only access log."""

    sends_etag = True  # one booking's answer carries its ETag

    def respond(
        self, request: Any, appointments: list[Appointment], body: Any, status: int = 200
    ) -> Response:
        self.access_record(request, [a.patient_id for a in appointments])
        response = Response(body, status=status)
        if len(appointments) == 1 and "results" not in body:  # one booking: its ETag (If-Match)
            response["ETag"] = etag(appointments[0].version)
        return response

    def reload(self, appointment: Appointment) -> Appointment:
        return self.scope.appointment(appointment.pk, start=appointment.start)

    def changing(self, request: Any, booking_id: int) -> Appointment:
        """The booking a transition changes. With If-Match its row is locked (in the request's
        transaction) and its version compared, so a desk acting on an old read gets 412."""
        appointment = self.scope.appointment(booking_id, for_update="If-Match" in request.headers)
        if_match_check(request, appointment.version, required=False)
        return appointment


class BookingListApi(BookingApi):
    """Bookings at your facility, ordered by start, filtered by day window, service and status. Each read
    is recorded in the access log (the answers carry personal data)."""

    sends_etag = False
    required_scope = "bookings:read"

    @extend_schema(
        operation_id="bookings_list",
        tags=["bookings"],
        summary="Your bookings (cursor pagination)",
        parameters=[BookingQuery],
        responses=responses({200: BookingPage}, READ_ERRORS, codes=("invalid_cursor",)),
    )
    def get(self, request: Any) -> Response:
        query = _parse(BookingQuery, request.query_params)
        rows, next_cursor = self.scope.appointment_list(
            **query.window(), status=query.validated_data.get("status")
        )
        return self.respond(
            request, rows, {"results": BookingOutput(rows, many=True).data, "next": next_cursor}
        )


class BookingDetailApi(BookingApi):
    """One booking of your facility with its patient, referral state and version. Send its ETag in If-None-
    Match to get 304 while it is unchanged, or in If-Match on a transition."""

    required_scope = "bookings:read"

    @extend_schema(
        operation_id="bookings_retrieve",
        tags=["bookings"],
        summary="One booking",
        parameters=[IF_NONE_MATCH_PARAMETER],
        responses={
            **responses({200: BookingOutput}, READ_ERRORS, codes=("booking_not_found",)),
            304: NOT_MODIFIED,
        },
    )
    def get(self, request: Any, booking_id: int) -> Response:
        appointment = self.scope.appointment(booking_id)
        unchanged = not_modified(request, appointment.version)
        if unchanged is not None:
            return unchanged
        return self.respond(request, [appointment], booking_output(appointment))


class BookingCreateApi(BookingApi):
    sends_location = True
    required_scope = "bookings:write"
    data: dict[str, Any]

    def refuse_early(self, request: Any) -> None:
        # Validated once, here, before the Idempotency-Key is claimed; a slot already taken ends the
        # request without a transaction (most lost races of a busy day).
        self.data = booking_input(request.data)
        booking.slot_refuse_if_taken(slot_id=self.data["slot_id"], facility_id=self.principal.facility.pk)

    def claim_read(self, request: Any) -> tuple[str, list[Any]] | None:
        # The patient, read in the key's claim (the read `patient_for_facility` makes first).
        if self.data.get("patient") is not None:
            return None
        return patient_by_pesel_read(pesel=self.data["pesel"])

    @extend_schema(
        operation_id="bookings_create",
        tags=["bookings"],
        summary="Register a booking taken at the desk, by phone or e-mail",
        description="The same rules as the web apply: e-referral, screening eligibility, one active "
        "registration per patient and service in the whole country. Send an Idempotency-Key: a "
        "retried request never creates a second booking. For a person CeR has never seen, send "
        "`patient` (first and last name as confirmed at your desk, optional phone and e-mail): the "
        "patient is created with your facility as the source. Without it an unknown PESEL is "
        "`404 patient_not_found`.",
        request=BookingCreateInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({201: BookingOutput}, WRITE_ERRORS, codes=BOOK_CODES),
        examples=[
            OpenApiExample(
                "desk booking",
                request_only=True,
                value={
                    "slot_id": 123,
                    "pesel": "44051401359",
                    "channel": "desk",
                    "referral_number": "REF0000000001",
                    "referral_code": "1234",
                },
            ),
            OpenApiExample(
                "desk booking for a new patient",
                request_only=True,
                value={
                    "slot_id": 124,
                    "pesel": "70051712308",
                    "channel": "desk",
                    "patient": {
                        "first_name": "Anna",
                        "last_name": "Nowak",
                        "phone": "+48600100200",
                        "email": "anna.nowak@example.org",
                    },
                },
            ),
        ],
    )
    def post(self, request: Any) -> Response:
        data = self.data
        confirmed = confirmed_patient(data.get("patient"))
        # A person created here and a booking then refused go together (a savepoint, taken only when
        # a person is sent: the common desk booking pays nothing for it).
        with transaction.atomic() if confirmed else contextlib.nullcontext():
            patient = patient_for_facility(
                pesel=data["pesel"],
                confirmed=confirmed,
                facility=self.principal.facility,
                channel=data["channel"],
                found=None if self.claim_row is None or confirmed else patient_from_read(self.claim_row),
            )
            # `facility`: another facility's slot is simply not found. The booking comes back with
            # its slot, service and patient loaded, so the answer needs no second read.
            appointment = booking.appointment_book(
                slot_id=data["slot_id"],
                patient=patient,
                channel=data["channel"],
                referral_number=data.get("referral_number"),
                referral_code=data.get("referral_code"),
                facility=self.principal.facility,
            )
        response = self.respond(request, [appointment], booking_output(appointment), status=201)
        response["Location"] = f"/api/v1/bookings/{appointment.pk}"
        return response


class BookingCancelApi(BookingApi):
    required_scope = "bookings:write"

    @extend_schema(
        operation_id="bookings_cancel",
        tags=["bookings"],
        summary="Cancel a booking with a reason code",
        description="The reason's kind decides whose cancellation it is. A `facility_cancel` code (the "
        "facility cannot see the patient): the patient keeps their place, rebooked at the earliest matching "
        "slot or back on the waiting list. A `patient_cancel` code such as `PATIENT_REQUEST` (the patient "
        "asked at the desk or on the phone): the same as the patient cancelling on the web, the "
        "registration ends, the e-referral is freed and the slot returns to the pool. The event "
        "`appointment.cancelled` says `by` and `recorded_by`.",
        request=CancelInput,
        parameters=[IDEMPOTENCY_PARAMETER, IF_MATCH_PARAMETER],
        responses=responses({200: BookingOutput}, (*WRITE_ERRORS, 412), codes=CANCEL_CODES),
        examples=[
            OpenApiExample("the doctor is ill", request_only=True, value={"reason_code": "DOCTOR_ILLNESS"}),
            OpenApiExample(
                "the patient asked to cancel", request_only=True, value={"reason_code": "PATIENT_REQUEST"}
            ),
            OpenApiExample(
                "cancelled by the facility",
                response_only=True,
                status_codes=["200"],
                value={
                    **example_of(BookingOutput),
                    "status": "cancelled_by_facility",
                    "reason": "DOCTOR_ILLNESS",
                    "version": 2,
                },
            ),
        ],
    )
    def post(self, request: Any, booking_id: int) -> Response:
        appointment = self.changing(request, booking_id)
        data = _parse(CancelInput, request.data).validated_data
        appointment = booking.appointment_cancel_for_caller(
            appointment=appointment, reason_code=data["reason_code"]
        )
        appointment = self.reload(appointment)
        return self.respond(request, [appointment], booking_output(appointment))


class BookingRescheduleApi(BookingApi):
    """Move a live booking to another free slot of your facility, same service. The booking rules are
    judged again on the new slot's date; the old slot returns to the pool."""

    required_scope = "bookings:write"

    @extend_schema(
        operation_id="bookings_reschedule",
        tags=["bookings"],
        summary="Move a booking to another slot",
        request=RescheduleInput,
        parameters=[IDEMPOTENCY_PARAMETER, IF_MATCH_PARAMETER],
        responses=responses({200: BookingOutput}, (*WRITE_ERRORS, 412), codes=RESCHEDULE_CODES),
        examples=[
            OpenApiExample(
                "the new booking",
                response_only=True,
                status_codes=["200"],
                value={
                    **example_of(BookingOutput),
                    "id": 457,
                    "slot_id": 124,
                    "start": "2027-01-05T08:20:00+01:00",
                },
            )
        ],
    )
    def post(self, request: Any, booking_id: int) -> Response:
        appointment = self.changing(request, booking_id)
        data = _parse(RescheduleInput, request.data).validated_data
        self.scope.slot(data["slot_id"])
        new = booking.appointment_reschedule(appointment=appointment, new_slot_id=data["slot_id"])
        new = self.reload(new)
        return self.respond(request, [new], booking_output(new))


class BookingConfirmApi(BookingApi):
    """Confirm the visit for a patient who confirmed at the desk or by phone. Confirming twice is harmless;
    a booking that ended or whose visit started is refused."""

    required_scope = "bookings:write"

    @extend_schema(
        operation_id="bookings_confirm",
        tags=["bookings"],
        summary="Confirm on the patient's behalf",
        request=ConfirmInput,
        parameters=[IDEMPOTENCY_PARAMETER, IF_MATCH_PARAMETER],
        responses=responses(
            {200: BookingOutput},
            (*WRITE_ERRORS, 412),
            codes=("booking_not_found", "booking_state", "slot_in_past"),
        ),
        examples=[
            OpenApiExample(
                "confirmed",
                response_only=True,
                status_codes=["200"],
                value={
                    **example_of(BookingOutput),
                    "status": "confirmed",
                    "confirmed_at": "2026-12-29T10:15:00+01:00",
                    "version": 2,
                },
            )
        ],
    )
    def post(self, request: Any, booking_id: int) -> Response:
        appointment = self.changing(request, booking_id)
        _parse(ConfirmInput, request.data)
        appointment = self.reload(booking.appointment_confirm(appointment=appointment))
        return self.respond(request, [appointment], booking_output(appointment))


class BookingOutcomeApi(BookingApi):
    """After the visit has started: `attended` or `no_show`. This settles the booking and the e-referral; a
    no-show also counts for the patient's history."""

    required_scope = "outcomes:write"

    @extend_schema(
        operation_id="bookings_outcome",
        tags=["bookings"],
        summary="Report the outcome after the visit",
        request=OutcomeInput,
        parameters=[IDEMPOTENCY_PARAMETER, IF_MATCH_PARAMETER],
        responses=responses(
            {200: BookingOutput},
            (*WRITE_ERRORS, 412),
            codes=("booking_not_found", "booking_state", "outcome_too_early"),
        ),
        examples=[
            OpenApiExample("attended", request_only=True, value={"outcome": "attended"}),
            OpenApiExample(
                "the visit took place",
                response_only=True,
                status_codes=["200"],
                value={
                    **example_of(BookingOutput),
                    "status": "attended",
                    "version": 2,
                    "referral": {"number": "REF0000000001", "status": "realised"},
                },
            ),
        ],
    )
    def post(self, request: Any, booking_id: int) -> Response:
        appointment = self.changing(request, booking_id)
        data = _parse(OutcomeInput, request.data).validated_data
        appointment = booking.appointment_record_outcome(appointment=appointment, outcome=data["outcome"])
        appointment = self.reload(appointment)
        return self.respond(request, [appointment], booking_output(appointment))


class SessionCancelApi(BookingApi):
    """Cancel every booking of one day of a schedule with a facility reason: each patient keeps their place
    (rebooked at the earliest matching slot, or back on the waiting list)."""

    sends_etag = False
    required_scope = "bookings:write"

    @extend_schema(
        operation_id="schedules_cancel_session",
        tags=["bookings"],
        summary="Cancel a whole session (e.g. the doctor fell ill): every patient keeps their place",
        request=DayInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({200: DayOutput}, WRITE_ERRORS),
    )
    def post(self, request: Any, schedule_id: int) -> Response:
        schedule = self.scope.schedule(schedule_id)
        data = _parse(DayInput, request.data).validated_data
        result = booking.session_cancel_by_facility(
            schedule=schedule, day=data["day"], reason_code=data["reason_code"]
        )
        return Response(DayOutput(result).data)
