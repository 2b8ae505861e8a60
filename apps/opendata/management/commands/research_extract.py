"""Create a de-identified research extract (CSV and Parquet) for a period of visits.

    python manage.py research_extract --from 2026-01-01 --to 2026-06-30 [--k 10] [--out DIR]

The extract is stored in the database (the staff page /opendata/staff/extracts/ serves it) and,
with --out, also written to DIR as cer-research-extract-<id>.csv and .parquet.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.opendata.services import K_DEFAULT, research_extract_create


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not a date (YYYY-MM-DD): {text[:20]!r}") from None


class Command(BaseCommand):
    help = "Create a de-identified research extract with k-anonymity and complementary suppression."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="period_from", required=True, help="first visit day (YYYY-MM-DD)")
        parser.add_argument("--to", dest="period_to", required=True, help="last visit day (YYYY-MM-DD)")
        parser.add_argument(
            "--k", type=int, default=K_DEFAULT, help=f"minimum patients per cell ({K_DEFAULT})"
        )
        parser.add_argument("--out", default=None, help="also write the files into this directory")

    def handle(self, *args: Any, **options: Any) -> None:
        period_from, period_to = _day(options["period_from"]), _day(options["period_to"])
        if period_to < period_from:
            raise CommandError("--to is before --from")
        if not 2 <= options["k"] <= 1000:
            raise CommandError("--k must be between 2 and 1000")
        extract = research_extract_create(
            period_from=period_from, period_to=period_to, k=options["k"], created_by="manage.py"
        )
        self.stdout.write(
            f"extract {extract.pk}: {extract.rows} rows, {extract.suppressed} suppressed (k={extract.k})"
        )
        if options["out"]:
            out = Path(options["out"])
            out.mkdir(parents=True, exist_ok=True)
            for kind in ("csv", "parquet"):
                path = out / f"cer-research-extract-{extract.pk}.{kind}"
                path.write_bytes(bytes(getattr(extract, kind)))
                self.stdout.write(f"wrote {path}")
