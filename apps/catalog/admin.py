"""Reference data maintained by NFZ staff: the catalogue is data, so its rules change here, not in code."""

from django.contrib import admin

from .models import Contract, Entitlement, Facility, Holiday, Locality, ReasonCode, Service, Voivodeship


@admin.register(Voivodeship)
class VoivodeshipAdmin(admin.ModelAdmin):
    list_display = ("teryt", "name", "name_en")


@admin.register(Locality)
class LocalityAdmin(admin.ModelAdmin):
    list_display = ("name", "voivodeship", "population", "lat", "lon")
    list_filter = ("voivodeship",)
    search_fields = ("name", "simc")


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name_pl",
        "kind",
        "referral_required",
        "cer_from",
        "obligatory_from",
        "rule_version",
    )
    list_filter = ("kind", "referral_required", "cer_from")
    search_fields = ("code", "name_pl", "name_en", "specialty")
    readonly_fields = ("rule_version", "created_at", "updated_at")
    fieldsets = [
        (None, {"fields": ("code", "name_pl", "name_en", "specialty", "kind", "referral_required")}),
        ("CeR scope", {"fields": ("cer_from", "obligatory_from")}),
        (
            "Screening eligibility",
            {
                "fields": (
                    "eligible_sex",
                    "age_min",
                    "age_max",
                    "interval_months",
                    "interval_months_risk",
                    "eligibility_source",
                )
            },
        ),
        (
            "Scheduling and lifecycle",
            {
                "fields": (
                    "min_horizon_days",
                    "waitlist_lookahead_days",
                    "slot_minutes",
                    "reminder_offsets_days",
                    "confirmation_required",
                    "confirm_deadline_hours",
                    "no_show_after_hours",
                )
            },
        ),
        ("Sources", {"fields": ("source", "notes", "rule_version", "created_at", "updated_at")}),
    ]

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        # A changed rule is a new rule version: reconciliation verdicts record which one applied.
        if change and form.changed_data:
            obj.rule_version += 1
        super().save_model(request, obj, form, change)


@admin.register(Entitlement)
class EntitlementAdmin(admin.ModelAdmin):
    list_display = ("code", "name_pl", "priority")
    search_fields = ("code", "name_pl")


@admin.register(ReasonCode)
class ReasonCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "kind", "name_pl", "name_en")
    list_filter = ("kind",)


@admin.register(Holiday)
class HolidayAdmin(admin.ModelAdmin):
    list_display = ("date", "name_pl")
    date_hierarchy = "date"


class ContractInline(admin.TabularInline):
    model = Contract
    extra = 0
    autocomplete_fields = ("service",)


@admin.register(Facility)
class FacilityAdmin(admin.ModelAdmin):
    list_display = ("nfz_code", "name", "locality", "voivodeship", "obligatory_from", "active")
    list_filter = ("voivodeship", "active")
    search_fields = ("nfz_code", "name")
    autocomplete_fields = ("locality",)
    inlines = [ContractInline]


@admin.register(Contract)
class ContractAdmin(admin.ModelAdmin):
    list_display = ("facility", "service", "valid_from", "valid_to")
    list_filter = ("service",)
    search_fields = ("facility__nfz_code", "facility__name")
    autocomplete_fields = ("facility", "service")
