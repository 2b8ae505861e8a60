"""Issue 17: the quickstart runs as written.

Every ```bash / ```sh block of docs/integration-quickstart.md runs with bash, in order, in one session
(`set -euo pipefail`), against a freshly started server on loopback (pytest-django's live server, port
0) holding the demo data `make run` loads for it: the reference data and demo facilities, the demo
patients with the named e-referral, the demo API client. The client's id and secret reach the page
through CER, CLIENT_ID and CLIENT_SECRET, the variables it names at its top. Its `python manage.py`
and `make manage` lines run with the development settings against the same database, as on a
developer's machine.

`curl` is observed, not replaced: a shell function in front of it records the arguments, status line
and body of each call while the page's pipelines get the same output. The test then checks what the
page says the key answers are. Webhooks go to a receiver on loopback (HOOK_URL, allowed by the
development settings events.md documents), where the page's own `verify` checks their signatures.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.db import connection

from apps.catalog import demo as catalog_demo
from apps.core import demo as core_demo
from apps.integration import demo as integration_demo
from apps.integration.tasks import webhooks_fan_out_task
from apps.portal import demo as portal_demo
from scripts.restore_drill import with_database

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integration-quickstart.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)

# Runs before the page's first block: records every curl call (numbered through a file, since the page
# calls curl in command substitutions, i.e. subshells) and marks each block done.
PRELUDE = r"""
curl() {
  local n
  n=$(( $(cat "$CURL_LOG/count") + 1 ))
  echo "$n" > "$CURL_LOG/count"
  printf '%s\n' "$@" > "$CURL_LOG/$n.args"
  command curl -D "$CURL_LOG/$n.headers" "$@" | tee "$CURL_LOG/$n.body"
}
block_done() { echo "$1" >> "$CURL_LOG/blocks"; }
"""


def blocks(language: tuple[str, ...] = ("bash", "sh")) -> list[str]:
    return [body for lang, body in FENCE.findall(DOC.read_text(encoding="utf-8")) if lang in language]


@dataclass
class Call:
    args: list[str]
    status: int
    body: str

    @property
    def url(self) -> str:
        return next(a for a in self.args if a.startswith("http"))

    @property
    def method(self) -> str:
        if "-X" in self.args:
            return self.args[self.args.index("-X") + 1]
        return "POST" if "-d" in self.args else "GET"

    @property
    def path(self) -> str:
        return re.sub(r"^https?://[^/]+", "", self.url).split("?")[0]

    def json(self):
        return json.loads(self.body)


def _calls(log: Path) -> list[Call]:
    calls = []
    for n in range(1, int((log / "count").read_text()) + 1):
        statuses = re.findall(r"^HTTP/\S+ (\d{3})", (log / f"{n}.headers").read_text(), re.M)
        args = (log / f"{n}.args").read_text().splitlines()
        calls.append(Call(args, int(statuses[-1]), (log / f"{n}.body").read_text()))
    return calls


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers.items()), body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def demo_data(transactional_db, tmp_path, monkeypatch):
    """What `make run` (seed_demo) loads that the page uses; the slots of the demo schedules and the
    demo reconciliation months are left out (a minute of seeding the page does not need). The demo
    log-ins go to a file of the test, not the developer's var/demo-credentials.txt."""
    monkeypatch.setattr(core_demo, "CREDENTIALS_FILE", tmp_path / "demo-credentials.txt")
    for seeder in (catalog_demo, portal_demo, integration_demo):
        seeder.demo_seed(out=io.StringIO())
    line = core_demo.credentials_read()[f"api-client:{integration_demo.PREFERRED_FACILITY}"]
    return dict(re.findall(r"(client_id|client_secret)=(\S+)", line))


