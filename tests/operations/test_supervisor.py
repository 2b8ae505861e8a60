"""`make run` stops everything it started, whatever signal stops it (scripts/services.py).

GIVEN `make run` with the embedded PostgreSQL and Redis, serving on a free port
WHEN its process group gets SIGTERM (timeout, systemd, a container stop), or make alone gets SIGTERM,
     or the group gets SIGINT as a terminal's Ctrl-C sends it
THEN make exits, no process it started is left (web, worker, beat, their pool children, the embedded
     servers), and the port is free again.

The processes are found by a marker in their environment, which every descendant inherits (the
embedded PostgreSQL too, although pg_ctl puts it into a session of its own).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
START_TIMEOUT = 420  # first start: initdb, migrations and the demo data on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT left by the probe is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _marked_processes(marker: str) -> list[str]:
    needle = f"CER_SUPERVISOR_TEST={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            found.append(f"{entry.name} {cmdline.strip()}")
    return found


@pytest.fixture(scope="module")
def var_dir() -> Iterator[Path]:
    path = ROOT / "var" / f"test-supervisor-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    credentials = ROOT / "var" / "demo-credentials.txt"  # seed_demo rewrites it: the developer's stay
    saved = credentials.read_bytes() if credentials.exists() else None
    yield path
    shutil.rmtree(path, ignore_errors=True)
    if saved is None:
        credentials.unlink(missing_ok=True)
    else:
        credentials.write_bytes(saved)


@contextlib.contextmanager
def make_run(var_dir: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, str, Path]]:
    port, marker = _free_port(), uuid.uuid4().hex
    dropped = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")  # the embedded pair, dev settings
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(CER_VAR_DIR=str(var_dir), CER_SUPERVISOR_TEST=marker)
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        # Its own session, as a shell gives a foreground job: make leads the process group.
        make = subprocess.Popen(  # noqa: S603 (our own Makefile)
            [shutil.which("make") or "make", "--no-print-directory", "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert make.poll() is None, f"make run exited early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not serving in {START_TIMEOUT}s:\n{log.read_text()[-3000:]}"
            url = f"http://127.0.0.1:{port}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
            time.sleep(1)
        yield make, port, marker, log
    finally:
        if make.poll() is None:  # a failed test still cleans up after itself
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        for line in _marked_processes(marker):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line.split()[0]), signal.SIGKILL)


def _assert_everything_stopped(make: subprocess.Popen[bytes], port: int, marker: str, log: Path) -> None:
    try:
        make.wait(90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"make run still running 90 s after the signal:\n{log.read_text()[-3000:]}")
    deadline = time.monotonic() + 5  # the killed processes' parents reap them
    while (left := _marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"left running:\n{left}\n{log.read_text()[-3000:]}"
    assert _port_free(port)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_sigterm_to_the_process_group_stops_everything(var_dir, tmp_path):
    with make_run(var_dir, tmp_path) as (make, port, marker, log):
        os.killpg(make.pid, signal.SIGTERM)
        _assert_everything_stopped(make, port, marker, log)


def test_sigterm_to_make_alone_stops_everything(var_dir, tmp_path):
    with make_run(var_dir, tmp_path) as (make, port, marker, log):
        make.send_signal(signal.SIGTERM)
        _assert_everything_stopped(make, port, marker, log)


def test_sigint_to_the_process_group_as_a_terminal_sends_it_stops_everything(var_dir, tmp_path):
    with make_run(var_dir, tmp_path) as (make, port, marker, log):
        os.killpg(make.pid, signal.SIGINT)
        _assert_everything_stopped(make, port, marker, log)
