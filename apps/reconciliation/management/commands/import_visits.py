from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import DomainError
from apps.reconciliation.models import ImportBatch
from apps.reconciliation.services import visits_import


class Command(BaseCommand):
    help = "Import a CSV or JSON file of visits reported for settlement (re-importing changes nothing)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, **options):
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        try:
            batch = visits_import(file=path, source=ImportBatch.Source.FILE)
        except DomainError as exc:
            raise CommandError(exc.message_in("en")) from None
        if getattr(batch, "already_imported", False):
            self.stdout.write(f"{path.name}: already imported as batch {batch.pk}; nothing changed")
            return
        self.stdout.write(
            f"batch {batch.pk}: {batch.rows_imported} imported, {batch.rows_duplicate} already reported, "
            f"{batch.rows_rejected} rejected (of {batch.rows_total} rows)"
        )
        for error in batch.errors:
            self.stdout.write(f"  line {error['line']}: {error['reason']}")
