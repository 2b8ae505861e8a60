from django.contrib import admin

from .models import ComplianceCheck, Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Read-only delivery log (bodies may hold personal data: view only, never edit)."""

    list_display = (
        "id",
        "kind",
        "channel",
        "state",
        "patient_id",
        "appointment_id",
        "created_at",
        "expires_at",
    )
    list_filter = ("channel", "state", "kind")
    search_fields = ("key",)
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(ComplianceCheck)
class ComplianceCheckAdmin(admin.ModelAdmin):
    list_display = (
        "day",
        "facility",
        "service",
        "published_until",
        "published_days",
        "required_days",
        "compliant",
    )
    list_filter = ("day", "compliant")
    readonly_fields = [f.name for f in ComplianceCheck._meta.fields]
