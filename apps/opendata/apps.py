from django.apps import AppConfig


class OpendataConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.opendata"
    verbose_name = "Open waiting-time data and the research extract"
