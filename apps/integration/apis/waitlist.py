"""The central waiting list (Poczekalnia) on a facility's behalf: put a patient on it, read the
entry with its place in the national queue, remove it.

An entry is the patient's `booking.Registration` in state `waiting`; the queue, its order and the
allocation of freed slots are the booking core's (`apps.booking.services.waitlist`). A facility sees
only the entries it registered (`FacilityScope.waitlist_entries`): any other id is 404. When the list
books a slot for the entry, the booking reaches the slot's facility through the changes feed and
webhooks (`appointment.allocated`), as every allocation does.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.booking.models import Appointment, Category, Registration
from apps.booking.selectors import waitlist_position
from apps.patients.models import PatientEntitlement

from ..services import ShownEntitlement, WaitlistPreferences, waitlist_entry_create, waitlist_entry_leave
from .base import (
    IDEMPOTENCY_PARAMETER,
    READ_ERRORS,
    WRITE_ERRORS,
    FacilityApi,
    StrictSerializer,
    example,
    example_of,
    responses,
)
from .bookings import (
    PATIENT_HELP,
    BookingOutput,
    PatientInput,
    PatientOutput,
    ReferralOutput,
    confirmed_patient,
)
from .schedules import _parse


class WaitlistPreferencesInput(StrictSerializer):
    date_from = serializers.DateField(required=False, allow_null=True, help_text="First acceptable day")
    date_to = serializers.DateField(required=False, allow_null=True, help_text="Last acceptable day")
    voivodeship = serializers.RegexField(
        r"^[0-9]{2}$", required=False, allow_null=True, help_text="TERYT code, e.g. 14 (mazowieckie)"
    )
    locality = serializers.RegexField(
        r"^[0-9]{7}$", required=False, allow_null=True, help_text="SIMC code, e.g. 9140007 (Warszawa)"
    )
    max_distance_km = serializers.IntegerField(
        min_value=1, max_value=1000, required=False, allow_null=True, help_text="From `locality`"
    )
    facility = serializers.CharField(
        max_length=32, required=False, allow_null=True, help_text="NFZ code of a preferred facility"
    )
    practitioner = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="A practitioner id (of the preferred facility; of yours if none is named)",
    )


class ShownEntitlementInput(StrictSerializer):
    code = serializers.CharField(max_length=32, help_text="A code from GET /api/v1/entitlements")
    document = serializers.CharField(
        max_length=100, help_text="The document the patient showed (kind and number)"
    )
    valid_from = serializers.DateField()
    valid_to = serializers.DateField(required=False, allow_null=True)


class WaitlistJoinInput(StrictSerializer):
    pesel = serializers.CharField(
        max_length=11, min_length=11, help_text="The patient's PESEL (in the body only)"
    )
    service = serializers.CharField(max_length=32, help_text="A service code from GET /api/v1/services")
    patient = PatientInput(required=False, help_text=PATIENT_HELP)
    referral_number = serializers.CharField(max_length=44, required=False, allow_null=True)
    referral_code = serializers.RegexField(r"^[0-9]{4}$", required=False, allow_null=True)
    category = serializers.ChoiceField(
        choices=Category.choices,
        required=False,
        allow_null=True,
        help_text="Medical category where the e-referral does not carry it (urgent before stable)",
    )
    preferences = WaitlistPreferencesInput(required=False)
    entitlement = ShownEntitlementInput(
        required=False, help_text="An out-of-turn entitlement shown at the desk (served first)"
    )


class WaitlistLeaveInput(StrictSerializer):
    pass


class WaitlistPreferencesOutput(serializers.Serializer):
    date_from = serializers.DateField(allow_null=True)
    date_to = serializers.DateField(allow_null=True)
    voivodeship = serializers.CharField(source="voivodeship_id", allow_null=True)
    locality = serializers.CharField(source="locality.simc", allow_null=True, default=None)
    max_distance_km = serializers.IntegerField(allow_null=True)
    facility = serializers.CharField(source="facility.nfz_code", allow_null=True, default=None)
    practitioner = serializers.IntegerField(source="practitioner_id", allow_null=True)


class ShownEntitlementOutput(serializers.Serializer):
    code = serializers.CharField(source="entitlement.code")
    document = serializers.CharField()
    valid_from = serializers.DateField()
    valid_to = serializers.DateField(allow_null=True)


class WaitlistAllocationOutput(serializers.Serializer):
    booking_id = serializers.IntegerField(
        allow_null=True, help_text="Set when the slot is at your facility (GET /api/v1/bookings/{id})"
    )
    facility = serializers.CharField(help_text="NFZ code of the slot's facility")
    start = serializers.DateTimeField()
    status = serializers.CharField()


@example(
    {
        "id": 77,
        "service": "KARDIO_1",
        "status": "waiting",
        "position": 3,
        "category": "urgent",
        "joined_at": "2026-12-01T10:30:00+01:00",
        "closed_reason": "",
        "preferences": {
            "date_from": None,
            "date_to": "2027-03-31",
            "voivodeship": "14",
            "locality": "9140007",
            "max_distance_km": 30,
            "facility": None,
            "practitioner": None,
        },
        "referral": {"number": "REF0000000001", "status": "registered"},
        "entitlement": {
            "code": "ZHDK",
            "document": "legitymacja ZHDK nr 123/2019",
            "valid_from": "2019-06-01",
            "valid_to": None,
        },
        "allocation": None,
        "patient": example_of(BookingOutput)["patient"],
    }
)
class WaitlistEntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    service = serializers.CharField(source="service.code")
    status = serializers.ChoiceField(
        choices=Registration.Status.choices,
        help_text="waiting; booked (the list gave the patient a slot: see `allocation`); closed",
    )
    position = serializers.IntegerField(allow_null=True, help_text="1-based place in the national queue")
    category = serializers.ChoiceField(choices=Category.choices)
    joined_at = serializers.DateTimeField()
    closed_reason = serializers.CharField(allow_blank=True)
    preferences = WaitlistPreferencesOutput(source="*")
    referral = ReferralOutput(allow_null=True)
    entitlement = ShownEntitlementOutput(source="shown_entitlement", allow_null=True)
    allocation = WaitlistAllocationOutput(allow_null=True)
    patient = PatientOutput()


def _present(registration: Registration, facility_id: int) -> dict[str, Any]:
    """The entry as the facility sees it: place in the queue while waiting, the booking once given."""
    registration.position = (  # type: ignore[attr-defined]
        waitlist_position(registration=registration)
        if registration.status == Registration.Status.WAITING
        else None
    )
    registration.shown_entitlement = (  # type: ignore[attr-defined]
        PatientEntitlement.objects.filter(
            patient_id=registration.patient_id, entitlement=registration.entitlement
        )
        .select_related("entitlement")
        .order_by("-valid_from")
        .first()
        if registration.entitlement_id
        else None
    )
    allocation = None
    if registration.status == Registration.Status.BOOKED:
        appointment = (
            Appointment.objects.filter(registration=registration, status__in=("booked", "confirmed"))
            .select_related("facility")
            .first()
        )
        if appointment is not None:
            allocation = {
                "booking_id": appointment.pk if appointment.facility_id == facility_id else None,
                "facility": appointment.facility.nfz_code,
                "start": appointment.start,
                "status": appointment.status,
            }
    registration.allocation = allocation  # type: ignore[attr-defined]
    return WaitlistEntryOutput(registration).data


class WaitlistApi(FacilityApi):
    """Responses carry personal data: every one is recorded in the append-only access log."""

    def respond(self, request: Any, registration: Registration, status: int = 200) -> Response:
        self.access_record(request, [registration.patient_id])
        return Response(_present(registration, self.principal.facility.pk), status=status)


class WaitlistJoinApi(WaitlistApi):
    sends_location = True
    required_scope = "waitlist:write"

    @extend_schema(
        operation_id="waitlist_join",
        tags=["waiting list"],
        summary="Put a patient on the central waiting list (Poczekalnia)",
        description="When nothing suits the patient now: one national queue per service, served in "
        "order of out-of-turn entitlement, then medical category (urgent before stable), then time of "
        "joining. CeR keeps searching and books the first matching slot that frees up or is "
        "published. The same rules as a booking apply (scope, eligibility, e-referral, one active "
        "registration per patient and service); the e-referral is held by the entry. Send `patient` "
        "for a person CeR has never seen, `entitlement` with the document the patient showed. Send an "
        "Idempotency-Key: a retried request never creates a second entry.",
        request=WaitlistJoinInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({201: WaitlistEntryOutput}, WRITE_ERRORS),
        examples=[
            OpenApiExample(
                "first cardiology visit with an e-referral",
                request_only=True,
                value={
                    "pesel": "44051401359",
                    "service": "KARDIO_1",
                    "referral_number": "REF0000000001",
                    "referral_code": "1234",
                    "category": "urgent",
                    "preferences": {"voivodeship": "14", "date_to": "2027-03-31"},
                },
            ),
            OpenApiExample(
                "new patient with an out-of-turn entitlement",
                request_only=True,
                value={
                    "pesel": "58030207708",
                    "service": "MAMMO_SCR",
                    "patient": {"first_name": "Maria", "last_name": "Wiśniewska", "phone": "+48600100200"},
                    "preferences": {"locality": "9140007", "max_distance_km": 30},
                    "entitlement": {
                        "code": "ZHDK",
                        "document": "legitymacja ZHDK nr 123/2019",
                        "valid_from": "2019-06-01",
                    },
                },
            ),
        ],
    )
    def post(self, request: Any) -> Response:
        data = _parse(WaitlistJoinInput, request.data).validated_data
        preferences = data.get("preferences") or {}
        shown = data.get("entitlement")
        registration = waitlist_entry_create(
            facility=self.principal.facility,
            pesel=data["pesel"],
            confirmed=confirmed_patient(data.get("patient")),
            service_code=data["service"],
            referral_number=data.get("referral_number"),
            referral_code=data.get("referral_code"),
            category=data.get("category"),
            preferences=WaitlistPreferences(**preferences),
            entitlement=ShownEntitlement(**shown) if shown else None,
        )
        registration = self.scope.waitlist_entry(registration.pk)
        response = self.respond(request, registration, status=201)
        response["Location"] = f"/api/v1/waitlist/{registration.pk}"
        return response


class WaitlistDetailApi(WaitlistApi):
    """One waiting-list entry you registered, with its state and the patient's position in the queue."""

    required_scope = "waitlist:read"

    @extend_schema(
        operation_id="waitlist_retrieve",
        tags=["waiting list"],
        summary="One entry you registered, with its place in the queue",
        responses=responses({200: WaitlistEntryOutput}, READ_ERRORS),
        examples=[
            OpenApiExample("waiting", response_only=True, value=example_of(WaitlistEntryOutput)),
            OpenApiExample(
                "booked by the list",
                response_only=True,
                value={
                    **example_of(WaitlistEntryOutput),
                    "status": "booked",
                    "position": None,
                    "allocation": {
                        "booking_id": 458,
                        "facility": "14/DEMO/KARDIO",
                        "start": "2027-01-12T08:40:00+01:00",
                        "status": "booked",
                    },
                },
            ),
        ],
    )
    def get(self, request: Any, entry_id: int) -> Response:
        return self.respond(request, self.scope.waitlist_entry(entry_id))


class WaitlistLeaveApi(WaitlistApi):
    required_scope = "waitlist:write"

    @extend_schema(
        operation_id="waitlist_leave",
        tags=["waiting list"],
        summary="Remove an entry you registered (its e-referral is freed)",
        description="Only a waiting entry can be removed; one the list has already booked is "
        "`409 waitlist_entry_not_waiting` (cancel that booking instead).",
        request=WaitlistLeaveInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({200: WaitlistEntryOutput}, WRITE_ERRORS),
        examples=[
            OpenApiExample(
                "left",
                response_only=True,
                status_codes=["200"],
                value={
                    **example_of(WaitlistEntryOutput),
                    "status": "closed",
                    "position": None,
                    "closed_reason": "left_waitlist",
                    "referral": {"number": "REF0000000001", "status": "issued"},
                },
            )
        ],
    )
    def post(self, request: Any, entry_id: int) -> Response:
        registration = self.scope.waitlist_entry(entry_id)
        _parse(WaitlistLeaveInput, request.data)
        waitlist_entry_leave(registration=registration, facility=self.principal.facility)
        return self.respond(request, self.scope.waitlist_entry(entry_id))
