from django.urls import path

from . import views

app_name = "opendata"
urlpatterns = [
    path("queues", views.queues, name="queues"),
    path("staff/extracts/", views.extracts, name="extracts"),
    path("staff/extracts/<int:extract_id>.<str:kind>", views.extract_download, name="extract_download"),
]
