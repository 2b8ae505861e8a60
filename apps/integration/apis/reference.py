"""Reference data facility systems code against: service catalogue, reason codes, entitlements."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from ..auth import ANY_SCOPE
from ..selectors import entitlement_list, reason_code_list, service_catalogue
from .base import READ_ERRORS, FacilityApi, PageQuery, example, page_of, paginated, responses


@example(
    {
        "code": "KARDIO_1",
        "name_pl": "Pierwsza wizyta w poradni kardiologicznej",
        "name_en": "First visit, cardiology clinic",
        "specialty": "kardiologia",
        "kind": "visit",
        "referral_required": True,
        "cer_from": "2026-01-01",
        "obligatory_from": "2026-07-01",
        "slot_minutes": 20,
        "min_horizon_days": 30,
        "confirmation_required": True,
    }
)
class ServiceOutput(serializers.Serializer):
    code = serializers.CharField()
    name_pl = serializers.CharField()
    name_en = serializers.CharField()
    specialty = serializers.CharField()
    kind = serializers.CharField()
    referral_required = serializers.BooleanField()
    cer_from = serializers.DateField()
    obligatory_from = serializers.DateField()
    slot_minutes = serializers.IntegerField()
    min_horizon_days = serializers.IntegerField()
    confirmation_required = serializers.BooleanField()


@example(
    {
        "code": "PATIENT_REQUEST",
        "kind": "patient_cancel",
        "name_pl": "Rezygnacja na prośbę pacjenta",
        "name_en": "Cancelled at patient's request",
    }
)
class ReasonCodeOutput(serializers.Serializer):
    code = serializers.CharField()
    kind = serializers.CharField()
    name_pl = serializers.CharField()
    name_en = serializers.CharField()


@example(
    {
        "code": "ZHDK",
        "name_pl": "Zasłużony Honorowy Dawca Krwi",
        "name_en": "Honorary Blood Donor of Merit",
        "priority": 10,
        "legal_basis": "art. 47c ustawy z dnia 27 sierpnia 2004 r. o świadczeniach opieki zdrowotnej "
        "finansowanych ze środków publicznych",
    }
)
class EntitlementOutput(serializers.Serializer):
    code = serializers.CharField()
    name_pl = serializers.CharField()
    name_en = serializers.CharField()
    priority = serializers.IntegerField()
    legal_basis = serializers.CharField()


class ServiceListApi(FacilityApi):
    """The services bookable through CeR with their rules: e-referral required, slot length, publication
    horizon, confirmation."""

    required_scope = ANY_SCOPE

    @extend_schema(
        operation_id="services_list",
        tags=["reference"],
        summary="The CeR service catalogue",
        parameters=[PageQuery],
        responses=responses({200: page_of(ServiceOutput)}, (400, 401, 429)),
    )
    def get(self, request: Any) -> Response:
        return paginated(request, service_catalogue(), ServiceOutput)


class ReasonCodeListApi(FacilityApi):
    """Reason codes for cancellations (facility_cancel, patient_cancel), releases and non-attendance. A
    cancellation's reason kind decides whose cancellation it is."""

    required_scope = ANY_SCOPE

    @extend_schema(
        operation_id="reason_codes_list",
        tags=["reference"],
        summary="Cancellation, release and non-attendance reason codes",
        parameters=[PageQuery],
        responses=responses({200: page_of(ReasonCodeOutput)}, (400, 401, 429)),
    )
    def get(self, request: Any) -> Response:
        return paginated(request, reason_code_list(), ReasonCodeOutput)


class EntitlementListApi(FacilityApi):
    """Codes of the out-of-turn entitlements (e.g. honorary blood donors) with their priority and legal
    basis, for the waiting list."""

    required_scope = ANY_SCOPE

    @extend_schema(
        operation_id="entitlements_list",
        tags=["reference"],
        summary="Out-of-turn entitlement codes",
        parameters=[PageQuery],
        responses=responses({200: page_of(EntitlementOutput)}, (400, 401, 429)),
    )
    def get(self, request: Any) -> Response:
        return paginated(request, entitlement_list(), EntitlementOutput)


__all__ = ["READ_ERRORS", "EntitlementListApi", "ReasonCodeListApi", "ServiceListApi"]
