from django.core.management.base import BaseCommand

from apps.core.periodic import periodic_tasks_register


class Command(BaseCommand):
    help = "Register every app's PERIODIC_TASKS with django-celery-beat (idempotent; run at deploy)."

    def handle(self, *args: object, **options: object) -> None:
        for name in periodic_tasks_register():
            self.stdout.write(f"scheduled: {name}")
