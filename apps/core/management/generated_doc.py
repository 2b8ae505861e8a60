"""A management command that writes one docs/ page generated from the code; `--check` only compares
(the tests run it, so the page cannot drift from what it describes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class GeneratedDocCommand(BaseCommand):
    page = ""  # e.g. "docs/errors.md"
    source = ""  # what it is generated from, for the messages
    name = ""  # the command's own name, for the message saying how to regenerate

    def generate(self) -> str:
        raise NotImplementedError

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--check", action="store_true")

    def handle(self, *args: Any, check: bool = False, **options: Any) -> None:
        target = Path(settings.BASE_DIR) / self.page
        text = self.generate()
        if check:
            if not target.exists() or target.read_text() != text:
                raise CommandError(
                    f"{self.page} differs from the {self.source}: run `make manage ARGS={self.name}`"
                )
            self.stdout.write(f"{self.page} is up to date")
            return
        target.write_text(text)
        self.stdout.write(f"wrote {target}")
