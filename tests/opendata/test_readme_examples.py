"""The README's open-interface examples, run as written (curl lines through the test client, the
manage.py line through call_command): a changed URL or parameter breaks this test, not a reader."""

from __future__ import annotations

import io
import json
import shlex
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command

from apps.opendata.models import ResearchExtract
from apps.opendata.services import queue_stats_compute
from tests.factories.integration import access_token_create, api_client_create
from tests.fhir.conftest import fhir_json

README = Path(__file__).resolve().parents[2] / "README.md"


def examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- open-interfaces:begin -->")[1].split("<!-- open-interfaces:end -->")[0]
    return [line.strip() for line in block.splitlines() if line.startswith("      ") and line.strip()]


def test_there_is_one_example_per_interface():
    commands = examples()
    assert len(commands) == 5
    assert sum(c.startswith("curl ") for c in commands) == 4


@pytest.mark.django_db
def test_every_example_runs_as_written(client, fhir_world, tmp_path, monkeypatch):
    token = access_token_create(api_client_create(facility=fhir_world.facility))
    queue_stats_compute()
    monkeypatch.chdir(tmp_path)
    for command in examples():
        words = shlex.split(command.replace("$TOKEN", token))
        if words[0] == "curl":
            headers = {}
            for flag, value in pairwise(words):
                if flag == "-H":
                    name, _, content = value.partition(": ")
                    headers["HTTP_" + name.upper().replace("-", "_")] = content
            url = urlsplit(words[-1])
            response = client.get(url.path + (f"?{url.query}" if url.query else ""), **headers)
            assert response.status_code == 200, command
            if url.path.startswith("/fhir/") and "$bulk" not in url.path:
                body = fhir_json(response)
                assert body.get("entry"), command
            else:
                body = json.loads(response.content)
                assert body.get("output") or body.get("data"), command
        else:
            assert words[:3] == ["python", "manage.py", "research_extract"], command
            call_command(*words[2:], stdout=io.StringIO())
            extract = ResearchExtract.objects.get()
            assert (tmp_path / "var" / "extract" / f"cer-research-extract-{extract.pk}.csv").exists()
