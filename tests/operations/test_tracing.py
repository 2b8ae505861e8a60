"""OpenTelemetry: off by default, on with the standard OTEL_* variables (Django, psycopg, Redis spans)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from apps.operations import tracing
from config.settings.env import otel_traces_requested
from scripts.restore_drill import with_database

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import django
django.setup()
from django.test import Client
from opentelemetry import trace
response = Client().get("/readyz")
trace.get_tracer_provider().force_flush()
print("STATUS", response.status_code)
"""


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "cer-web"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, False),
    ],
)
def test_tracing_is_switched_by_the_standard_variables(environ, on):
    assert otel_traces_requested(environ) is on


def test_tracing_is_off_in_a_default_environment():
    assert settings.CER_TRACING is False
    assert tracing.configure() is False


@pytest.mark.django_db
def test_otel_traces_exporter_switches_on_spans_for_django_psycopg_and_redis():
    """GIVEN OTEL_TRACES_EXPORTER=console in a fresh process WHEN it serves /readyz (database, Redis)
    THEN the spans of the request, its SQL and its Redis ping are exported."""
    database_url = with_database(os.environ["DATABASE_URL"], connection.settings_dict["NAME"])
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "cer-test",
    }
    env.pop("OTEL_SDK_DISABLED", None)

    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert "STATUS 200" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    assert '"service.name": "cer-test"' in result.stdout
    assert '"kind": "SpanKind.SERVER"' in result.stdout  # the Django request
    assert '"db.system": "postgresql"' in result.stdout
    assert '"db.system": "redis"' in result.stdout
