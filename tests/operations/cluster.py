"""Several CeR processes on loopback against the test database and a Redis of their own: gunicorn web
servers, Celery workers and beats with the production settings, each in its own process group, each
logging JSON lines to a file under the test's tmp_path. Used by test_many_instances.py."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def database_url(settings_dict: dict[str, Any]) -> str:
    """postgres:// URL of a Django DATABASES entry (TCP host or socket directory)."""
    user = quote(settings_dict.get("USER") or "postgres")
    password = settings_dict.get("PASSWORD")
    auth = f"{user}:{quote(password)}" if password else user
    host, port, name = settings_dict.get("HOST") or "", settings_dict.get("PORT") or "", settings_dict["NAME"]
    if host.startswith("/"):
        return f"postgres://{auth}@/{name}?host={quote(host)}" + (f"&port={port}" if port else "")
    return f"postgres://{auth}@{host or '127.0.0.1'}{':' + str(port) if port else ''}/{name}"


class OwnRedis:
    """A redis-server of this test alone on a free loopback port."""

    def __init__(self, log: Path) -> None:
        self.binary = shutil.which("redis-server") or str(BIN / "redis-server")
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 (a local binary)
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(up, timeout=15, what="redis-server")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@dataclass
class Process:
    name: str
    args: list[str]
    log: Path
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 (the project's own entry points)
                self.args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, sig)
            self.proc.wait(20)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_entries(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
        return entries


@dataclass
class Cluster:
    """web x2 (gunicorn), worker x2, beat x2, one PostgreSQL database, one Redis."""

    database_url: str
    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    webs: list[Process] = field(default_factory=list)
    workers: list[Process] = field(default_factory=list)
    beats: list[Process] = field(default_factory=list)
    redis: OwnRedis | None = None
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(64))

    def env(self) -> dict[str, str]:
        assert self.redis is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.production",
            # One deployment, one secret key (webhook secrets stored by one process are read by another).
            SECRET_KEY=self.secret_key,
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis.url,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            CER_PUBLIC_URL="https://cer.example.gov.pl",
            SECURE_SSL_REDIRECT="false",
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
            CER_BEAT_STANDBY_SECONDS="0.5",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.redis = OwnRedis(self.tmp / "redis.log")
        self.redis.start()
        for i in (1, 2):
            port = free_port()
            self.webs.append(
                Process(
                    f"web{i}",
                    [
                        str(BIN / "gunicorn"),
                        "config.wsgi:application",
                        f"--bind=127.0.0.1:{port}",
                        "--workers=1",
                        "--worker-class=gthread",
                        "--threads=8",
                        "--timeout=120",
                    ],
                    self.tmp / f"web{i}.log",
                    port=port,
                )
            )
            self.workers.append(
                Process(
                    f"worker{i}",
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "worker",
                        "--pool=solo",
                        f"--hostname=worker{i}@%h",
                        "--without-gossip",
                        "--without-mingle",
                        "-l",
                        "info",
                    ],
                    self.tmp / f"worker{i}.log",
                )
            )
            self.beats.append(
                Process(
                    f"beat{i}",
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "beat",
                        "--max-interval=1",
                        "-l",
                        "info",
                    ],
                    self.tmp / f"beat{i}.log",
                )
            )
        env = self.env()
        for process in [*self.webs, *self.workers, *self.beats]:
            process.start(env)
        for web in self.webs:
            wait_for(lambda web=web: self.healthy(web), timeout=120, what=f"{web.name} /healthz")
        for worker in self.workers:
            wait_for(
                lambda worker=worker: "ready" in worker.log.read_text(errors="replace"),
                timeout=120,
                what=f"{worker.name} ready",
            )

    def healthy(self, web: Process) -> bool:
        assert web.port is not None
        if not web.alive():
            raise AssertionError(f"{web.name} exited: {web.log.read_text(errors='replace')[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self) -> None:
        processes = [p for p in [*self.beats, *self.workers, *self.webs] if p.alive()]
        for process in processes:  # all at once, then wait; Celery's cold shutdown (SIGQUIT) is quick
            assert process.proc is not None
            quick = signal.SIGTERM if process in self.webs else signal.SIGQUIT
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.proc.pid, quick)
        for process in processes:
            process.stop()
        if self.redis:
            self.redis.stop()

    def send_task(self, name: str, *args: Any) -> None:
        """Put a task on the cluster's broker (any worker may take it)."""
        from celery import Celery

        assert self.redis is not None
        # Not the current app: the test process's own tasks stay eager (set_as_current=False).
        app = Celery("cer-test-client", broker=self.redis.url, set_as_current=False)
        try:
            app.send_task(name, args=list(args))
        finally:
            app.close()
