from django.core.management.base import BaseCommand

from apps.catalog.services import reference_load


class Command(BaseCommand):
    help = "Load or update the reference data (voivodeships, localities, services, entitlements, ...)."

    def handle(self, *args: object, **options: object) -> None:
        counts = reference_load()
        self.stdout.write(", ".join(f"{k}: {v}" for k, v in counts.items()))
