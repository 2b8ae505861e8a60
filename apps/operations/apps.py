from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Metrics, structured logs, request ids and traces (docs/operations.md)."""

    name = "apps.operations"
    label = "operations"

    def ready(self) -> None:
        from . import celery_hooks, tracing

        celery_hooks.connect()
        tracing.configure()
