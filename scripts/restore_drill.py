"""`make restore-drill`: prove that a backup of the CeR database can be restored.

    python -m scripts.restore_drill            # DATABASE_URL names the server (make restore-drill sets it)

Steps, each printed with its result:
1. a fresh source database on the server of DATABASE_URL, migrated and populated with the demo data
   (facilities, schedules, slots, registrations, bookings, outbox events, reconciliation runs);
2. `pg_dump --format=custom` of it, `pg_restore` into another new database;
3. checks on the restored copy: the row count of every table equals the source's; every constraint
   and index is there and valid; the booking invariants hold (one live appointment per slot, one live
   registration per patient and service, slots end after they start, every live appointment's slot is
   booked); the changes feed continues without a gap (a new event sorts after every restored one, and
   the feed read from the last restored cursor returns exactly that event);
4. both databases are dropped again (kept with --keep).

Exit status 0 when every check passed, 1 otherwise. The same checks apply to a restore from a base
backup plus WAL (docs/operations.md): point `--source`/`--restored` at the two databases.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


class DrillFailure(Exception):
    pass


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def connect(url: str, autocommit: bool = True) -> Iterator[psycopg.Connection[Any]]:
    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    conninfo = urlunsplit(parts._replace(query=""))
    with psycopg.connect(conninfo, autocommit=autocommit, **query) as conn:
        yield conn


def _major(version_output: str) -> int:
    match = re.search(r"(\d+)(?:\.\d+)?", version_output)
    return int(match.group(1)) if match else 0


def pg_tool(name: str, server_major: int) -> str:
    """The pg_dump/pg_restore to use: the oldest one at least as new as the server (a pg_dump older
    than the server refuses to dump it; one much newer may write what an older server cannot read)."""
    candidates = []
    if found := shutil.which(name):
        candidates.append(found)
    try:
        import pgserver

        candidates.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name))
    except ImportError:
        pass
    usable = []
    for path in candidates:
        if Path(path).exists():
            out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
            if _major(out.split(")")[-1]) >= server_major:
                usable.append((_major(out.split(")")[-1]), path))
    if not usable:
        raise DrillFailure(f"no {name} of PostgreSQL {server_major} or newer found")
    return min(usable)[1]


def tables(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    ).fetchall()
    return [r[0] for r in rows]


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return {
        t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # type: ignore[index]  # noqa: S608
        for t in tables(conn)
    }


def constraints(conn: psycopg.Connection[Any]) -> set[tuple[str, str, str, bool]]:
    rows = conn.execute(
        """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.convalidated
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public'
          -- not PostgreSQL's own copies of a partitioned table's constraint (a foreign key into the
          -- month-partitioned slot table has one per partition, numbered anew by a restore)
          AND c.conparentid = 0
        """
    ).fetchall()
    return {(r[0], r[1], r[2], r[3]) for r in rows}


def indexes(conn: psycopg.Connection[Any]) -> set[tuple[str, str, bool, bool]]:
    """(table, index, unique, valid). Not the definition text: PostgreSQL prints a restored partial
    index's predicate with other casts, though it is the same index."""
    rows = conn.execute(
        """
        SELECT c.relname, ic.relname, i.indisunique, i.indisvalid
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
        """
    ).fetchall()
    return {(r[0], r[1], r[2], r[3]) for r in rows}


# Each query returns the rows that break the invariant (DESIGN.md section 3); none may return any.
INVARIANTS = {
    "one live appointment per slot": """
        SELECT slot_id FROM booking_appointment WHERE status IN ('booked', 'confirmed')
        GROUP BY slot_id HAVING count(*) > 1""",
    "one live registration per patient and service": """
        SELECT patient_id, service_id FROM booking_registration WHERE status IN ('waiting', 'booked')
        GROUP BY patient_id, service_id HAVING count(*) > 1""",
    "one live appointment per patient and service": """
        SELECT patient_id, service_id FROM booking_appointment WHERE status IN ('booked', 'confirmed')
        GROUP BY patient_id, service_id HAVING count(*) > 1""",
    "slots end after they start": 'SELECT id FROM scheduling_slot WHERE "end" <= start',
    "a live appointment's slot is booked": """
        SELECT a.id FROM booking_appointment a JOIN scheduling_slot s ON s.id = a.slot_id
        WHERE a.status IN ('booked', 'confirmed') AND s.status <> 'booked'""",
    "a booked registration has its live appointment": """
        SELECT r.id FROM booking_registration r WHERE r.status = 'booked' AND NOT EXISTS (
            SELECT 1 FROM booking_appointment a
            WHERE a.registration_id = r.id AND a.status IN ('booked', 'confirmed'))""",
}


