"""Webhook subscriptions, their delivery log and redelivery on demand."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.core.errors import DomainError, text

from .. import egress
from ..events import EVENT_TYPES
from ..ratelimit import window_hit
from ..services import (
    webhook_delivery_retry,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_test_send,
)
from .base import (
    IDEMPOTENCY_PARAMETER,
    READ_ERRORS,
    WRITE_ERRORS,
    FacilityApi,
    PageQuery,
    StrictSerializer,
    example,
    example_of,
    page_of,
    paginated,
    responses,
)
from .schedules import _parse


class SubscriptionInput(StrictSerializer):
    url = serializers.URLField(max_length=500)
    event_types = serializers.ListField(
        child=serializers.RegexField(r"^[a-z_]+\.[a-z_]+$", max_length=64),
        required=False,
        default=list,
        max_length=50,
        help_text="Types from docs/events.md, e.g. appointment.booked; empty = every event of your facility",
    )

    def validate_event_types(self, value: list[str]) -> list[str]:
        # A misspelt type (appointment.canceled) would be accepted and never fire: refused instead.
        unknown = [t for t in value if t not in EVENT_TYPES]
        if unknown:
            raise serializers.ValidationError(
                text("unknown_event_type", value=", ".join(unknown), known=", ".join(EVENT_TYPES))
            )
        return value

    def validate_url(self, value: str) -> str:
        # The full check (resolving the name) runs in the view, after the rate limit.
        if not value.startswith("https://") and not getattr(settings, "CER_WEBHOOK_ALLOW_HTTP", False):
            raise serializers.ValidationError(text("https_only"))
        return value


def _target_checked(url: str) -> None:
    try:
        egress.target_check(url)
    except egress.TargetRefused as exc:
        ports = "/".join(map(str, settings.CER_WEBHOOK_PORTS))
        raise DomainError("webhook_target_refused", field="url", ports=ports, reason=exc.reason) from None


def _manage_rate_limited(principal: Any, action: str) -> None:
    """Subscriptions and redeliveries per client per hour: each makes our workers call out."""
    state = window_hit(
        key=f"cer:webhook-{action}:{principal.client.pk}",
        limit=int(settings.CER_WEBHOOK_MANAGE_RATE_LIMIT),
        window=3600,
    )
    if state.exceeded:
        raise DomainError(
            "rate_limited", limit=state.limit, reset=state.reset, headers={"Retry-After": str(state.reset)}
        )


@example(
    {
        "id": 1,
        "url": "https://his.example.org/cer/webhook",
        "event_types": ["appointment.booked", "appointment.cancelled"],
        "created_at": "2026-12-01T10:00:00+01:00",
    }
)
class SubscriptionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    event_types = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()


@example({**example_of(SubscriptionOutput), "secret": "whsec_3q2y0c9H5wJkTt0b1oZl9Qx4mV7nR2sP8aE6uD1fG0c"})
class SubscriptionCreatedOutput(SubscriptionOutput):
    secret = serializers.CharField(help_text="The signing secret: shown only in this response")


class AttemptOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    duration_ms = serializers.IntegerField()


@example(
    {
        "id": 42,
        "event_id": 1234,
        "event_type": "appointment.booked",
        "status": "delivered",
        "attempts": 1,
        "next_attempt_at": "2026-12-01T10:05:00+01:00",
        "last_status_code": 200,
        "last_error": "",
        "delivered_at": "2026-12-01T10:05:01+01:00",
        "log": [{"at": "2026-12-01T10:05:01+01:00", "status_code": 200, "error": "", "duration_ms": 84}],
    }
)
class DeliveryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.IntegerField()
    event_type = serializers.CharField(source="event.type")
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    log = AttemptOutput(many=True)


class EmptyInput(StrictSerializer):
    pass


class WebhookListApi(FacilityApi):
    """Your facility's active webhook subscriptions (the secrets are never shown again)."""

    required_scope = "webhooks:manage"

    @extend_schema(
        operation_id="webhooks_list",
        tags=["webhooks"],
        summary="Your webhook subscriptions",
        parameters=[PageQuery],
        responses=responses({200: page_of(SubscriptionOutput)}, READ_ERRORS),
    )
    def get(self, request: Any) -> Response:
        return paginated(request, self.scope.subscriptions(), SubscriptionOutput)


