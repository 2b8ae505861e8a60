"""Database roles (issue 15): migrations run as the owner of the tables; the application connects as
a role that may read and write rows but owns nothing, so it can neither TRUNCATE a table nor ALTER it
(`DISABLE TRIGGER` included), and on append-only tables it may only SELECT and INSERT.

The one module with this SQL; identifiers are composed with psycopg's `sql.Identifier`. Run by the
owner (`manage.py db_app_role <role>`) after every `migrate`; idempotent. Passwords are not handled
here: the role's password (or certificate) is set by whoever runs the database, out of band.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from psycopg import sql

# Tables whose rows are never updated or deleted (a trigger refuses it too): the app may only add.
APPEND_ONLY_TABLES = ("audit_accesslog", "reconciliation_override")
# Tables whose rows the app adds and changes but never removes: a reported visit's key row is what keeps
# a facility's visit id once across the month partitions (apps/reconciliation/partitions.py); deleted,
# the same visit could be imported again. Only the owner's monthly job removes them, with their month
# (and a foreign key's cascade, which PostgreSQL runs as the owner).
NO_DELETE_TABLES = ("reconciliation_visitkey",)
ROW_PRIVILEGES = sql.SQL("SELECT, INSERT, UPDATE, DELETE")


def _run(cursor: Any, statement: sql.Composable) -> None:
    cursor.execute(statement.as_string(cursor.connection))


def app_role_grant(*, role: str, login: bool = True) -> list[str]:
    """Create `role` if missing and give it row access to every table of the schema (now and later
    tables made by the owner); returns the statements' summaries for the command's output."""
    ident = sql.Identifier(role)
    done: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
        owner_super, _ = cursor.fetchone()
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            _run(
                cursor,
                sql.SQL("CREATE ROLE {} {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION").format(
                    ident, sql.SQL("LOGIN" if login else "NOLOGIN")
                ),
            )
            done.append(f"created role {role}")
        cursor.execute("SELECT current_database(), current_user")
        database, owner = cursor.fetchone()
        for statement in (
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident),
            sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident),
            sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(ident),
            sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA public TO {}").format(ROW_PRIVILEGES, ident),
            sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident),
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT {} ON TABLES TO {}").format(
                sql.Identifier(owner), ROW_PRIVILEGES, ident
            ),
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public"
                " GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {}"
            ).format(sql.Identifier(owner), ident),
        ):
            _run(cursor, statement)
        for table in APPEND_ONLY_TABLES:
            _run(cursor, sql.SQL("REVOKE UPDATE, DELETE ON {} FROM {}").format(sql.Identifier(table), ident))
        for table in NO_DELETE_TABLES:
            _run(cursor, sql.SQL("REVOKE DELETE ON {} FROM {}").format(sql.Identifier(table), ident))
        done.append(f"granted row access on schema public of {database} to {role} (owner: {owner})")
        done.append("append-only for the app: " + ", ".join(APPEND_ONLY_TABLES))
        done.append("never deleted by the app: " + ", ".join(NO_DELETE_TABLES))
        if owner_super:
            done.append("note: the owner here is a superuser; in production use a dedicated owner role")
    return done


def app_role_owns_nothing(*, role: str) -> bool:
    """Whether `role` owns no table, sequence or schema in this database (then TRUNCATE and ALTER are
    refused to it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = %s",
            [role],
        )
        (owned,) = cursor.fetchone()
    return owned == 0


class _RolledBack(Exception):
    pass


def app_role_verify() -> list[str]:
    """Run as the application's role: try TRUNCATE and DISABLE TRIGGER on every append-only table
    inside a transaction that is always rolled back. Returns what was NOT refused (empty = good)."""
    from django.db import DatabaseError, transaction

    allowed: list[str] = []
    for table in APPEND_ONLY_TABLES:
        for template in ("TRUNCATE {}", "ALTER TABLE {} DISABLE TRIGGER ALL"):
            statement = sql.SQL(template).format(sql.Identifier(table))
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    _run(cursor, statement)
                    raise _RolledBack  # it worked: undo it at once, and report it
            except _RolledBack:
                allowed.append(template.format(table))
            except DatabaseError as exc:
                if getattr(exc.__cause__, "sqlstate", None) != "42501":  # insufficient_privilege
                    raise
    return allowed
