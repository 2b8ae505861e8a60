from django.core.management.base import BaseCommand

from apps.staff.i18n import compile_all


class Command(BaseCommand):
    help = "Compile the staff pages' .po catalogue to .mo without GNU gettext (pure Python)."

    def handle(self, *args: object, **options: object) -> None:
        for path in compile_all():
            self.stdout.write(f"wrote {path}")