class WebhookCreateApi(FacilityApi):
    """Subscribe an https URL to event types from docs/events.md (empty: all). The signing secret is in
    this answer only. An unknown type is refused."""

    required_scope = "webhooks:manage"

    @extend_schema(
        operation_id="webhooks_create",
        tags=["webhooks"],
        summary="Subscribe a URL (the signing secret is shown once)",
        request=SubscriptionInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({201: SubscriptionCreatedOutput}, WRITE_ERRORS),
        examples=[
            OpenApiExample(
                "bookings",
                request_only=True,
                value={
                    "url": "https://his.example.org/cer/webhook",
                    "event_types": ["appointment.booked", "appointment.cancelled"],
                },
            )
        ],
    )
    def post(self, request: Any) -> Response:
        data = _parse(SubscriptionInput, request.data).validated_data
        _manage_rate_limited(self.principal, "subscribe")
        _target_checked(data["url"])
        created = webhook_subscription_create(
            facility=self.principal.facility,
            client=self.principal.client,
            url=data["url"],
            event_types=data["event_types"],
        )
        body = {**SubscriptionOutput(created.subscription).data, "secret": created.secret}
        return Response(body, status=201)


class WebhookDeleteApi(FacilityApi):
    """Unsubscribe: pending deliveries of this subscription are not sent."""

    required_scope = "webhooks:manage"

    @extend_schema(
        operation_id="webhooks_destroy",
        tags=["webhooks"],
        summary="Unsubscribe",
        responses=responses({204: None}, READ_ERRORS),
    )
    def delete(self, request: Any, webhook_id: int) -> Response:
        webhook_subscription_delete(subscription=self.scope.subscription(webhook_id))
        return Response(status=204)


class WebhookDeliveryListApi(FacilityApi):
    """The delivery log of one subscription, newest first: status, attempts, your receiver's status codes."""

    required_scope = "webhooks:manage"

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        tags=["webhooks"],
        summary="The delivery log of a subscription, newest first",
        parameters=[PageQuery],
        responses=responses({200: page_of(DeliveryOutput)}, READ_ERRORS),
    )
    def get(self, request: Any, webhook_id: int) -> Response:
        subscription = self.scope.subscription(webhook_id)
        deliveries = (
            self.scope.deliveries()
            .filter(subscription=subscription)
            .select_related("event")
            .prefetch_related("log")
        )
        return paginated(request, deliveries, DeliveryOutput, newest_first=True)


class WebhookRedeliverApi(FacilityApi):
    """Deliver one event of the log again now (after fixing your receiver); the attempt counter starts
    over."""

    required_scope = "webhooks:manage"

    @extend_schema(
        operation_id="webhooks_deliveries_redeliver",
        tags=["webhooks"],
        summary="Deliver again now",
        request=EmptyInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({202: DeliveryOutput}, WRITE_ERRORS),
        examples=[
            OpenApiExample(
                "due again",
                response_only=True,
                status_codes=["202"],
                value={
                    **example_of(DeliveryOutput),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": "2026-12-01T16:00:00+01:00",
                    "last_status_code": 503,
                    "last_error": "HTTP 503",
                    "delivered_at": None,
                    "log": [
                        {
                            "at": "2026-12-01T10:05:01+01:00",
                            "status_code": 503,
                            "error": "HTTP 503",
                            "duration_ms": 61,
                        }
                    ],
                },
            )
        ],
    )
    def post(self, request: Any, delivery_id: int) -> Response:
        delivery = self.scope.delivery(delivery_id)
        _parse(EmptyInput, request.data)
        _manage_rate_limited(self.principal, "redeliver")
        delivery = webhook_delivery_retry(delivery=delivery)
        return Response(DeliveryOutput(self.scope.delivery(delivery.pk)).data, status=202)


class WebhookTestApi(FacilityApi):
    required_scope = "webhooks:manage"

    @extend_schema(
        operation_id="webhooks_test",
        tags=["webhooks"],
        summary="Send a signed test event to a subscription",
        description="Queues one `webhook.test` event, signed like every delivery, for this subscription only "
        "(other subscriptions and the changes feed never see it). The answer is the queued delivery; its "
        "attempt and your receiver's status code appear in `GET /api/v1/webhooks/{id}/deliveries`. "
        "Counts against the same hourly limit as subscribing and redelivering.",
        request=EmptyInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=responses({202: DeliveryOutput}, WRITE_ERRORS, codes=("webhook_not_found",)),
        examples=[
            OpenApiExample(
                "queued",
                response_only=True,
                status_codes=["202"],
                value={
                    **example_of(DeliveryOutput),
                    "id": 43,
                    "event_id": 1240,
                    "event_type": "webhook.test",
                    "status": "pending",
                    "attempts": 0,
                    "last_status_code": None,
                    "delivered_at": None,
                    "log": [],
                },
            )
        ],
    )
    def post(self, request: Any, webhook_id: int) -> Response:
        subscription = self.scope.subscription(webhook_id)
        _parse(EmptyInput, request.data)
        _manage_rate_limited(self.principal, "redeliver")
        delivery = webhook_test_send(subscription=subscription)
        return Response(DeliveryOutput(self.scope.delivery(delivery.pk)).data, status=202)
