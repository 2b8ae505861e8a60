from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "apps.reconciliation"
    label = "reconciliation"

    def ready(self) -> None:
        # Registers the visit and verdict tables with apps.core.partitions, whose daily task
        # (`core: month partitions`) maintains every registered table.
        from . import partitions  # noqa: F401
