from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "staff"
urlpatterns = [
    path("", views.run_list, name="runs"),
    path("login/", views.StaffLoginView.as_view(), name="login"),
    path("login/otp/", views.otp_verify, name="otp"),
    path("login/otp/setup/", views.otp_setup, name="otp_setup"),
    path("logout/", auth_views.LogoutView.as_view(next_page="staff:login"), name="logout"),
    path("runs/start/", views.run_start, name="run_start"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/facilities/<int:facility_id>/", views.facility_visits, name="facility_visits"),
    path("runs/<int:run_id>/verdicts/", views.run_verdicts, name="run_verdicts"),
    path("verdicts/<int:verdict_id>/", views.verdict_detail, name="verdict"),
    path("overrides/", views.overrides, name="overrides"),
    path("waitlist/", views.waitlist, name="waitlist"),
    path("trends/facilities/", views.facility_trends, name="facility_trends"),
    path("trends/", views.trends, name="trends"),
    path("compliance/", views.compliance, name="compliance"),
    path("imports/", views.imports, name="imports"),
    path("imports/<int:batch_id>/", views.import_detail, name="import"),
]
