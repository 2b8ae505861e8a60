"""The CPU of one API booking, in process: `POST /api/v1/bookings` through the WSGI application itself.

    python -m bench.profile_booking                    # 300 bookings, 300 refusals, 300 pings
    python -m bench.profile_booking --profile b.prof   # also a cProfile (process time) of the bookings
    python -m bench.profile_booking --top 40           # and print its 40 costliest functions

The same production settings as `bench.run` (DATABASE_URL, REDIS_URL; a data set of `bench.run`
already in the database: MAMMO_SCR schedules of the generator). Fresh slots and screening-eligible
patients are published and made for each run, one facility system's OAuth token is fetched first (its
secret check is a deliberately slow hash). The requests go through `config.wsgi.application` on this
thread, as gunicorn would hand them over (one request at a time, so no lost race and no waiting): the
web CPU of a booking is this process's CPU time per request, the database's is the CPU time of this
thread's PostgreSQL backend (psutil), both steadier on a shared box than any rate over HTTP. Each
booking is its own patient's on its own slot (the uncontended booking); the refusals are the same
POSTs again, each with a new Idempotency-Key (a lost race: `409 slot_not_free`); the pings are
`GET /api/v1/ping` (the framework's floor). Statement counts come from Django's execute wrappers
(the connection's own health check is not counted).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import json
import pstats
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any


def _environ(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        if name.lower() == "content-type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def call(app: Any, environ: dict[str, Any]) -> tuple[int, bytes]:
    """One request through the WSGI application, closed as a server closes it (request_finished)."""
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return int(status[0].split()[0]), body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bookings", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--profile", default=None, help="write a cProfile (process time) of the bookings")
    parser.add_argument("--top", type=int, default=0, help="print the N costliest functions (tottime)")
    parser.add_argument(
        "--phases",
        action="store_true",
        help="also the web CPU of the main steps of a booking (process time around each, no profiler)",
    )
    parser.add_argument(
        "--per-statement",
        action="store_true",
        help="also the database CPU of each statement of a booking (reads the backend's CPU around each)",
    )
    args = parser.parse_args(argv)

    from bench.run import _settings_environment, _slots_analyze, _storm_patients, _storm_slots

    _settings_environment()
    import django

    django.setup()
    import psutil
    from django.db import connection

    from apps.catalog.models import Service
    from apps.integration.services import api_client_issue
    from apps.scheduling.models import Schedule
    from config.wsgi import application

    service = Service.objects.get(code="MAMMO_SCR")
    schedule = (
        Schedule.objects.filter(service=service, external_id__startswith="GEN-S-")
        .select_related("facility")
        .order_by("id")
        .first()
    )
    if schedule is None:
        raise SystemExit(
            "no generated MAMMO_SCR schedule: run `python -m bench.run --quick --only storm` first"
        )
    count, warm = args.bookings, args.warmup
    rows = _storm_slots([schedule], count + warm, service.slot_minutes)
    _slots_analyze([slot_id for slot_id, _ in rows])  # as autovacuum would after the publish
    patients = [p.pesel for p in _storm_patients(count + warm)]
    issued = api_client_issue(
        facility=schedule.facility, name="bench profile", scopes=["bookings:write", "bookings:read"], days=1
    )
    basic = base64.b64encode(f"{issued.client_id}:{issued.client_secret}".encode()).decode()
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "bookings:write"}).encode()
    status, body = call(
        application,
        _environ(
            "POST",
            "/api/v1/oauth/token/",
            form,
            {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        ),
    )
    if status != 200:
        raise SystemExit(f"token: {status} {body[:200]!r}")
    token = json.loads(body)["access_token"]

    def post(slot_id: int, pesel: str) -> dict[str, Any]:
        data = json.dumps({"slot_id": slot_id, "pesel": pesel, "channel": "desk"}).encode()
        return _environ(
            "POST",
            "/api/v1/bookings",
            data,
            {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": str(uuid.uuid4()),
            },
        )

    statements = [0]
    per_statement: dict[str, list[float]] = {}
    backend_now: list[Any] = [None]

    def counting(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        statements[0] += 1
        if not args.per_statement or backend_now[0] is None:
            return execute(sql, params, many, context)
        before = sum(backend_now[0].cpu_times()[:2])
        try:
            return execute(sql, params, many, context)
        finally:
            spent = per_statement.setdefault(" ".join(sql.split())[:70], [0, 0.0])
            spent[0] += 1
            spent[1] += sum(backend_now[0].cpu_times()[:2]) - before

    def measure(
        label: str, environs: list[dict[str, Any]], expect: int, profile: Any = None
    ) -> dict[str, Any]:
        call(application, _environ("GET", "/api/v1/ping"))  # the connection open before the meter
        backend = psutil.Process(connection.connection.info.backend_pid)
        backend_now[0] = backend if label == "booking" else None
        db0, web0, wall0 = sum(backend.cpu_times()[:2]), time.process_time(), time.perf_counter()
        statements[0] = 0
        bad: dict[int, int] = {}
        with connection.execute_wrapper(counting):
            if profile is not None:
                profile.enable()
            for environ in environs:
                got, _ = call(application, environ)
                if got != expect:
                    bad[got] = bad.get(got, 0) + 1
            if profile is not None:
                profile.disable()
        web, wall = time.process_time() - web0, time.perf_counter() - wall0
        db = sum(backend.cpu_times()[:2]) - db0
        n = len(environs)
        if connection.connection is None or connection.connection.info.backend_pid != backend.pid:
            raise SystemExit(f"{label}: the database connection changed during the run")
        if bad:
            raise SystemExit(f"{label}: unexpected answers {bad}")
        return {
            "what": label,
            "requests": n,
            "web_ms": round(web / n * 1000, 3),
            "db_ms": round(db / n * 1000, 3),
            "wall_ms": round(wall / n * 1000, 3),
            "statements": round(statements[0] / n, 2),
        }

    phases: dict[str, list[float]] = {}
    if args.phases:
        _time_phases(phases)
    for (slot_id, _), pesel in zip(rows[:warm], patients[:warm], strict=True):
        call(application, post(slot_id, pesel))  # prepared statements, caches, the principal's copy
    for _ in range(warm):
        call(application, _environ("GET", "/api/v1/ping"))
    booking_rows, booking_patients = rows[warm:], patients[warm:]
    profile = cProfile.Profile(time.process_time) if args.profile or args.top else None
    results = [measure("ping", [_environ("GET", "/api/v1/ping") for _ in range(count)], 200)]
    calls_before = _calls(profile)
    for spent in phases.values():
        spent[:] = [0, 0.0]
    results.append(
        measure(
            "booking",
            [post(s, p) for (s, _), p in zip(booking_rows, booking_patients, strict=True)],
            201,
            profile,
        )
    )
    calls = (_calls(profile) - calls_before) / count if profile is not None else None
    booking_phases = {name: (n / count, t / count * 1000) for name, (n, t) in phases.items()}
    results.append(
        measure(
            "refused (409)",
            [post(s, p) for (s, _), p in zip(booking_rows, booking_patients, strict=True)],
            409,
        )
    )
    ping = results[0]["web_ms"] + results[0]["db_ms"]
    print(f"{'':16} {'web ms':>8} {'db ms':>8} {'web+db':>8} {'x ping':>7} {'stmts':>6} {'wall ms':>8}")
    for r in results:
        both = r["web_ms"] + r["db_ms"]
        print(
            f"{r['what']:16} {r['web_ms']:8.3f} {r['db_ms']:8.3f} {both:8.3f} {both / ping:7.1f} "
            f"{r['statements']:6.1f} {r['wall_ms']:8.3f}"
        )
    if calls is not None:
        print(f"Python function calls per booking (cProfile): {calls:.0f}")
    for name, (n, ms_) in booking_phases.items():
        print(f"  web {ms_:6.3f} ms per booking, {n:4.1f}x: {name}")
    for text, (n, spent) in sorted(per_statement.items(), key=lambda kv: -kv[1][1]):
        print(f"  db {spent / count * 1000:6.3f} ms per booking, {n / count:4.1f}x: {text}")
    if profile is not None:
        if args.profile:
            profile.dump_stats(args.profile)
        if args.top:
            stats = pstats.Stats(profile).strip_dirs()
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)
    with connection.cursor() as cursor:  # how PostgreSQL planned this connection's prepared statements
        cursor.execute(
            "SELECT generic_plans, custom_plans, regexp_replace(statement, '\\s+', ' ', 'g')"
            " FROM pg_prepared_statements ORDER BY custom_plans DESC"
        )
        plans = cursor.fetchall()
    for generic, custom, text in plans:
        print(f"  plans: {generic:5} generic {custom:5} custom: {text[:90]}")
    print(json.dumps({"results": results, "calls_per_booking": calls}))
    return 0


PHASES = (
    ("apps.integration.auth", "ApiClientAuthentication.authenticate"),
    ("apps.integration.apis.bookings", "BookingCreateApi.refuse_early"),
    ("apps.integration.apis.base", "idempotency_claim_reading"),
    ("apps.integration.apis.base", "FacilityApi._transaction_begin"),
    ("apps.integration.apis.bookings", "patient_for_facility"),
    ("apps.integration.apis.bookings", "booking.appointment_book"),
    ("apps.booking.services.book", "lock_slot_facts"),
    ("apps.booking.services.book", "sql.booking_write"),
    ("apps.integration.apis.bookings", "booking_output"),
    ("apps.integration.apis.bookings", "BookingApi.respond"),
    ("apps.integration.apis.base", "idempotency_store"),
    ("rest_framework.views", "APIView.dispatch"),
    ("apps.integration.apis.base", "FacilityApi.dispatch"),
    ("django.core.handlers.base", "BaseHandler.get_response"),
)


def _time_phases(phases: dict[str, list[float]]) -> None:
    """Wrap the steps of PHASES (module, attribute path there) to add up their process time."""
    import importlib

    for module_name, path in PHASES:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = getattr(owner, name)
        spent = phases.setdefault(path, [0, 0.0])

        def timed(*a: Any, _original: Any = original, _spent: list[float] = spent, **k: Any) -> Any:
            began = time.process_time()
            try:
                return _original(*a, **k)
            finally:
                _spent[0] += 1
                _spent[1] += time.process_time() - began

        setattr(owner, name, timed)


def _calls(profile: Any) -> int:
    if profile is None:
        return 0
    profile.create_stats()
    return sum(v[1] for v in profile.stats.values())


if __name__ == "__main__":
    raise SystemExit(main())
