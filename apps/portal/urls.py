from django.urls import path

from apps.notifications import views as notification_views

from . import views

app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("login/code/", views.login_code_view, name="login_code"),
    path("logout/", views.logout_view, name="logout"),
    path("dev/outbox/", views.dev_outbox, name="dev_outbox"),
    path("acting-for/", views.acting_for_view, name="acting_for"),
    path("slots/<int:slot_id>/", views.slot_page, name="slot"),
    path("facilities/<int:facility_id>/", views.facility_page, name="facility"),
    path("slots/<int:slot_id>/hold/", views.slot_hold_view, name="slot_hold"),
    path("booking/<int:slot_id>/", views.booking_summary, name="booking_summary"),
    path("appointments/", views.appointments, name="appointments"),
    path("appointments/<int:appointment_id>/", views.appointment_detail, name="appointment"),
    path("appointments/<int:appointment_id>/confirm/", views.appointment_confirm, name="appointment_confirm"),
    path("appointments/<int:appointment_id>/cancel/", views.appointment_cancel, name="appointment_cancel"),
    path("appointments/<int:appointment_id>/release/", views.appointment_release, name="appointment_release"),
    path(
        "appointments/<int:appointment_id>/reschedule/",
        views.appointment_reschedule,
        name="appointment_reschedule",
    ),
    path("appointments/<int:appointment_id>/calendar.ics", views.appointment_ics, name="appointment_ics"),
    path("manage/<str:token>/", views.manage_view, name="manage"),
    path("waitlist/", views.waitlist, name="waitlist"),
    path("waitlist/join/", views.waitlist_join, name="waitlist_join"),
    path(
        "waitlist/<int:registration_id>/preferences/",
        views.waitlist_preferences,
        name="waitlist_preferences",
    ),
    path("waitlist/<int:registration_id>/leave/", views.waitlist_leave, name="waitlist_leave"),
    path("messages/", views.inbox, name="inbox"),
    # The SMS gateway's webhook (HMAC-signed). Lives in apps.notifications; mounted here until the
    # lead gives notifications its own include in config/urls.py.
    path("notifications/sms/inbound", notification_views.sms_inbound, name="sms_inbound"),
]