def invariant_breaches(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return {name: len(conn.execute(sql).fetchall()) for name, sql in INVARIANTS.items()}  # type: ignore[call-overload]


def feed_continues(conn: psycopg.Connection[Any]) -> tuple[bool, str]:
    """A new event written into the restored database sorts after every restored one, and reading the
    feed from the last restored (txid, id) returns exactly it. A logical restore into a new cluster
    whose transaction counter is behind the restored txids fails here (docs/operations.md)."""
    last = conn.execute(
        "SELECT txid, id FROM outbox_outboxevent ORDER BY txid DESC, id DESC LIMIT 1"
    ).fetchone()
    if last is None:
        return False, "the restored outbox is empty: nothing to continue from"
    with conn.transaction():
        new_id = conn.execute(
            """
            INSERT INTO outbox_outboxevent
                (created_at, type, aggregate_type, aggregate_id, payload, request_id)
            VALUES (now(), 'drill.restored', 'drill', 0, '{}', 'restore-drill') RETURNING id
            """
        ).fetchone()[0]  # type: ignore[index]
    after = conn.execute(
        "SELECT id FROM outbox_outboxevent WHERE (txid, id) > (%s, %s) ORDER BY txid, id", last
    ).fetchall()
    conn.execute("DELETE FROM outbox_outboxevent WHERE id = %s", (new_id,))
    if [r[0] for r in after] != [new_id]:
        return False, f"after the last restored event {tuple(last)} the feed returned {after}, not [{new_id}]"
    return True, f"a new event follows the last restored one {tuple(last)}"


def compare(source_url: str, restored_url: str) -> list[str]:
    """Every check of step 3; the failures (empty when the restore is good). Prints each result."""
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            failures.append(what)

    with connect(source_url) as source, connect(restored_url) as restored:
        source_counts, restored_counts = row_counts(source), row_counts(restored)
        differing = {
            t
            for t in source_counts.keys() | restored_counts.keys()
            if source_counts.get(t) != restored_counts.get(t)
        }
        total = sum(source_counts.values())
        check(
            not differing,
            f"row counts of {len(source_counts)} tables ({total} rows)"
            + (f"; differ: {sorted(differing)}" if differing else ""),
        )
        check(total > 0 and source_counts.get("booking_appointment", 0) > 0, "the source was populated")
        missing = constraints(source) - constraints(restored)
        check(
            not missing,
            f"{len(constraints(source))} constraints, all validated"
            + (f"; missing: {sorted(missing)[:5]}" if missing else ""),
        )
        check(all(valid for *_, valid in constraints(restored)), "no constraint left NOT VALID")
        missing_idx = indexes(source) - indexes(restored)
        check(
            not missing_idx and all(valid for *_, valid in indexes(restored)),
            f"{len(indexes(source))} indexes, all valid"
            + (f"; missing: {sorted(missing_idx)[:5]}" if missing_idx else ""),
        )
        for name, breaches in invariant_breaches(restored).items():
            check(breaches == 0, f"invariant: {name}" + (f" ({breaches} breaches)" if breaches else ""))
        ok, detail = feed_continues(restored)
        check(ok, f"changes feed continues without a gap: {detail}")
    return failures


@contextmanager
def demo_credentials_kept() -> Iterator[None]:
    """seed_demo records the log-ins it makes in var/demo-credentials.txt: the developer's own stay."""
    path = ROOT / "var" / "demo-credentials.txt"
    saved = path.read_bytes() if path.exists() else None
    try:
        yield
    finally:
        if saved is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(saved)


def _manage(url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.dev"}
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


# Bookings on top of the demo data (which has schedules, patients and reconciliation runs but no live
# bookings): each patient books the earliest free slot of each service the rules let them, through the
# booking services; the last booking is cancelled again.
POPULATE = """
import datetime as dt
import sys
from django.utils import timezone
from apps.booking import services
from apps.catalog.models import Service
from apps.core.errors import DomainError
from apps.patients.models import Patient
from apps.scheduling.models import Slot

booked, refused = [], {}
soon = timezone.now() + dt.timedelta(days=2)
for patient in Patient.objects.order_by("id")[:50]:
    for service in Service.objects.order_by("id"):
        slot = Slot.objects.filter(service=service, status="free", start__gt=soon).order_by("start").first()
        if slot is None:
            continue
        try:
            booked.append(services.appointment_book(slot_id=slot.pk, patient=patient, channel="desk"))
        except DomainError as exc:  # not eligible, no referral, out of scope: the rules decide
            refused[exc.code] = refused.get(exc.code, 0) + 1
if booked:
    services.appointment_cancel_by_patient(appointment=booked[-1])
print(f"   {len(booked)} bookings, one cancelled; refused by the rules: {refused}", file=sys.stderr)
"""


def populate(url: str) -> None:
    _manage(url, "migrate", "--no-input", "-v", "0")
    with demo_credentials_kept():
        _manage(url, "seed_demo")
    _manage(url, "shell", "-c", POPULATE)


def dump_and_restore(source_url: str, restored_url: str, major: int) -> int:
    """pg_dump --format=custom of the source, pg_restore into the empty restored database; dump size."""
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "cer.dump"
        pg_dump, pg_restore = pg_tool("pg_dump", major), pg_tool("pg_restore", major)
        subprocess.run([pg_dump, "--format=custom", "--file", str(dump), "--dbname", source_url], check=True)
        subprocess.run(
            [pg_restore, "--exit-on-error", "--no-owner", "--dbname", restored_url, str(dump)], check=True
        )
        return dump.stat().st_size


def server_major(url: str) -> int:
    with connect(url) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]


def drill(server_url: str, keep: bool = False) -> int:
    suffix = os.getpid()
    source_db, restored_db = f"cer_drill_source_{suffix}", f"cer_drill_restored_{suffix}"
    source_url, restored_url = with_database(server_url, source_db), with_database(server_url, restored_db)
    admin_url = with_database(server_url, "postgres")
    with connect(admin_url) as admin:
        for name in (source_db, restored_db):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        print(f"1. populate {source_db}: migrations, demo data, bookings", flush=True)
        populate(source_url)
        print(f"2. pg_dump --format=custom, pg_restore into {restored_db}", flush=True)
        size = dump_and_restore(source_url, restored_url, server_major(admin_url))
        print(f"   dump size {size} bytes", flush=True)
        print("3. checks on the restored database", flush=True)
        failures = compare(source_url, restored_url)
    finally:
        if not keep:
            with connect(admin_url) as admin:
                for name in (source_db, restored_db):
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print("restore drill: " + ("PASSED" if not failures else f"FAILED ({len(failures)} checks)"), flush=True)
    return 0 if not failures else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.restore_drill", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--keep", action="store_true", help="keep the two databases for inspection")
    parser.add_argument("--source", help="compare only: the database that was backed up (URL)")
    parser.add_argument("--restored", help="compare only: the restored database (URL)")
    args = parser.parse_args(argv)
    if args.source and args.restored:
        return 1 if compare(args.source, args.restored) else 0
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        print("error: DATABASE_URL is not set (run `make restore-drill`)", file=sys.stderr)
        return 2
    try:
        return drill(server_url, keep=args.keep)
    except (DrillFailure, subprocess.CalledProcessError, psycopg.Error) as exc:
        print(f"restore drill: FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
