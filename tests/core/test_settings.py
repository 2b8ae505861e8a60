"""Production settings fail closed: a missing or malformed variable stops the start in one line."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/cer",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ALLOWED_HOSTS": "cer.example.gov.pl",
    "CER_PUBLIC_URL": "https://cer.example.gov.pl",
}


def start_production(env_overrides: dict[str, str | None], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in GOOD and not k.endswith("_FILE") and k != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    env.update(GOOD)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    code = "import django; django.setup(); print('started')"
    return subprocess.run(  # noqa: S603
        [sys.executable, *(args or ("-c", code))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "variable", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "CER_PUBLIC_URL"]
)
def test_production_refuses_to_start_without_a_required_variable(variable):
    result = start_production({variable: None})
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error:")
    assert variable in lines[0]


@pytest.mark.parametrize(
    "url", ["http://localhost:8000", "https://", "cer.example.gov.pl", "https://cer.example.gov.pl/a b"]
)
def test_production_refuses_a_public_url_that_is_not_an_https_address(url):
    """Every SMS and e-mail carries a signed link starting with it (issue 18): never a development one."""
    result = start_production({"CER_PUBLIC_URL": url})
    assert result.returncode == 2
    assert "CER_PUBLIC_URL is malformed" in result.stderr


def test_production_takes_the_public_url_without_its_trailing_slash():
    code = "import django; django.setup(); from django.conf import settings; print(settings.CER_PUBLIC_URL)"
    result = start_production({"CER_PUBLIC_URL": "https://cer.example.gov.pl/"}, "-c", code)
    assert result.stdout.strip() == "https://cer.example.gov.pl", result.stderr


def test_production_refuses_a_short_secret_key():
    result = start_production({"SECRET_KEY": "short"})
    assert result.returncode == 2
    assert "SECRET_KEY is malformed" in result.stderr


def test_production_refuses_a_malformed_database_url():
    result = start_production({"DATABASE_URL": "not-a-url"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: DATABASE_URL is malformed: expected postgres://user@host:port/name"
    ]


def test_secret_can_come_from_a_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(secrets.token_urlsafe(50))
    result = start_production({"SECRET_KEY": None, "SECRET_KEY_FILE": str(key_file)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_production_deploy_check_is_clean():
    result = start_production({}, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_is_no_default_secret_key_in_the_code():
    settings_dir = ROOT / "config" / "settings"
    for module in settings_dir.glob("*.py"):
        text = module.read_text()
        assert 'SECRET_KEY = "' not in text and "SECRET_KEY = '" not in text, module


def test_a_replica_is_configured_from_the_environment_and_a_malformed_one_refused():
    code = (
        "import django; django.setup(); from django.conf import settings; print(sorted(settings.DATABASES),"
        " settings.DATABASES['replica']['OPTIONS']['connect_timeout'])"
    )
    started = start_production(
        {"DATABASE_REPLICA_URL": "postgres://cer_ro@replica.internal:5432/cer"}, "-c", code
    )
    assert started.returncode == 0, started.stderr
    assert "['default', 'replica'] 2" in started.stdout  # a replica that went away holds a read 2 s at most
    refused = start_production({"DATABASE_REPLICA_URL": "mysql://x@y/z"})
    assert refused.returncode == 2
    assert "DATABASE_REPLICA_URL is malformed" in refused.stderr


@pytest.mark.django_db
def test_the_connection_compiles_nothing_just_in_time_and_production_keeps_its_idle_timeout():
    """JIT off on every connection (config/settings/base.py: the waiting list's candidates statement
    spent most of its time compiling); production adds its idle-in-transaction timeout to it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['OPTIONS']['options'])"
    )
    result = start_production({}, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["-c", "jit=off", "-c", "idle_in_transaction_session_timeout=60000"]
