from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "apps.scheduling"
    label = "scheduling"

    def ready(self) -> None:
        # Registers the month-partitioned slot table with apps.core.partitions, so that the daily
        # `core: month partitions` task of every process maintains it.
        from . import partitions  # noqa: F401
