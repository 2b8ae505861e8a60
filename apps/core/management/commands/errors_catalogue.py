"""Write docs/errors.md from the problem registry (apps/core/errors.py); --check only compares."""

from __future__ import annotations

from apps.core.errors import catalogue_markdown
from apps.core.management.generated_doc import GeneratedDocCommand


class Command(GeneratedDocCommand):
    help = "Write docs/errors.md from the registry of problem codes (--check: fail if it differs)."
    page, source, name = "docs/errors.md", "registry", "errors_catalogue"

    def generate(self) -> str:
        return catalogue_markdown()
