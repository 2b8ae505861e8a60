"""A PostgreSQL primary and its streaming replica on loopback, from this machine's PostgreSQL binaries
(initdb, pg_basebackup -R), holding a copy of the test database. Used by test_replica.py, and without
the replica by tests/chaos/test_faults.py (a server of its own to restart under load).

Run as the `postgres` user when the tests run as root (PostgreSQL refuses to run as root). Everything
lives in one temporary directory, removed by stop()."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "pg_dump", "psql")


def server_major(settings_dict: dict[str, Any]) -> int:
    """The major version of the server behind a Django database (16 for 16.2)."""
    with psycopg.connect(
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        user=settings_dict["USER"] or None,
        password=settings_dict["PASSWORD"] or None,
        dbname=settings_dict["NAME"],
    ) as conn:
        return int(conn.info.server_version) // 10000


def _major_of(directory: Path) -> int | None:
    try:
        out = subprocess.check_output([str(directory / "postgres"), "--version"], text=True)  # noqa: S603
    except (OSError, subprocess.CalledProcessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def bindir(major: int | None = None) -> Path | None:
    """The first directory holding every tool, of the given major version when one is given (pg_dump
    refuses a newer server): CER_PG_BINDIR, pg_config --bindir, the embedded server's own (pgserver,
    what `make test` starts without DATABASE_URL), Debian's paths."""
    candidates = [os.environ.get("CER_PG_BINDIR", "")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            candidates.append(subprocess.check_output([pg_config, "--bindir"], text=True).strip())  # noqa: S603
    with contextlib.suppress(ImportError):
        import pgserver

        candidates.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin"))
    candidates += ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"]
    for candidate in candidates:
        if not candidate or not all((Path(candidate) / tool).is_file() for tool in (*TOOLS, "postgres")):
            continue
        if major is None or _major_of(Path(candidate)) == major:
            return Path(candidate)
    return None


def server_user() -> pwd.struct_passwd | None:
    """Who runs the servers: ourselves, or `postgres` when we are root (None: nobody suitable)."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StreamingPair:
    def __init__(self, bin_dir: Path, user: pwd.struct_passwd) -> None:
        self.bin = bin_dir
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="cer-replica-"))
        os.chown(self.root, user.pw_uid, user.pw_gid)
        self.primary_port, self.replica_port = _free_port(), _free_port()
        self.database = "cer"
        self.started: list[Path] = []

    def _run(self, *args: str, as_server: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if as_server and os.geteuid() == 0:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run(  # noqa: S603 (PostgreSQL's own tools)
            [str(self.bin / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=120,
            **extra,
            **kwargs,
        )

    def _start(self, data: Path, port: int, *settings: str) -> None:
        options = " ".join(
            ["-p", str(port), "-k", str(self.root), "-c", "listen_addresses=127.0.0.1", *settings]
        )
        self._run(
            "pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / f"{data.name}.log"), "-w", "start"
        )
        self.started.append(data)

    def start(self, source: dict[str, Any], *, replica: bool = True) -> None:
        """The primary with a copy of `source` (a Django DATABASES entry), then, if `replica`, its
        streaming replica."""
        primary = self.root / "primary"
        self._run("initdb", "-D", str(primary), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self._start(
            primary,
            self.primary_port,
            *("-c", "wal_level=replica", "-c", "max_wal_senders=4", "-c", "fsync=off"),
            *("-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
        )
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres", "-d", "postgres",
                  "-qc", f"CREATE DATABASE {self.database}")  # fmt: skip
        # The test database's schema and reference rows, as migrated for this run.
        env = {**os.environ, "PGPASSWORD": source.get("PASSWORD") or ""}
        dump = self._run(
            "pg_dump",
            "-h",
            str(source.get("HOST") or "127.0.0.1"),
            "-p",
            str(source.get("PORT") or 5432),
            "-U",
            source.get("USER") or "postgres",
            "--no-owner",
            "--no-privileges",
            source["NAME"],
            as_server=False,
            env=env,
        ).stdout
        self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres", "-d", self.database,
            "-q", "-v", "ON_ERROR_STOP=1", input=dump,
        )  # fmt: skip
        if replica:
            self._start_replica()

    def _start_replica(self) -> None:
        replica = self.root / "replica"
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
            "-D", str(replica), "-R", "-X", "stream", "-c", "fast", "--no-sync",
        )  # fmt: skip
        self._start(replica, self.replica_port, "-c", "hot_standby=on", "-c", "fsync=off")

    def stop(self) -> None:
        for data in reversed(self.started):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def restart_primary(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m <mode>`: sessions are ended, the server stops and starts again with the
        same options; returns once it accepts connections."""
        primary = self.root / "primary"
        log = str(self.root / "primary.log")  # without -l the server would keep our output pipe open
        self._run("pg_ctl", "-D", str(primary), "-l", log, "-m", mode, "-w", "restart")

    def replica_down(self) -> None:
        """Stop the replica at once (`-m immediate`: its sessions are cut, as in a crash)."""
        self._run("pg_ctl", "-D", str(self.root / "replica"), "-m", "immediate", "-w", "stop")

    def replica_up(self) -> None:
        """Start the replica again after `replica_down`; returns once it accepts connections."""
        replica = self.root / "replica"
        self.started.remove(replica)
        self._start(replica, self.replica_port, "-c", "hot_standby=on", "-c", "fsync=off")

    # --- control ------------------------------------------------------------------------------

    def conninfo(self, port: int) -> str:
        return f"host=127.0.0.1 port={port} user=postgres dbname={self.database}"

    def settings_for(self, base: dict[str, Any], port: int) -> dict[str, Any]:
        """A Django DATABASES entry like `base`, pointing at one of the pair."""
        return {
            **base,
            "NAME": self.database,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "USER": "postgres",
            "PASSWORD": "",
            "CONN_MAX_AGE": 0,
        }

    def replay(self, *, paused: bool) -> None:
        with psycopg.connect(self.conninfo(self.replica_port), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")

    def wait_replayed(self, timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        with psycopg.connect(self.conninfo(self.primary_port), autocommit=True) as primary:
            row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert row is not None
            lsn = row[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.conninfo(self.replica_port), autocommit=True) as replica:
            while True:
                done = replica.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()
                if done and done[0]:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"the replica did not replay up to {lsn} within {timeout:.0f} s")
                time.sleep(0.05)
