from __future__ import annotations

import io

import pytest

from apps.core import demo as core_demo
from apps.integration.demo import demo_seed
from apps.integration.models import ApiClient


@pytest.fixture
def credentials_file(tmp_path, monkeypatch):
    path = tmp_path / "demo-credentials.txt"
    monkeypatch.setattr(core_demo, "CREDENTIALS_FILE", path)
    return path


def test_demo_seed_issues_one_client_once_and_remembers_the_secret_outside_the_database(
    facility_a, credentials_file
):
    demo_seed(out=io.StringIO())
    demo_seed(out=io.StringIO())

    assert ApiClient.objects.count() == 1
    line = core_demo.credentials_read()[f"api-client:{facility_a.nfz_code}"]
    secret = line.split("client_secret=")[1]
    assert ApiClient.objects.get().credentials.get().application.client_secret != secret


def test_a_lost_credentials_file_rotates_instead_of_issuing_a_second_client(facility_a, credentials_file):
    demo_seed(out=io.StringIO())
    credentials_file.unlink()

    demo_seed(out=io.StringIO())

    assert ApiClient.objects.count() == 1
    assert ApiClient.objects.get().credentials.count() == 2
    assert f"api-client:{facility_a.nfz_code}" in core_demo.credentials_read()
