"""Fixtures of the operations tests: the integration personas and a Prometheus scrape helper."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Api, World, api_a, issued_a, world_a  # noqa: F401 (fixtures)

METRICS_TOKEN = "test-scrape-token-" + "x" * 20


class Scrape:
    """One /metrics answer, parsed with prometheus-client's own parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
        matching = (s for s in self.samples if s.name == name)
        return sum(s.value for s in matching if all(s.labels.get(k) == v for k, v in labels.items()))

    def names(self) -> set[str]:
        return {s.name for s in self.samples}


@pytest.fixture
def scrape(db):
    client = Client()

    def _scrape() -> Scrape:
        with override_settings(CER_METRICS_TOKEN=METRICS_TOKEN):
            response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
        assert response.status_code == 200, response.content[:500]
        assert response["Content-Type"].startswith("text/plain")
        return Scrape(response.content.decode())

    return _scrape
