"""Reference data facility systems code against: service catalogue, reason codes, entitlements."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from ..auth import ANY_SCOPE
from ..selectors import entitlement_list, reason_code_list, service_catalogue
from .base import READ_ERRORS, FacilityApi, responses


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


class ReasonCodeOutput(serializers.Serializer):
    code = serializers.CharField()
    kind = serializers.CharField()
    name_pl = serializers.CharField()
    name_en = serializers.CharField()


class EntitlementOutput(serializers.Serializer):
    code = serializers.CharField()
    name_pl = serializers.CharField()
    name_en = serializers.CharField()
    priority = serializers.IntegerField()
    legal_basis = serializers.CharField()


class ServiceListApi(FacilityApi):
    required_scope = ANY_SCOPE

    @extend_schema(
        operation_id="services_list",
        tags=["reference"],
        summary="The CeR service catalogue",
        responses=responses({200: ServiceOutput(many=True)}, (401, 429)),
    )
    def get(self, request: Any) -> Response:
        return Response(ServiceOutput(service_catalogue(), many=True).data)


class ReasonCodeListApi(FacilityApi):
    required_scope = ANY_SCOPE

    @extend_schema(
        operation_id="reason_codes_list",
        tags=["reference"],
        summary="Cancellation, release and non-attendance reason codes",
        responses=responses({200: ReasonCodeOutput(many=True)}, (401, 429)),
    )
    def get(self, request: Any) -> Response:
        return Response(ReasonCodeOutput(reason_code_list(), many=True).data)


class EntitlementListApi(FacilityApi):
    required_scope = ANY_SCOPE

    @extend_schema(
        operation_id="entitlements_list",
        tags=["reference"],
        summary="Out-of-turn entitlement codes",
        responses=responses({200: EntitlementOutput(many=True)}, (401, 429)),
    )
    def get(self, request: Any) -> Response:
        return Response(EntitlementOutput(entitlement_list(), many=True).data)


__all__ = ["READ_ERRORS", "EntitlementListApi", "ReasonCodeListApi", "ServiceListApi"]
