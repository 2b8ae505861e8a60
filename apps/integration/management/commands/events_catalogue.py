"""Write docs/events.md from the event catalogue (apps/integration/events.py); --check only compares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.integration.events import catalogue_markdown

TARGET = Path(settings.BASE_DIR) / "docs" / "events.md"


class Command(BaseCommand):
    help = "Write docs/events.md from the event catalogue (--check: fail if it differs)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--check", action="store_true")

    def handle(self, *args: Any, check: bool = False, **options: Any) -> None:
        text = catalogue_markdown()
        if check:
            if not TARGET.exists() or TARGET.read_text() != text:
                raise CommandError(
                    "docs/events.md differs from the catalogue: run `make manage ARGS=events_catalogue`"
                )
            self.stdout.write("docs/events.md is up to date")
            return
        TARGET.write_text(text)
        self.stdout.write(f"wrote {TARGET}")
