"""Write docs/events.md from the event catalogue (apps/integration/events.py); --check only compares."""

from __future__ import annotations

from apps.core.management.generated_doc import GeneratedDocCommand
from apps.integration.events import catalogue_markdown


class Command(GeneratedDocCommand):
    help = "Write docs/events.md from the event catalogue (--check: fail if it differs)."
    page, source, name = "docs/events.md", "catalogue", "events_catalogue"

    def generate(self) -> str:
        return catalogue_markdown()
