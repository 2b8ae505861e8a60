from django.urls import path, re_path

from . import bulk, views

app_name = "fhir"
urlpatterns = [
    path("metadata", views.metadata, name="metadata"),
    path("$bulk-publish", bulk.manifest, name="bulk_publish"),
    path("bulk/Location.ndjson", bulk.locations_file, name="bulk_locations"),
    path("bulk/Schedule.ndjson", bulk.schedules_file, name="bulk_schedules"),
    path("bulk/Slot-<str:teryt>.ndjson", bulk.slots_file, name="bulk_slots"),
    path("CodeSystem/<str:ident>", views.code_system_read, name="code_system"),
    path("Location", views.location_search, name="location_search"),
    path("Location/<str:ident>", views.location_read, name="location"),
    path("HealthcareService", views.healthcare_service_search, name="healthcare_service_search"),
    path("HealthcareService/<str:ident>", views.healthcare_service_read, name="healthcare_service"),
    path("Schedule", views.schedule_search, name="schedule_search"),
    path("Schedule/<str:ident>", views.schedule_read, name="schedule"),
    path("Slot", views.slot_search, name="slot_search"),
    path("Slot/<str:ident>", views.slot_read, name="slot"),
    path("Appointment", views.appointment_search, name="appointment_search"),
    path("Appointment/<str:ident>", views.appointment_read, name="appointment"),
    re_path(r"^(?P<rest>.*)$", views.unknown, name="unknown"),
]
