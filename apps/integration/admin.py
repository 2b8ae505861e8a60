"""Admin for NFZ staff: API clients (issue / rotate / revoke), webhooks and their delivery log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from .auth import principal_cache_forget
from .models import ApiClient, ApiCredential, WebhookDelivery, WebhookSubscription
from .services import api_client_issue, api_client_revoke_client, api_client_rotate


class ApiCredentialInline(admin.TabularInline):
    model = ApiCredential
    fields = ("client_id", "created_at", "valid_until")
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="client id")
    def client_id(self, obj: ApiCredential) -> str:
        return obj.application.client_id


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ("name", "facility", "scopes", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "facility__nfz_code", "facility__name")
    raw_id_fields = ("facility",)
    readonly_fields = ("revoked_at", "created_by", "created_at", "updated_at")
    inlines = [ApiCredentialInline]
    actions = ["rotate_secret", "revoke"]

    def save_model(self, request: HttpRequest, obj: ApiClient, form: Any, change: bool) -> None:
        if change:
            with transaction.atomic():
                super().save_model(request, obj, form, change)
                principal_cache_forget(client=obj)  # new scopes, expiry or facility apply at once
            return
        # A new client is issued through the service, so the secret is generated, hashed and shown once.
        days = max(1, (obj.expires_at - timezone.now()).days)
        issued = api_client_issue(
            facility=obj.facility, name=obj.name, scopes=obj.scopes, days=days, created_by=request.user
        )
        obj.pk = issued.client.pk
        obj.refresh_from_db()
        self._show_secret(request, issued.client_id, issued.client_secret)

    def _show_secret(self, request: HttpRequest, client_id: str, secret: str) -> None:
        self.message_user(
            request,
            f"client_id: {client_id}  client_secret: {secret}  (shown only now; stored only as a hash)",
            messages.WARNING,
        )

    @admin.action(description="Rotate the secret (old one valid 7 more days)")
    def rotate_secret(self, request: HttpRequest, queryset: Any) -> None:
        for client in queryset:
            credential = client.credentials.order_by("-id").select_related("application").first()
            if credential is None:
                continue
            issued = api_client_rotate(client_id=credential.application.client_id)
            self._show_secret(request, issued.client_id, issued.client_secret)

    @admin.action(description="Revoke now (every credential and token)")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for client in queryset:
            api_client_revoke_client(client=client)
        self.message_user(request, f"Revoked {queryset.count()} API client(s).")


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    list_display = ("id", "facility", "url", "event_types", "active")
    list_filter = ("active",)
    exclude = ("secret_encrypted",)
    raw_id_fields = ("facility", "created_by")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "subscription",
        "event",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
    )
    list_filter = ("status",)
    raw_id_fields = ("subscription", "event")
