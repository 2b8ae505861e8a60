"""Both database roles, end to end (run by .ci/run; README "Production" describes the same steps).

    python -m scripts.db_roles OWNER_DATABASE_URL APP_ROLE

Creates the database named in the URL if missing, migrates it as the owner, grants the application's
role with `manage.py db_app_role`, then connects as that role and runs `db_app_role --verify` (TRUNCATE
and DISABLE TRIGGER refused) and `check --database default`. Exits non-zero on any failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
URL = re.compile(
    r"^(?P<scheme>postgres(?:ql)?://)(?P<user>[^@/:]*)(?P<password>:[^@/]*)?@(?P<rest>[^/]*)/(?P<db>[^?]+)"
)


def _with_user(url: str, user: str) -> str:
    match = URL.match(url)
    if not match:
        raise SystemExit("expected postgres://user@host:port/database")
    return f"{match['scheme']}{user}@{match['rest']}/{match['db']}" + url[match.end() :]


def _manage(url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    owner_url, role = argv
    match = URL.match(owner_url)
    if not match:
        print("expected postgres://user@host:port/database", file=sys.stderr)
        return 2
    maintenance = owner_url[: match.start("db")] + "postgres" + owner_url[match.end("db") :]
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [match["db"]]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(match["db"])))
    _manage(owner_url, "migrate", "--no-input", "-v", "0")
    _manage(owner_url, "db_app_role", role)
    app_url = _with_user(owner_url, role)
    _manage(app_url, "db_app_role", "--verify")
    _manage(app_url, "check", "--database", "default")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
