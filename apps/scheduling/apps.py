from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "apps.scheduling"
    label = "scheduling"

    def ready(self) -> None:
        # Registers the slot table with apps.core.partitions (the daily `core: month partitions` task
        # maintains every registered table; a worker that never imported this module would skip it).
        from . import partitions  # noqa: F401
