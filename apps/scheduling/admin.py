from django.contrib import admin

from .models import Practitioner, Schedule, Slot


@admin.register(Practitioner)
class PractitionerAdmin(admin.ModelAdmin):
    list_display = ("name", "facility", "npwz")
    search_fields = ("name", "facility__nfz_code")
    raw_id_fields = ("facility",)


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ("id", "facility", "service", "place", "practitioner", "active", "generated_until")
    list_filter = ("service", "active")
    search_fields = ("facility__nfz_code", "facility__name")
    raw_id_fields = ("facility", "practitioner")


@admin.register(Slot)
class SlotAdmin(admin.ModelAdmin):
    list_display = ("id", "facility", "service", "start", "status", "kind")
    list_filter = ("status", "kind", "service")
    date_hierarchy = "start"
    raw_id_fields = ("schedule", "facility", "practitioner", "locality", "held_by")

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # slot states change only through the scheduling and booking services
