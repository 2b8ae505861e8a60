"""Read-mostly views for NFZ staff: why a patient got a slot (allocation) is shown on each appointment.

State changes go through the services (patient pages, facility API), never through admin edits.
"""

from django.contrib import admin

from .models import Appointment, Registration


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Registration)
class RegistrationAdmin(ReadOnlyAdmin):
    list_display = ("id", "service", "status", "priority", "urgent", "joined_at")
    list_filter = ("status", "service", "urgent")
    raw_id_fields = ("patient", "referral")


@admin.register(Appointment)
class AppointmentAdmin(ReadOnlyAdmin):
    list_display = ("id", "service", "facility", "start", "status", "channel")
    list_filter = ("status", "channel", "service")
    date_hierarchy = "start"
    raw_id_fields = ("patient", "slot", "registration", "rescheduled_to")
    readonly_fields = ("allocation",)
