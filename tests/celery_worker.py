"""Real Celery worker processes for tests (the fault suite, the worker metrics endpoint), on loopback.

`python -m tests.celery_worker` starts the project's Celery app (`config.celery`) as a prefork worker
with the test settings, but sending the tasks it enqueues itself to the broker (the test settings run
them eagerly in the test process). The broker is a redis-server of the test's own (`OwnRedis`), so a
test may stop it or kill workers without touching anything another test uses.

Shortened for tests only, through the environment (production keeps its defaults):
- `CHAOS_VISIBILITY_TIMEOUT`: seconds after which Redis hands an unacknowledged task of a worker
  that died to another worker (kombu's default: 3600), checked every second;
- `CHAOS_WEBHOOK_LEASE`: seconds a claimed webhook attempt is leased (`apps.integration.webhooks.LEASE`,
  60 s) before the retry job may take it again.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _die_with_parent() -> None:  # pragma: no cover (runs in the child before exec)
    """Linux: the child gets SIGKILL when the test process dies (a test run stopped outright leaves no
    worker or Redis behind)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _tied_to_the_test_process() -> Callable[[], None] | None:
    """The parent-death signal follows the *thread* that started the child: only the main thread's
    children get it (a server restarted from a timer thread must outlive that thread)."""
    return _die_with_parent if threading.current_thread() is threading.main_thread() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, *, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class OwnRedis:
    """A redis-server of this test alone on a loopback port (stopped and started at will)."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server") or os.path.join(
            os.path.dirname(sys.executable), "redis-server"
        )
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def available(self) -> bool:
        return os.path.exists(self.binary)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.proc = subprocess.Popen(  # noqa: S603 (a fixed local binary)
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_tied_to_the_test_process()
        )
        wait_for_port(self.port, seconds=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Worker:
    """One `celery worker` process group (the main process and its pool children) for a test."""

    def __init__(self, *, env: dict[str, str], log_dir: Path, concurrency: int = 1) -> None:
        self.env = env
        self.concurrency = concurrency
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.output: Path | None = None

    def start(self) -> Worker:
        self.output = self.log_dir / f"worker-{time.monotonic_ns()}.log"
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 (this interpreter, a module of the tests)
                [sys.executable, "-m", "tests.celery_worker", str(self.concurrency)],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGKILL reaches the pool children too
                preexec_fn=_tied_to_the_test_process(),
            )
        return self

    def wait_ready(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log()[-3000:]
            if " ready." in self.log():
                return
            time.sleep(0.1)
        raise RuntimeError("the worker did not get ready: " + self.log()[-3000:])

    def log(self) -> str:
        return self.output.read_text(errors="replace") if self.output and self.output.exists() else ""

    def kill(self) -> None:
        """SIGKILL to the whole worker (main process and pool), as a lost machine or the OOM killer."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def worker_env(*, database_name: str, broker_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker of this test: the test database, the test's own Redis, the test
    process's secrets (webhook secrets are encrypted with them). The rest is inherited, the test run's
    name included, so the worker's log lines go to the run's log and are scanned with it at the end
    (tests/conftest.py)."""
    from django.conf import settings

    from scripts.restore_drill import with_database

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": with_database(os.environ["DATABASE_URL"], database_name),
        "REDIS_URL": broker_url,
        "SECRET_KEY": settings.SECRET_KEY,
        **extra,
    }
    if getattr(settings, "CER_WEBHOOK_SECRET_KEY", None):
        env["CER_WEBHOOK_SECRET_KEY"] = settings.CER_WEBHOOK_SECRET_KEY
    return env


@contextmanager
def broker(url: str):
    """Send tasks by name to the broker at `url` (`send(name, *args)`), as beat or a web process would."""
    from celery.exceptions import AlwaysEagerIgnored

    from config.celery import app

    with app.connection_for_write(url) as connection:

        def send(name: str, *args: Any) -> None:
            with warnings.catch_warnings():  # the test settings' eager mode does not apply to send_task
                warnings.simplefilter("ignore", AlwaysEagerIgnored)
                app.send_task(name, args=list(args), connection=connection)

        yield send


def main() -> None:  # pragma: no cover (runs in the worker process)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from config.celery import app

    app.conf.task_always_eager = False
    timeout = float(os.environ.get("CHAOS_VISIBILITY_TIMEOUT", "3600"))
    app.conf.broker_transport_options = {
        "visibility_timeout": timeout,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    if os.environ.get("CHAOS_WEBHOOK_LEASE"):
        from apps.integration import webhooks

        webhooks.LEASE = dt.timedelta(seconds=float(os.environ["CHAOS_WEBHOOK_LEASE"]))
    concurrency = sys.argv[1] if len(sys.argv) > 1 else "1"
    app.worker_main(
        [
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=test-{os.getpid()}@localhost",
        ]
    )


if __name__ == "__main__":
    main()
