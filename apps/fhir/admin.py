from django.contrib import admin

from .models import ServiceCoding


@admin.register(ServiceCoding)
class ServiceCodingAdmin(admin.ModelAdmin):
    list_display = ("service", "system", "code", "display")
    list_filter = ("system",)
    search_fields = ("code", "display", "service__code")
