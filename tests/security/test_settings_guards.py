"""Production does not fall back to development settings, and demo data never reaches it (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.core.test_settings import ROOT, start_production


def _without_settings_module(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY")}
    return subprocess.run(  # noqa: S603
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_manage_py_without_a_settings_module_is_production_and_fails_closed():
    result = _without_settings_module("manage.py", "check")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("configuration error:")
    assert "SECRET_KEY" in result.stderr


def test_celery_without_a_settings_module_loads_production_settings():
    code = "import os, config.celery; print(os.environ['DJANGO_SETTINGS_MODULE'])"
    result = _without_settings_module("-c", code)
    assert result.stdout.strip() == "config.settings.production", result.stderr


def test_seed_demo_refuses_to_run_with_production_settings():
    result = start_production({}, "manage.py", "seed_demo")
    assert result.returncode != 0
    assert "CER_DEMO_DATA" in result.stderr


@pytest.mark.django_db
def test_seed_demo_refuses_without_the_setting(settings):
    from django.core.management import CommandError, call_command

    settings.CER_DEMO_DATA = False
    with pytest.raises(CommandError, match="CER_DEMO_DATA"):
        call_command("seed_demo")