def test_the_quickstart_runs_as_written(live_server, demo_data, receiver, settings, tmp_path):
    # events.md "Testing a receiver locally": a development server may deliver to http on loopback.
    settings.CER_WEBHOOK_ALLOW_HTTP = True
    settings.CER_WEBHOOK_ALLOW_PRIVATE = True
    shell = blocks()
    assert len(shell) >= 10
    log = tmp_path / "curl"
    log.mkdir()
    (log / "count").write_text("0")
    script = PRELUDE + "".join(f"{block}block_done {n}\n" for n, block in enumerate(shell))
    env = {
        **os.environ,
        "CER": live_server.url,
        "CLIENT_ID": demo_data["client_id"],
        "CLIENT_SECRET": demo_data["client_secret"],
        "HOOK_URL": f"http://127.0.0.1:{receiver.server_port}/cer/webhook",
        "CURL_LOG": str(log),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DATABASE_URL": with_database(os.environ["DATABASE_URL"], connection.settings_dict["NAME"]),
    }
    # The page's defaults (the demo patient), and a developer's shell rather than `make test`'s.
    for name in ("PESEL", "REFERRAL_NUMBER", "REFERRAL_CODE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)

    result = subprocess.run(  # noqa: S603 (bash with the page's own blocks)
        ["/bin/bash", "-eu", "-o", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    done = (log / "blocks").read_text().split() if (log / "blocks").exists() else []
    failed = shell[len(done)] if len(done) < len(shell) else ""
    assert result.returncode == 0 and len(done) == len(shell), (
        f"block {len(done) + 1} of {len(shell)} failed:\n{failed}\n--- stderr:\n{result.stderr[-3000:]}"
        f"\n--- stdout:\n{result.stdout[-2000:]}"
    )
    calls = _calls(log)
    refused = [(c.method, c.path, c.status, c.body[:300]) for c in calls if c.status >= 400]
    assert refused == []

    def answer(method: str, pattern: str) -> Call:
        found = [c for c in calls if c.method == method and re.fullmatch(pattern, c.path)]
        assert found, (method, pattern)
        return found[0]

    # Schedule, template slots up to six weeks ahead and two explicit slots.
    assert answer("POST", r"/api/v1/schedules").status == 201
    assert answer("PUT", r"/api/v1/schedules/\d+/templates").json()["slots_created"] > 0
    assert answer("POST", r"/api/v1/schedules/\d+/slots").json() == {"created": 2, "skipped": 0}
    # The webhook: subscribed, a signed test event received and verified with the page's own code.
    subscription = answer("POST", r"/api/v1/webhooks")
    assert subscription.status == 201 and subscription.json()["secret"].startswith("whsec_")
    assert answer("POST", r"/api/v1/webhooks/\d+/test").status == 202
    assert answer("POST", r"/api/v1/webhook-deliveries/\d+/redeliver").status == 202
    webhooks_fan_out_task.delay()  # what Celery beat does every 5 seconds: the booking's events go out
    namespace: dict = {}
    exec(blocks(("python",))[0], namespace)  # noqa: S102 (the page's verify(), as published)
    types = [headers["CeR-Event-Type"] for headers, _ in receiver.received]
    assert "webhook.test" in types and "appointment.booked" in types, types
    assert all(
        namespace["verify"](subscription.json()["secret"], headers, body)
        for headers, body in receiver.received
    )
    # The demo patient's booking with the named e-referral, moved, confirmed, then cancelled at their request.
    booked = answer("POST", r"/api/v1/bookings")
    assert booked.status == 201
    assert booked.json()["status"] == "booked" and booked.json()["referral"]["status"] == "registered"
    assert booked.json()["patient"]["pesel"] == "61063090391"
    assert answer("POST", r"/api/v1/bookings/\d+/confirm").json()["status"] == "confirmed"
    cancelled = answer("POST", r"/api/v1/bookings/\d+/cancel").json()
    assert cancelled["status"] == "cancelled_by_patient" and cancelled["referral"]["status"] == "issued"
    # The changes feed from the kept cursor: the booking, made by this page.
    after = next(c for c in calls if c.path == "/api/v1/changes" and "cursor=" in c.url).json()
    assert "appointment.booked" in [e["type"] for e in after["results"]]
    # The waiting list: the entry waits (nothing published that late), then leaves.
    joined = answer("POST", r"/api/v1/waitlist")
    assert joined.status == 201 and joined.json()["status"] == "waiting" and joined.json()["position"] == 1
    assert answer("POST", r"/api/v1/waitlist/\d+/leave").json()["status"] == "closed"
    # The development-only past visit, its outcome, and the visits reported for settlement.
    attended = answer("POST", r"/api/v1/bookings/\d+/outcome").json()
    assert attended["status"] == "attended" and attended["referral"]["status"] == "realised"
    report = answer("POST", r"/api/v1/visits").json()
    assert (report["received"], report["recorded"], report["rejected"]) == (2, 2, 0)
    visits = answer("GET", r"/api/v1/visits").json()["results"]
    assert sorted(v["emergency"] for v in visits) == [False, True]
    assert all(v["verdict"] is None for v in visits)
