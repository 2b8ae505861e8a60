from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core.demo import credentials_read


class Command(BaseCommand):
    help = "Load reference data and demo data (idempotent), then print the demo log-ins."

    def handle(self, *args: object, **options: object) -> None:
        if not settings.CER_DEMO_DATA:
            # Demo log-ins with known passwords must never reach a production database (issue 15).
            raise CommandError("seed_demo is off in these settings (CER_DEMO_DATA); it is for development")
        for config in apps.get_app_configs():
            if not config.name.startswith("apps."):
                continue
            try:
                module = import_module(f"{config.name}.demo")
            except ModuleNotFoundError as exc:
                if exc.name == f"{config.name}.demo":
                    continue
                raise
            seed = getattr(module, "demo_seed", None)
            if seed is not None:
                seed(out=self.stdout)
        credentials = credentials_read()
        if credentials:
            self.stdout.write("\nDemo log-ins (generated on first run, kept in var/demo-credentials.txt):")
            for line in credentials.values():
                self.stdout.write(f"  {line}")
