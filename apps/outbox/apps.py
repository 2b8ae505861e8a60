from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "apps.outbox"
    label = "outbox"

    def ready(self) -> None:
        # Registers the month-partitioned outbox with apps.core.partitions, so that the daily
        # `core: month partitions` task of every process maintains it.
        from . import partitions  # noqa: F401
