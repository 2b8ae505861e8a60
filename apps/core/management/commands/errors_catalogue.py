"""Write docs/errors.md from the problem registry (apps/core/errors.py); --check only compares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import catalogue_markdown

TARGET = Path(settings.BASE_DIR) / "docs" / "errors.md"


class Command(BaseCommand):
    help = "Write docs/errors.md from the registry of problem codes (--check: fail if it differs)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--check", action="store_true")

    def handle(self, *args: Any, check: bool = False, **options: Any) -> None:
        text = catalogue_markdown()
        if check:
            if not TARGET.exists() or TARGET.read_text() != text:
                raise CommandError(
                    "docs/errors.md differs from the registry: run `make manage ARGS=errors_catalogue`"
                )
            self.stdout.write("docs/errors.md is up to date")
            return
        TARGET.write_text(text)
        self.stdout.write(f"wrote {TARGET}")
