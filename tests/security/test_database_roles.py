"""Database roles (issue 15): the application's role cannot empty or alter the append-only tables.

The test creates an application role in the test database's cluster (named after the test
database, so parallel runs do not collide), grants it as `manage.py db_app_role` does, connects as
it and tries what an attacker with the app's credentials would."""

from __future__ import annotations

import io

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from apps.audit.models import AccessLog
from apps.core.dbroles import APPEND_ONLY_TABLES, NO_DELETE_TABLES
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def app_role():
    name = f"{connection.settings_dict['NAME']}_app"[:60]
    out = io.StringIO()
    call_command("db_app_role", name, stdout=out)
    yield name, out.getvalue()
    with connection.cursor() as cursor:  # DROP OWNED drops its grants; it owns nothing else
        cursor.execute(f'DROP OWNED BY "{name}"')
        cursor.execute(f'DROP ROLE IF EXISTS "{name}"')


def _as(role: str) -> psycopg.Connection:
    params = connection.get_connection_params()
    params["user"] = role
    params.pop("password", None)
    params.pop("prepare_threshold", None)
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=True)


def test_the_app_role_cannot_truncate_or_disable_the_trigger_of_append_only_tables(app_role):
    role, output = app_role
    patient = PatientFactory()
    AccessLog.objects.create(actor_type="system", actor_id="t", patient=patient, action="test")
    with _as(role) as conn:
        for table in APPEND_ONLY_TABLES:
            for statement in (
                f"TRUNCATE {table}",
                f"TRUNCATE {table} CASCADE",
                f"ALTER TABLE {table} DISABLE TRIGGER ALL",
                f"ALTER TABLE {table} DISABLE TRIGGER USER",
                f"DROP TABLE {table}",
                f"UPDATE {table} SET id = id",
                f"DELETE FROM {table}",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        # It does its job: reads and appends to the audit log, reads and writes other tables.
        conn.execute(
            "INSERT INTO audit_accesslog (at, actor_type, actor_id, patient_id, action, purpose)"
            " VALUES (now(), 'system', 'role-test', %s, 'test', '')",
            [patient.pk],
        )
        assert conn.execute("SELECT count(*) FROM audit_accesslog").fetchone() == (2,)
        conn.execute("UPDATE patients_patient SET first_name = first_name WHERE id = %s", [patient.pk])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE patients_patient CASCADE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE patients_patient ADD COLUMN x int")
    assert AccessLog.objects.count() == 2
    assert f"granted row access on schema public of {connection.settings_dict['NAME']} to {role}" in output


def test_the_app_role_cannot_delete_a_reported_visits_key(app_role):
    """A deleted key row would let the same facility visit id be imported again (its uniqueness lives
    in the key table across the month partitions): the app adds and changes keys, never removes one."""
    role, output = app_role
    with _as(role) as conn:
        for table in NO_DELETE_TABLES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"DELETE FROM {table}")
            conn.execute(f"UPDATE {table} SET visit_id = visit_id WHERE false")  # changes stay allowed
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    assert "never deleted by the app: reconciliation_visitkey" in output


def test_the_grant_is_idempotent(app_role):
    role, _ = app_role
    out = io.StringIO()
    call_command("db_app_role", role, stdout=out)
    assert "created role" not in out.getvalue()


def test_verify_reports_an_owner_and_passes_for_the_app_role(app_role, settings):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="may still"):
        call_command("db_app_role", "--verify", stdout=io.StringIO())  # the test runs as the owner
    role, _ = app_role
    owner = settings.DATABASES["default"]["USER"]
    connection.close()
    settings.DATABASES["default"]["USER"] = role
    try:
        out = io.StringIO()
        call_command("db_app_role", "--verify", stdout=out)
    finally:
        connection.close()
        settings.DATABASES["default"]["USER"] = owner
    assert out.getvalue().startswith("ok:")
