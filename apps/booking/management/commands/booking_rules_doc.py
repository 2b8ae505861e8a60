"""Write the table of every booking path against every rule into docs/booking-rules.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.booking.rules import rules_table

DOC = Path(settings.BASE_DIR) / "docs" / "booking-rules.md"
BEGIN = "<!-- rules-table:begin (generated: python manage.py booking_rules_doc) -->"
END = "<!-- rules-table:end -->"


def doc_with_table(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise CommandError(f"{DOC} lacks the table markers")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{rules_table()}{END}{tail}"


class Command(BaseCommand):
    help = "Regenerate the path x rule table in docs/booking-rules.md (--check: fail if it is stale)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--check", action="store_true", help="exit 1 if the document is out of date")

    def handle(self, *args: Any, check: bool = False, **options: Any) -> None:
        current = DOC.read_text(encoding="utf-8")
        wanted = doc_with_table(current)
        if check:
            if wanted != current:
                raise CommandError("docs/booking-rules.md is stale: run python manage.py booking_rules_doc")
            self.stdout.write("docs/booking-rules.md is up to date")
            return
        DOC.write_text(wanted, encoding="utf-8")
        self.stdout.write(f"wrote {DOC}")
