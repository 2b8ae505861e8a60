"""National-scale benchmarks: one command, one table, ratios against baselines measured in the same run.

    python -m bench.run --quick        # scale 0.005, under two minutes (make bench QUICK=1)
    python -m bench.run                # scale 1.0 (make bench)
    python -m bench.run --scale 0.1    # anything in between

Uses the PostgreSQL and Redis named by DATABASE_URL / REDIS_URL (`make bench` provides them) and the
production settings (a SECRET_KEY generated for the run, ALLOWED_HOSTS=127.0.0.1). Generates the data
set first unless it is already there at the same scale. Writes bench/results/<date>[-<scale>].json and
.md, plus the EXPLAIN plans of the search. Absolute figures drift on shared machines; the ratios
against baselines taken minutes apart on the same data are what to compare across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
QUICK_SCALE = 0.005  # 50 schedules, 10,000 patients (make bench QUICK=1)


# --- small helpers -------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return round(value / baseline, 2)


class Report:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.details: dict[str, Any] = {}

    def add(
        self,
        workload: str,
        metric: str,
        value: Any,
        baseline: Any = None,
        ratio_: float | None = None,
        note: str = "",
    ) -> None:
        self.rows.append(
            {
                "workload": workload,
                "metric": metric,
                "value": value,
                "baseline": baseline,
                "ratio": ratio_,
                "note": note,
            }
        )

    def skip(self, workload: str, why: str) -> None:
        self.add(workload, "skipped", None, note=f"skipped: {why}")

    def table(self) -> str:
        header = ("workload", "metric", "value", "baseline", "ratio", "note")
        lines = [header] + [
            (
                r["workload"],
                r["metric"],
                "" if r["value"] is None else str(r["value"]),
                "" if r["baseline"] is None else str(r["baseline"]),
                "" if r["ratio"] is None else f"{r['ratio']}x",
                r["note"],
            )
            for r in self.rows
        ]
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
        out = []
        for n, line in enumerate(lines):
            out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def markdown(self) -> str:
        out = ["| workload | metric | value | baseline | ratio | note |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            cells = [
                r["workload"],
                r["metric"],
                "" if r["value"] is None else str(r["value"]),
                "" if r["baseline"] is None else str(r["baseline"]),
                "" if r["ratio"] is None else f"{r['ratio']}x",
                r["note"].replace("|", "/"),
            ]
            out.append("| " + " | ".join(cells) + " |")
        return "\n".join(out)


def _settings_environment() -> None:
    """Production settings, as gunicorn will get them; a SECRET_KEY made for this run only."""
    missing = [v for v in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not set: run `make bench` (it provides the servers)")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    if len(os.environ.get("SECRET_KEY", "")) < 50:
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(64)
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    os.environ["CER_PUBLIC_URL"] = "https://cer.example.gov.pl"  # links in messages; none is sent
    os.environ["SECURE_SSL_REDIRECT"] = "false"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Every request still counts against the per-client limit (the same Redis round trip), but the
    # storm's few facility systems send thousands in a minute: a limit no workload reaches.
    os.environ.setdefault("CER_API_RATE_LIMIT", "1000000")


def _module_has(module: str, *names: str) -> bool:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        return False
    return all(hasattr(mod, n) for n in names)


# --- data ----------------------------------------------------------------------------------------


def data_ensure(
    scale: float,
    seed: int,
    report: Report,
    *,
    generate: bool = True,
    visit_factor: float = 1.0,
    days: int = 90,
) -> dict[str, Any]:
    from apps.core.management.commands.generate_national_data import (
        generated_facilities,
        national_data_generate,
        plan_for,
    )

    expected = plan_for(scale)["facilities"]
    existing = generated_facilities()
    if existing and existing != expected:
        raise SystemExit(
            f"the database holds generated data of another scale ({existing} facilities, {expected} expected "
            "at this scale): point DATABASE_URL at an empty database"
        )
    if not existing and not generate:
        raise SystemExit("--no-generate: no generated data in this database (run once without it)")
    if existing:
        info: dict[str, Any] = {"generated": False, "scale": scale}
        report.add("data", "generation", "reused", note=f"{existing} generated facilities already present")
    else:
        print(f"Generating national data at scale {scale} (seed {seed}) ...", flush=True)
        info = national_data_generate(
            scale=scale,
            seed=seed,
            start=dt.datetime.now(dt.UTC).date(),
            visit_factor=visit_factor,
            days=days,
            out=lambda line: print(line, flush=True),
        )
        info["generated"] = True
        report.add("data", "generation wall time (s)", info["seconds"]["total"], note=f"scale {scale}")
        report.add(
            "data", "slot insert rate (slots/s)", round(info["rows"]["slots"] / info["seconds"]["slots"])
        )
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            """SELECT (SELECT count(*) FROM scheduling_slot),
                      (SELECT count(*) FROM scheduling_slot WHERE status='free'),
                      (SELECT count(*) FROM patients_patient),
                      (SELECT count(*) FROM booking_registration WHERE status='waiting'),
                      (SELECT count(*) FROM scheduling_schedule),
                      (SELECT count(*) FROM reconciliation_reportedvisit)"""
        )
        slots, free, patients, waiting, schedules, visits = cur.fetchone()
    info["counts"] = {
        "slots": slots,
        "free": free,
        "patients": patients,
        "waiting": waiting,
        "schedules": schedules,
        "reported_visits": visits,
    }
    report.add(
        "data",
        "rows",
        f"{schedules} schedules, {slots} slots ({free} free), {patients} patients, {waiting} waiting, "
        f"{visits} reported visits",
    )
    return info


# --- a. search -----------------------------------------------------------------------------------

SEARCH_SQL_NEAR = """
SELECT s.id, s.start, s."end", s.service_id, s.facility_id, f.name, f.address, p.name, d.km
FROM scheduling_slot s
JOIN catalog_facility f ON f.id = s.facility_id
LEFT JOIN scheduling_practitioner p ON p.id = s.practitioner_id
CROSS JOIN LATERAL (
    SELECT 2 * 6371.0 * asin(sqrt(power(sin(radians(s.lat - %(lat)s) / 2), 2)
           + cos(radians(%(lat)s)) * cos(radians(s.lat)) * power(sin(radians(s.lon - %(lon)s) / 2), 2))) AS km
) d
WHERE s.service_id = %(service)s AND s.status = 'free' AND s.kind = 'first'
  AND s.start > %(now)s AND s.start < %(until)s
  AND s.lat BETWEEN %(lat_min)s AND %(lat_max)s AND s.lon BETWEEN %(lon_min)s AND %(lon_max)s
  AND d.km <= %(radius)s
ORDER BY s.start, d.km, s.id
LIMIT %(limit)s
"""

SEARCH_SQL_VOIV = """
SELECT s.id, s.start, s."end", s.service_id, s.facility_id, f.name, f.address, p.name
FROM scheduling_slot s
JOIN catalog_facility f ON f.id = s.facility_id
LEFT JOIN scheduling_practitioner p ON p.id = s.practitioner_id
WHERE s.service_id = %(service)s AND s.status = 'free' AND s.kind = 'first'
  AND s.start > %(now)s AND s.start < %(until)s AND s.voivodeship_id = %(voiv)s
ORDER BY s.start, s.id
LIMIT %(limit)s
"""


def _timed(fn: Callable[[], Any], runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        out.append(time.perf_counter() - began)
    return out


def search_patient(service_code: str = "KARDIO_1") -> Any:
    """The patient the search workloads sign in: the first with nothing live in the searched service
    (the page is then the search, not the "already waiting" notice), or None."""
    from apps.booking.models import LIVE_REGISTRATION, Registration
    from apps.patients.models import Patient

    busy = Registration.objects.filter(service__code=service_code, status__in=LIVE_REGISTRATION)
    return Patient.objects.exclude(pk__in=busy.values("patient_id")).order_by("id").first()


def _patient_session_cookie() -> str:
    """A signed-in patient (`search_patient`), made through Django's own session machinery: the
    session row that signing in with a one-time code leaves behind (user id, backend, auth hash)."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    from apps.portal.services import patient_user_link

    patient = search_patient()
    if patient is None:
        raise SystemExit("no patient in the database: generate the data first")
    user = patient_user_link(patient=patient)
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = user._meta.pk.value_to_string(user)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def _http_get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def workload_search(report: Report, runs: int, stamp: str) -> None:
    """Earliest free KARDIO_1 slots in the next 30 days, within 50 km of the 3 largest cities and in
    their voivodeships: the selector and hand-written SQL in the database, and the patient search
    page over HTTP (gunicorn, a signed-in patient), one request at a time (latency, not throughput).
    All three fetch one page of results (the portal's page size) with the columns the page shows."""
    name = "a. search"
    if not _module_has("apps.scheduling.selectors", "slot_search", "slot_search_queryset", "Near"):
        report.skip(name, "apps.scheduling.selectors.slot_search is not there")
        return
    from urllib.parse import urlencode

    from django.db import connection
    from django.utils import timezone

    from apps.catalog.models import Locality, Service
    from apps.portal.selectors import place_search
    from apps.portal.views import PLACES_PER_PAGE, SLOTS_PER_PLACE
    from apps.portal.views import RESULTS as PAGE_SIZE
    from apps.scheduling.selectors import (
        SEARCH_RESULT_FIELDS,
        Near,
        day_start,
        slot_search,
        slot_search_queryset,
    )

    service = Service.objects.get(code="KARDIO_1")
    today = timezone.localdate()
    date_to = today + dt.timedelta(days=30)
    dates = {"date_from": today.isoformat(), "date_to": date_to.isoformat()}
    cities = list(Locality.objects.order_by("-population")[:3])
    plans: list[str] = []
    # label -> (hand SQL p50 s, selector p50 s, slots the page shows, page URL)
    http_cases: dict[str, tuple[float, float, int, str]] = {}
    for city in cities:
        near = Near(lat=city.lat, lon=city.lon, radius_km=50)
        lat_min, lat_max, lon_min, lon_max = near.bounding_box()
        cases: dict[str, tuple[dict[str, Any], str, dict[str, Any], dict[str, Any]]] = {
            f"{city.name} 50 km": (
                {"near": near},
                SEARCH_SQL_NEAR,
                {
                    "lat": city.lat,
                    "lon": city.lon,
                    "radius": 50.0,
                    "lat_min": lat_min,
                    "lat_max": lat_max,
                    "lon_min": lon_min,
                    "lon_max": lon_max,
                },
                {"city": city.name, "radius_km": 50},
            ),
            f"{city.voivodeship.name}": (
                {"voivodeship": city.voivodeship_id},
                SEARCH_SQL_VOIV,
                {"voiv": city.voivodeship_id},
                {"voivodeship": city.voivodeship_id},
            ),
        }
        for label, (filters, sql, extra, form) in cases.items():
            now = timezone.now()
            params: dict[str, Any] = {
                "service": service.pk,
                "now": now,
                "until": day_start(date_to + dt.timedelta(days=1)),
                "limit": PAGE_SIZE,
                **extra,
            }

            def orm(filters: dict[str, Any] = filters) -> Any:
                return slot_search(
                    service=service, date_from=today, date_to=date_to, limit=PAGE_SIZE, **filters
                )

            def raw(sql: str = sql, params: dict[str, Any] = params) -> Any:
                with connection.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchall()

            found = len(orm())
            t_orm = _timed(orm, runs)
            t_raw = _timed(raw, runs)
            p50, p95, b50, b95 = pct(t_orm, 50), pct(t_orm, 95), pct(t_raw, 50), pct(t_raw, 95)
            report.add(
                name,
                f"KARDIO_1 {label}: selector p50 ms",
                ms(p50),
                ms(b50),
                ratio(p50, b50),
                f"in the database: selector vs hand SQL, {found} slots returned, {runs} runs",
            )
            report.add(name, f"KARDIO_1 {label}: selector p95 ms", ms(p95), ms(b95), ratio(p95, b95))
            url = "/?" + urlencode({"service": service.pk, **form, **dates})
            # The page groups results by place (issue 18): it shows each place's earliest dates.
            places, _more = place_search(
                service=service,
                date_from=today,
                date_to=date_to,
                places=PLACES_PER_PAGE,
                per_place=SLOTS_PER_PLACE,
                **filters,
            )
            http_cases[label] = (b50, p50, sum(len(p.slots) for p in places), url)
            qs = (
                slot_search_queryset(service=service, date_from=today, date_to=date_to, **filters)
                .select_related("facility", "practitioner")
                .only(*SEARCH_RESULT_FIELDS)[:PAGE_SIZE]
            )
            plans.append(f"## selector: KARDIO_1 {label}\n\n{qs.explain(analyze=True, buffers=True)}\n")
            with connection.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                plan = "\n".join(r[0] for r in cur.fetchall())
            plans.append(f"## hand-written SQL: KARDIO_1 {label}\n\n{plan}\n")
    path = RESULTS / f"{stamp}-search-plans.txt"
    path.write_text("\n".join(plans), encoding="utf-8")
    report.details["search_plans"] = path.name
    _search_over_http(report, name, runs, http_cases)


def _search_over_http(
    report: Report, name: str, runs: int, cases: dict[str, tuple[float, float, int, str]]
) -> None:
    """The patient search page (portal home with the search form's query), signed in."""
    headers = {"Cookie": _patient_session_cookie(), "Accept-Language": "pl"}
    with shared_server() as server:
        meter = CpuMeter(server)
        status, _ = _http_get(server.port, "/appointments/", headers)
        if status != 200:  # a redirect to the sign-in page: the session was not accepted
            raise SystemExit(f"the patient session was not accepted (GET /appointments/ answered {status})")
        for label, (sql_p50, orm_p50, found, url) in cases.items():
            status, body = _http_get(server.port, url, headers)
            shown = body.count(b"/hold/")
            if status != 200 or shown != found:
                raise SystemExit(f"search page {url} answered {status} with {shown} slots ({found} expected)")
            before = meter.read()
            res = loadgen(
                {
                    "host": "127.0.0.1",
                    "port": server.port,
                    "threads": 1,
                    "mode": "get",
                    "paths": [url],
                    "headers": headers,
                    "requests": runs,
                    "warmup": 3,
                }
            )
            spent = CpuMeter.spent(before, meter.read())
            if res["ok"] != runs:
                raise SystemExit(f"search page {url}: {res['statuses']}")
            lat = res["latencies"]
            p50, p95 = pct(lat, 50), pct(lat, 95)
            report.add(
                name,
                f"KARDIO_1 {label}: HTTP p50 ms",
                ms(p50),
                ms(sql_p50),
                ratio(p50, sql_p50),
                f"GET {url.split('&date_from')[0]} signed in, {found} slots on the page, one client; "
                f"selector p50 {ms(orm_p50)} ms; CPU ms per request (web / database / client, with the "
                f"3 warm-up requests) {cpu_per(spent, runs + 3)}",
            )
            report.add(name, f"KARDIO_1 {label}: HTTP p95 ms", ms(p95))


# --- b. booking storm over HTTP ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gunicorn:
    """gunicorn with the production settings on 127.0.0.1, in its own process group."""

    def __init__(self, workers: int, threads: int) -> None:
        self.port = _free_port()
        self.workers, self.threads = workers, threads
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115

    def __enter__(self) -> Gunicorn:
        gunicorn = str(Path(PY).parent / "gunicorn")
        self.proc = subprocess.Popen(
            [
                gunicorn,
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(self.threads),
                "--keep-alive",
                "30",
                "--backlog",
                "2048",
                "--log-level",
                "warning",
                # one call publishing 10,000 slots takes seconds on a loaded box
                "--timeout",
                "300",
            ],
            cwd=ROOT,
            env=os.environ.copy(),
            start_new_session=True,
            # django.request logs every 409 (a lost race) as a warning: the server's log goes to a
            # file (errors are counted from the responses anyway).
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180  # four workers starting on a loaded 2-core box
        import http.client

        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise SystemExit(f"gunicorn did not answer /healthz within 180 s: see {self.log.name}")

    def __exit__(self, *exc: object) -> None:
        self.log.close()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


# gunicorn gthread workers x threads per worker; BENCH_WORKERS / BENCH_THREADS try other shapes (on
# these 2 cores 8 x 1, 4 x 2, 4 x 4 and 2 x 8 gave the same storm ratio within the noise).
WORKERS, THREADS = int(os.environ.get("BENCH_WORKERS", 4)), int(os.environ.get("BENCH_THREADS", 4))
_SERVER: Gunicorn | None = None


@contextlib.contextmanager
def shared_server() -> Iterator[Gunicorn]:
    """One gunicorn for every HTTP workload of the run: started on first use, stopped by main()."""
    global _SERVER
    if _SERVER is None:
        _SERVER = Gunicorn(workers=WORKERS, threads=THREADS).__enter__()
    yield _SERVER


def shared_server_stop() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.__exit__()
        _SERVER = None


def loadgen(job: dict[str, Any]) -> dict[str, Any]:
    """Run the load generator in a separate process; the job (with credentials) goes over stdin."""
    done = subprocess.run(
        [PY, "-m", "bench.loadgen"],
        input=json.dumps(job).encode(),
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode()[-2000:]}")
    return json.loads(done.stdout)


class CpuMeter:
    """CPU seconds used by the web server (gunicorn and its workers), this database's PostgreSQL
    backends and the load generator, between two readings: where a workload's time goes when the
    2 cores are the limit. Needs the servers on this machine (psutil); None where it cannot see them."""

    def __init__(self, server: Gunicorn) -> None:
        self.server = server

    def read(self) -> dict[str, Any]:
        import resource

        import psutil
        from django.db import connection

        def cpu(process: Any) -> float:
            times = process.cpu_times()
            return float(times.user + times.system)

        reading: dict[str, Any] = {"web": None, "db": {}, "client": None}
        try:
            root = psutil.Process(self.server.proc.pid if self.server.proc else -1)
            reading["web"] = sum(cpu(p) for p in [root, *root.children(recursive=True)])
        except (psutil.Error, ValueError):
            pass
        with connection.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            for (pid,) in cur.fetchall():
                with contextlib.suppress(psutil.Error):
                    reading["db"][pid] = cpu(psutil.Process(pid))
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for children: the load generator
        reading["client"] = usage.ru_utime + usage.ru_stime
        return reading

    @staticmethod
    def spent(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float | None]:
        """Seconds per part; database backends that appeared in between count from zero."""
        web = after["web"] - before["web"] if None not in (after["web"], before["web"]) else None
        db = sum(t - before["db"].get(pid, 0.0) for pid, t in after["db"].items()) if after["db"] else None
        return {"web": web, "db": db, "client": after["client"] - before["client"]}


def cpu_per(spent: dict[str, float | None], count: int) -> str:
    """'web / database / load generator' milliseconds of CPU per request."""
    return " / ".join("n/a" if v is None or not count else f"{v / count * 1000:.1f}" for v in spent.values())


def _storm_patients(count: int) -> list[Any]:
    """Fresh screening-eligible women (no history), new on every run: PESEL serials 4000+ are never
    used by the generator (it numbers at most a few dozen people per birth date)."""
    from apps.core import pesel
    from apps.patients.models import Patient

    # Numbered after every storm patient of earlier runs (whatever their size): PESELs never repeat.
    done = Patient.objects.filter(email__startswith="storm-", email__endswith="@bench.invalid").count()
    rows = []
    for i in range(done, done + count):
        birth = dt.date(1958, 1, 1) + dt.timedelta(days=i // 900)
        rows.append(
            Patient(
                pesel=pesel.generate(birth, "F", 4000 + i % 900),
                first_name="Pacjentka",
                last_name=f"Testowa {i}",
                birth_date=birth,
                sex="F",
                email=f"storm-{i}@bench.invalid",
            )
        )
    return Patient.objects.bulk_create(rows, batch_size=2000)


def _publish_after(schedule: Any, count: int, minutes: int) -> list[int]:
    """Publish `count` slots after everything the schedule already has (07:00-19:00 Warsaw, weekdays)."""
    from django.db.models import Max

    from apps.scheduling.models import Slot
    from apps.scheduling.services import WARSAW, slots_publish

    last = Slot.objects.filter(schedule=schedule).aggregate(m=Max("start"))["m"]
    day = (last.astimezone(WARSAW).date() if last else dt.date.today()) + dt.timedelta(days=1)
    slots: list[tuple[dt.datetime, dt.datetime, str]] = []
    while len(slots) < count:
        if day.weekday() < 5:
            t = dt.datetime.combine(day, dt.time(7, 0), tzinfo=WARSAW)
            while t.hour < 19 and len(slots) < count:
                end = t + dt.timedelta(minutes=minutes)
                slots.append((t, end, "first"))
                t = end
        day += dt.timedelta(days=1)
    slots_publish(schedule=schedule, slots=slots)
    return list(
        Slot.objects.filter(schedule=schedule, start__gte=slots[0][0], start__lte=slots[-1][0]).values_list(
            "id", flat=True
        )
    )


PING_PATH = "/api/v1/ping"
REFUSED = "refused booking"
UNCONTENDED = "uncontended storm"


def _storm_slots(schedules: list[Any], count: int, minutes: int) -> list[tuple[int, str]]:
    """`count` freshly published slots spread over the schedules: (slot id, facility key)."""
    per = -(-count // len(schedules))
    rows: list[tuple[int, str]] = []
    for schedule in schedules:
        want = min(per, count - len(rows))
        if want <= 0:
            break
        rows += [(sid, str(schedule.facility_id)) for sid in _publish_after(schedule, want, minutes)]
    return rows


def _slots_analyze(slot_ids: list[int], *, column: str = "id") -> list[str]:
    """ANALYZE the month partitions (and the default one) that hold these freshly published slots (or
    the slots of these schedules: `column="schedule_id"`), as autovacuum would within a minute of a
    publish that size. Without it (autovacuum off, as on the benchmark's servers), a month filled by
    the publish keeps the statistics of its empty days, and plans made from them scanned the month
    (docs/performance.md, sections b and e). Returns their names."""
    from django.db import connection

    if column not in ("id", "schedule_id"):
        raise ValueError(column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT tableoid::regclass::text FROM scheduling_slot WHERE {column} = ANY(%s)",
            [slot_ids],
        )
        partitions = sorted(name for (name,) in cursor.fetchall())
        for name in partitions:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(name)}")
    return partitions


def _storm_verify(slot_ids: list[int], patients: list[Any]) -> tuple[int, int, int]:
    """In SQL: live bookings on the storm's slots, slots booked twice, patients with two live bookings."""
    from django.db.models import Count

    from apps.booking.models import Appointment

    live = list(
        Appointment.objects.filter(slot_id__in=slot_ids, status__in=["booked", "confirmed"]).values_list(
            "slot_id", "patient_id"
        )
    )
    patient_ids = [p.pk for p in patients]
    patients_twice = (
        Appointment.objects.filter(patient_id__in=patient_ids, status__in=["booked", "confirmed"])
        .values("patient_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    return len(live), len(live) - len({s for s, _ in live}), patients_twice


def workload_storm(report: Report, size: Sizes) -> None:
    name = "b. booking storm"
    ceiling_name = "b. framework ceiling"
    has_api = _module_has("apps.integration.apis.bookings", "BookingCreateApi") and _module_has(
        "apps.integration.services", "api_client_issue"
    )
    if not has_api:
        report.skip(name, "the facility booking API (apps.integration) is not there")
        return
    from apps.catalog.models import Service
    from apps.integration.services import api_client_issue
    from apps.scheduling.models import Schedule

    slots_total, threads, runs = size.storm_slots, size.storm_threads, size.storm_runs
    service = Service.objects.get(code="MAMMO_SCR")
    schedules: list[Schedule] = []
    seen: set[int] = set()
    for schedule in (
        Schedule.objects.filter(service=service, external_id__startswith="GEN-S-")
        .select_related("facility")
        .order_by("id")
    ):
        if schedule.facility_id not in seen:
            seen.add(schedule.facility_id)
            schedules.append(schedule)
        if len(schedules) == 20:
            break
    if not schedules:
        report.skip(name, "no generated MAMMO_SCR schedule")
        return
    # Each storm: 1,000 freshly published slots spread over up to 20 facilities, and 1,200 fresh
    # patients (the last ones find nothing). Each facility system has its own API client (as in
    # production). A warm-up storm on slots of its own comes first (not counted): every server thread
    # opens its database connection and prepares its statements, as on a server up for a while.
    clients: dict[str, dict[str, str]] = {}
    for schedule in schedules:
        issued = api_client_issue(
            facility=schedule.facility, name="bench storm", scopes=["bookings:write", "bookings:read"], days=1
        )
        key = str(schedule.facility_id)
        clients[key] = {"client_id": issued.client_id, "client_secret": issued.client_secret}
    warm_rows = _storm_slots(schedules, max(50, slots_total // 10), service.slot_minutes)
    warm_patients = _storm_patients(len(warm_rows))
    storms = []
    for _ in range(runs):
        rows = _storm_slots(schedules, slots_total, service.slot_minutes)
        storms.append((rows, _storm_patients(slots_total * 6 // 5)))
    # The same again without contention: fresh slots and as many fresh patients, the i-th patient
    # booking the i-th slot (no lost race), so the CPU per booking is the booking's own.
    calm = []
    for _ in range(runs):
        rows = _storm_slots(schedules, slots_total, service.slot_minutes)
        calm.append((rows, _storm_patients(slots_total)))
    _slots_analyze([s for rows, _ in [(warm_rows, None), *storms, *calm] for s, _ in rows])
    workers, gthreads = WORKERS, THREADS
    requests = size.ceiling_requests

    cpu: dict[str, dict[str, float | None]] = {}

    def rps(path: str, port: int, **job: Any) -> float:
        before = meter.read()
        res = loadgen({**base, "port": port, "mode": "get", "path": path, "requests": requests, **job})
        if res["ok"] != requests:
            raise SystemExit(f"ceiling {path}: {res['statuses']}")
        cpu[path] = CpuMeter.spent(before, meter.read())  # the last run: warm workers
        return float(res["ok"] / res["wall_s"])

    def storm(rows: list[tuple[int, str]], patients: list[Any], uncontended: bool = False) -> dict[str, Any]:
        pesels = [p.pesel for p in patients]
        return loadgen(
            {
                **base,
                "mode": "book",
                "tokens": tokens,
                "slots": rows,
                "patients": pesels,
                "uncontended": uncontended,
            }
        )

    results: list[dict[str, Any]] = []
    calm_results: list[dict[str, Any]] = []
    with shared_server() as server:
        meter = CpuMeter(server)
        base = {"host": "127.0.0.1", "port": server.port, "threads": threads}
        # The ceilings just before and just after the storms; the higher of each is reported.
        ping = [rps(PING_PATH, server.port)]
        healthz = [rps("/healthz", server.port)]
        tokens = loadgen({**base, "mode": "tokens", "clients": clients})["tokens"]
        warm = storm(warm_rows, warm_patients)
        before = meter.read()
        for rows, patients in storms:
            results.append(storm(rows, patients))
        cpu["storm"] = CpuMeter.spent(before, meter.read())
        before = meter.read()
        for rows, patients in calm:
            calm_results.append(storm(rows, patients, uncontended=True))
        cpu[UNCONTENDED] = CpuMeter.spent(before, meter.read())
        # The floor of any booking request: the same POST for a slot already taken, refused (409)
        # after authentication, rate limit, validation and one indexed read, writing nothing.
        rows, patients = storms[0]
        refused_rps = rps(
            REFUSED,
            server.port,
            expect=409,
            posts=[
                [
                    "/api/v1/bookings",
                    {"slot_id": slot_id, "pesel": patients[i % len(patients)].pesel, "channel": "desk"},
                    {
                        "Authorization": f"Bearer {tokens[fac]}",
                        "Content-Type": "application/json",
                        "Idempotency-Key": "*",
                    },
                ]
                for i, (slot_id, fac) in enumerate(rows)
            ],
        )
        ping.append(rps(PING_PATH, server.port))
        healthz.append(rps("/healthz", server.port))
    ceiling_rps, healthz_rps = max(ping), max(healthz)
    contended, uncontended = _storms_summary(results), _storms_summary(calm_results)
    bookings_per_s, per_second, booked, lat = (
        contended["median_per_s"],
        contended["per_s"],
        contended["booked"],
        contended["latencies"],
    )
    statuses, errors, conflicts = contended["statuses"], contended["errors"], contended["conflicts"]
    # Verify every storm in SQL: exactly one live booking per slot, 1,000 in all, nobody booked twice.
    checks = [_storm_verify([s for s, _ in rows], patients) for rows, patients in storms]
    verified = all(live == slots_total and twice == 0 and people == 0 for live, twice, people in checks)
    calm_checks = [_storm_verify([s for s, _ in rows], patients) for rows, patients in calm]
    calm_verified = (
        all(live == slots_total and twice == 0 and people == 0 for live, twice, people in calm_checks)
        and not uncontended["conflicts"]
    )
    report.add(
        ceiling_name,
        f"GET {PING_PATH} req/s (DRF APIView, AllowAny)",
        round(ceiling_rps),
        note=(
            f"before / after the storms: {' / '.join(str(round(v)) for v in ping)}; "
            f"gunicorn {workers} gthread workers x {gthreads} threads, {threads} client threads"
        ),
    )
    report.add(
        ceiling_name,
        "GET /healthz req/s (plain Django view)",
        round(healthz_rps),
        note=f"before / after the storms: {' / '.join(str(round(v)) for v in healthz)}",
    )
    report.add(
        name,
        f"bookings/s (POST /api/v1/bookings) vs {PING_PATH}, median of {runs} storm(s)",
        round(bookings_per_s, 1),
        round(ceiling_rps),
        ratio(bookings_per_s, ceiling_rps),
        f"storms: {', '.join(f'{v:.1f}' for v in per_second)}/s of {slots_total} each, after a warm-up "
        f"storm of {warm['booked']}; goal >= 0.2x (issue 19); "
        f"vs /healthz {ratio(bookings_per_s, healthz_rps)}x",
    )
    report.add(
        name,
        f"refused bookings/s (409, slot taken) vs {PING_PATH}",
        round(refused_rps),
        round(ceiling_rps),
        ratio(refused_rps, ceiling_rps),
        "the floor of any booking request: authenticated, rate-limited, validated, one read, no write; "
        f"bookings/s are {ratio(bookings_per_s, refused_rps)}x of it",
    )
    report.add(
        name,
        f"uncontended bookings/s (each patient its own slot) vs {PING_PATH}, median of {runs}",
        round(uncontended["median_per_s"], 1),
        round(ceiling_rps),
        ratio(uncontended["median_per_s"], ceiling_rps),
        f"storms: {', '.join(f'{v:.1f}' for v in uncontended['per_s'])}/s of {slots_total} each, no lost "
        f"race; the contended storm is {ratio(bookings_per_s, uncontended['median_per_s'])}x of it",
    )
    report.add(name, "latency p50 / p99 ms (201s, median storm)", f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))}")
    calm_lat = uncontended["latencies"]
    report.add(
        name,
        "uncontended latency p50 / p99 ms (median storm)",
        f"{ms(pct(calm_lat, 50))} / {ms(pct(calm_lat, 99))}",
    )
    report.add(
        name,
        "CPU ms per booking: web / database / load generator",
        cpu_per(cpu["storm"], booked),
        cpu_per(cpu[PING_PATH], requests),
        note=f"baseline: the same per {PING_PATH} request; lost races included in the bookings' share",
    )
    report.add(
        name,
        "CPU ms per uncontended booking: web / database / load generator",
        cpu_per(cpu[UNCONTENDED], uncontended["booked"]),
        cpu_per(cpu[PING_PATH], requests),
        note=f"baseline: the same per {PING_PATH} request; no lost race: the booking's own cost",
    )
    report.add(
        name,
        "CPU ms per refused booking: web / database / load generator",
        cpu_per(cpu[REFUSED], requests),
        cpu_per(cpu[PING_PATH], requests),
        note=f"baseline: the same per {PING_PATH} request",
    )
    report.add(
        name,
        "requests: lost races (409) / errors (all storms)",
        f"{conflicts} / {sum(errors.values())}",
        note=json.dumps(errors) if errors else "no errors",
    )
    report.add(
        name,
        "SQL check per storm: live bookings / slots twice / patients twice",
        "; ".join(" / ".join(str(v) for v in check) for check in checks),
        note="verified" if verified else "VERIFICATION FAILED",
    )
    calm_errors = uncontended["errors"]
    report.add(
        name,
        "uncontended: lost races (409) / errors; SQL check per storm",
        f"{uncontended['conflicts']} / {sum(calm_errors.values())}; "
        + "; ".join(" / ".join(str(v) for v in check) for check in calm_checks),
        note=("verified" if calm_verified else "VERIFICATION FAILED")
        + (f" {json.dumps(calm_errors)}" if calm_errors else ""),
    )
    report.details["storm"] = {
        "bookings_per_s": per_second,
        "statuses": statuses,
        "verified": verified,
        "facilities": len(clients),
        "cpu_seconds": cpu,
        "uncontended": {
            "bookings_per_s": uncontended["per_s"],
            "statuses": uncontended["statuses"],
            "verified": calm_verified,
            "sql_checks": calm_checks,
            "cpu_ms_per_booking": cpu_per(cpu[UNCONTENDED], uncontended["booked"]),
        },
    }
    if not verified or not calm_verified:
        raise SystemExit("booking storm verification failed: see the table")


def _storms_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates, the median storm's latencies, and the answers of a series of storms (`loadgen` "book")."""
    per_s = [r["booked"] / r["wall_s"] for r in results]
    median = sorted(range(len(results)), key=lambda i: per_s[i])[len(results) // 2]
    statuses: dict[str, int] = {}
    for r in results:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    return {
        "per_s": per_s,
        "median_per_s": per_s[median],
        "booked": sum(r["booked"] for r in results),
        "latencies": results[median]["latencies"] or [0.0],
        "statuses": statuses,
        "errors": {k: v for k, v in statuses.items() if not (k.startswith("201") or k.startswith("409"))},
        "conflicts": sum(v for k, v in statuses.items() if k.startswith("409")),
    }


# --- c. bulk publish -----------------------------------------------------------------------------


def _bench_schedule(service: Any, tag: str) -> Any:
    from apps.scheduling.models import Schedule
    from apps.scheduling.services import schedule_create

    template = (
        Schedule.objects.filter(service=service, external_id__startswith="GEN-S-")
        .select_related("facility")
        .first()
    )
    if template is None:
        raise SystemExit(f"no generated schedule of {service.code}: generate the data first")
    return schedule_create(facility=template.facility, service=service, external_id=tag)


def _slot_times(count: int, minutes: int, first_day: dt.date) -> list[tuple[dt.datetime, dt.datetime, str]]:
    from apps.scheduling.services import WARSAW

    out: list[tuple[dt.datetime, dt.datetime, str]] = []
    day = first_day
    while len(out) < count:
        t = dt.datetime.combine(day, dt.time(6, 0), tzinfo=WARSAW)
        while t.hour < 22 and len(out) < count:
            end = t + dt.timedelta(minutes=minutes)
            out.append((t, end, "first"))
            t = end
        day += dt.timedelta(days=1)
    return out


def _copy_slots(schedule: Any, times: list[tuple[dt.datetime, dt.datetime, str]]) -> None:
    """The baseline: COPY of the same rows into the same table (same indexes and constraints)."""
    from django.db import connection, transaction

    f = schedule.facility
    with (
        transaction.atomic(),
        connection.cursor() as cur,
        cur.copy(
            "COPY scheduling_slot (schedule_id, facility_id, service_id, voivodeship_id, locality_id,"
            ' lat, lon, start, "end", kind, status, from_template, updated_at) FROM STDIN'
        ) as copy,
    ):
        now = dt.datetime.now(dt.UTC)
        for start, end, kind in times:
            copy.write_row(
                (
                    schedule.pk,
                    f.pk,
                    schedule.service_id,
                    f.voivodeship_id,
                    f.locality_id,
                    f.lat,
                    f.lon,
                    start,
                    end,
                    kind,
                    "free",
                    False,
                    now,
                )
            )


def workload_publish(report: Report, per_call: int, batches: int) -> None:
    """`per_call` (10,000) CYTO_SCR slots in one `POST /api/v1/schedules/<id>/slots`, then `batches`
    more calls of as many (one new schedule each: 100 calls = 1 million slots at full scale), over
    HTTP with the facility's OAuth token; the same rows through the service in-process and by COPY
    (the baseline) into the same table with the same indexes and constraints."""
    name = "c. bulk publish"
    if not _module_has("apps.scheduling.services", "slots_publish", "schedule_create") or not _module_has(
        "apps.integration.apis.schedules", "SlotsPublishApi"
    ):
        report.skip(name, "slots_publish or the publish API operation is not there")
        return
    import http.client
    import uuid

    from apps.catalog.models import Service
    from apps.integration.services import api_client_issue
    from apps.scheduling.services import slots_publish
    from bench.loadgen import token_fetch

    service = Service.objects.get(code="CYTO_SCR")
    first_day = dt.date.today() + dt.timedelta(days=200)
    tag = f"BENCH-PUB-{dt.datetime.now(dt.UTC):%Y%m%d}-{secrets.token_hex(3)}"
    one = _slot_times(per_call, service.slot_minutes, first_day)
    body = json.dumps(
        {"slots": [{"start": a.isoformat(), "end": b.isoformat(), "kind": k} for a, b, k in one]}
    ).encode()

    base_schedule = _bench_schedule(service, f"{tag}-copy")
    began = time.perf_counter()
    _copy_slots(base_schedule, one)
    t_copy = time.perf_counter() - began
    base_rate = len(one) / t_copy

    schedule = _bench_schedule(service, f"{tag}-service")
    began = time.perf_counter()
    created = slots_publish(schedule=schedule, slots=one)
    t_service = time.perf_counter() - began

    api_schedules = [_bench_schedule(service, f"{tag}-api{b}") for b in range(batches + 1)]
    issued = api_client_issue(
        facility=api_schedules[0].facility, name="bench publish", scopes=["schedules:write"], days=1
    )
    calls: list[float] = []
    with shared_server() as server:
        token = token_fetch(
            "127.0.0.1", server.port, issued.client_id, issued.client_secret, "schedules:write"
        )
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        for s in api_schedules:
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": str(uuid.uuid4()),
            }
            began = time.perf_counter()
            conn.request("POST", f"/api/v1/schedules/{s.pk}/slots", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            calls.append(time.perf_counter() - began)
            if response.status != 201 or json.loads(data)["created"] != len(one):
                raise SystemExit(f"publish API answered {response.status}: {data[:300]!r}")
        conn.close()
    t_one, t_batches = calls[0], sum(calls[1:])
    rate_one, rate_batches = len(one) / t_one, len(one) * batches / t_batches
    report.add(
        name,
        f"API: {per_call:,} slots in one call, slots/s",
        round(rate_one),
        round(base_rate),
        ratio(rate_one, base_rate),
        f"POST /api/v1/schedules/<id>/slots ({len(body) // 1024} KiB JSON) {t_one:.2f} s "
        f"vs COPY of the same rows {t_copy:.2f} s",
    )
    report.add(
        name,
        f"API: {batches} calls x {per_call:,} = {batches * len(one):,} slots, slots/s",
        round(rate_batches),
        round(base_rate),
        ratio(rate_batches, base_rate),
        f"{t_batches:.1f} s, one new schedule per call, one client; per call p50 "
        f"{pct(calls[1:], 50):.2f} s, max {max(calls[1:]):.2f} s",
    )
    report.add(
        name,
        f"service in-process: {per_call:,} slots, slots/s",
        round(created / t_service),
        round(base_rate),
        ratio(created / t_service, base_rate),
        f"slots_publish() {t_service:.2f} s: the API adds JSON, validation, auth and idempotency",
    )
    # The published million lies beyond the months partitioned ahead (the DEFAULT partition): without
    # fresh statistics, the waiting list's lock of freed slots by id (workload e) planned a scan of all
    # of it, 300 ms a statement, where the primary key finds each in microseconds.
    _slots_analyze([s.pk for s in [base_schedule, schedule, *api_schedules]], column="schedule_id")


# --- d. reconciliation ---------------------------------------------------------------------------

# The baseline: the same headline answer (eligible or not, per visit of the month) as the run, in one
# statement written by hand, into a temporary table (no WAL, no index, no reason code, no progress).
# Same rules: before the service's CeR date or the obligation date, paid; else the appointment of the
# same patient (resolving an unresolved PESEL), facility and service on the Warsaw visit day, ranked as
# the run ranks it (live and booked before the visit, live but booked after the visit began, a recorded
# no-show, ended before the visit; then the nearest start, then the lowest id): only rank 0 is paid,
# and of two visits claiming one appointment only the first (visit time, then id); an emergency is
# paid only for a known patient with no such appointment at all, once per patient, facility, service
# and day; a withdrawn visit is never paid. The eligible count must equal the run's (the workload
# reports both).
ANTI_JOIN_SQL = """
CREATE TEMP TABLE bench_antijoin AS
WITH m AS MATERIALIZED (  -- one probe per visit (inlined, the window evaluated it twice)
    SELECT v.id, v.visit_at, v.emergency, v.withdrawn, v.facility_id, v.service_id, d.day, pp.pid,
           d.day < s.cer_from
               OR d.day < GREATEST(s.obligatory_from, COALESCE(f.obligatory_from, s.obligatory_from))
               AS exempt,
           c.id AS claimed, c.rank
    FROM reconciliation_reportedvisit v
    JOIN catalog_service s ON s.id = v.service_id
    JOIN catalog_facility f ON f.id = v.facility_id
    CROSS JOIN LATERAL (SELECT (v.visit_at AT TIME ZONE 'Europe/Warsaw')::date AS day) d
    CROSS JOIN LATERAL (SELECT COALESCE(
        v.patient_id, (SELECT p.id FROM patients_patient p WHERE p.pesel = v.patient_pesel)) AS pid) pp
    LEFT JOIN LATERAL (
        SELECT a.id,
               CASE WHEN a.status IN ('cancelled_by_patient', 'cancelled_by_facility', 'released',
                                      'rescheduled')
                         AND (a.ended_at IS NULL OR a.ended_at <= v.visit_at) THEN 3
                    WHEN a.status = 'no_show' THEN 2
                    WHEN a.created_at > v.visit_at THEN 1
                    ELSE 0 END AS rank
        FROM booking_appointment a
        WHERE a.patient_id = pp.pid
          AND a.service_id = v.service_id AND a.facility_id = v.facility_id
          AND a.start >= (d.day::timestamp AT TIME ZONE 'Europe/Warsaw')
          AND a.start < ((d.day + 1)::timestamp AT TIME ZONE 'Europe/Warsaw')
        ORDER BY 2, abs(extract(epoch FROM a.start - v.visit_at)), a.id
        LIMIT 1) c ON true
    WHERE v.visit_at >= %(start)s AND v.visit_at < %(end)s
)
SELECT id,
       NOT withdrawn AND (
       exempt
       OR (rank = 0 AND row_number() OVER (
           PARTITION BY CASE WHEN NOT withdrawn AND NOT exempt AND rank = 0 THEN claimed END
           ORDER BY visit_at, id) = 1)
       OR (emergency AND pid IS NOT NULL AND claimed IS NULL AND row_number() OVER (
           PARTITION BY CASE WHEN NOT withdrawn AND NOT exempt AND emergency AND pid IS NOT NULL
                             AND claimed IS NULL
                             THEN ARRAY[pid, facility_id, service_id, day - DATE '2000-01-01'] END
           ORDER BY visit_at, id) = 1)) AS eligible
FROM m
"""


def _recon_baseline(start: dt.datetime, end: dt.datetime) -> tuple[float, int, int]:
    """The anti-join in one transaction with the run's settings (work_mem, JIT off); (s, eligible, all)."""
    from django.conf import settings
    from django.db import connection, transaction

    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)",
            [getattr(settings, "CER_RECONCILIATION_WORK_MEM", "64MB")],
        )
        cur.execute(ANTI_JOIN_SQL, {"start": start, "end": end})
        cur.execute("SELECT count(*) FILTER (WHERE eligible), count(*) FROM bench_antijoin")
        eligible, total = cur.fetchone()
        cur.execute("DROP TABLE bench_antijoin")
    return time.perf_counter() - began, eligible, total


def workload_reconciliation(report: Report, month_first: dt.date, runs: int | None = None) -> None:
    """`run_execute` of a month in a worker process against the baseline, alternately, `runs` times
    (3, or 1 above 2 M visits); medians. Each worker run is a new run of the month (new verdicts)."""
    import statistics

    name = "d. reconciliation"
    if not _module_has("apps.reconciliation.services", "run_create", "run_execute"):
        report.skip(name, "apps.reconciliation.services.run_create/run_execute are not there")
        return
    from django.db import connection

    from apps.scheduling.services import WARSAW

    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass('reconciliation_reportedvisit') IS NOT NULL")
        if not cur.fetchone()[0]:
            report.skip(name, "reconciliation tables not migrated")
            return
    next_month = (month_first + dt.timedelta(days=32)).replace(day=1)
    start = dt.datetime.combine(month_first, dt.time.min, tzinfo=WARSAW)
    end = dt.datetime.combine(next_month, dt.time.min, tzinfo=WARSAW)
    if runs is None:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM reconciliation_reportedvisit WHERE visit_at >= %s AND visit_at < %s",
                [start, end],
            )
            runs = 1 if cur.fetchone()[0] > 2_000_000 else 3
    worker: list[dict[str, Any]] = []
    baseline: list[tuple[float, int, int]] = []
    for _ in range(runs):
        done = subprocess.run(
            [PY, "-m", "bench.recon_worker", month_first.isoformat()],
            capture_output=True,
            cwd=ROOT,
            check=False,
        )
        if done.returncode != 0:
            report.skip(name, f"reconciliation run failed: {done.stderr.decode()[-300:]}")
            return
        worker.append(json.loads(done.stdout.decode().strip().splitlines()[-1]))
        baseline.append(_recon_baseline(start, end))
    secs = statistics.median(r["seconds"] for r in worker)
    t_sql = statistics.median(t for t, _, _ in baseline)
    res, (_, eligible, total) = worker[-1], baseline[-1]
    same = "same" if (res["eligible"], res["visits"]) == (eligible, total) else "DIFFERENT"
    report.add(
        name,
        f"month {month_first:%Y-%m}: wall s (run_execute)",
        round(secs, 2),
        round(t_sql, 2),
        ratio(secs, t_sql),
        f"{res['visits']} visits, {res['eligible']} eligible; baseline: one anti-join, "
        f"{eligible}/{total} eligible ({same}); median of {runs}, runs "
        + ", ".join(f"{r['seconds']:.1f}" for r in worker)
        + " s, baseline "
        + ", ".join(f"{t:.1f}" for t, _, _ in baseline)
        + " s",
    )
    report.add(
        name,
        "visits/s",
        round(res["visits"] / secs),
        round(total / t_sql),
        ratio(total / t_sql, res["visits"] / secs),
        f"{res['chunks']} chunks of {res['chunk_size']}; last run: setup {res['setup_seconds']:.1f} s, "
        f"chunks {res['chunks_seconds']:.1f} s, duplicate/override pass {res['final_pass_seconds']:.1f} s",
    )
    report.add(
        name,
        "worker peak RSS MiB",
        round(max(r["maxrss_mib"] for r in worker), 1),
        note="ru_maxrss of the worker process (the SQL work is in PostgreSQL)",
    )


# --- e. waiting-list reallocation ----------------------------------------------------------------


def workload_waitlist(report: Report, count: int) -> None:
    name = "e. waitlist reallocation"
    if not _module_has("apps.booking.services", "appointment_cancel_by_patient", "waitlist_allocate_slot"):
        report.skip(name, "apps.booking.services cancel / waitlist_allocate_slot are not there")
        return
    from django.db import connection
    from django.utils import timezone

    from apps.booking.models import Appointment
    from apps.booking.services import appointment_cancel_by_patient, waitlist_allocate_slot

    now = timezone.now()
    # Live bookings of first-time slots inside the services' look-ahead window, in services with a
    # waiting list, spread over the country (ordered by a hash, not by id).
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT a.id FROM booking_appointment a
            JOIN scheduling_slot s ON s.id = a.slot_id
            JOIN catalog_service svc ON svc.id = a.service_id
            WHERE a.status IN ('booked', 'confirmed') AND s.kind = 'first'
              AND a.start > %(now)s + interval '1 day'
              AND a.start < %(now)s + make_interval(days => svc.waitlist_lookahead_days)
              AND EXISTS (SELECT 1 FROM booking_registration r
                          WHERE r.service_id = a.service_id AND r.status = 'waiting')
            ORDER BY hashint8(a.id) LIMIT %(n)s
            """,
            {"now": now, "n": 2 * count},
        )
        ids = [r[0] for r in cur.fetchall()]
    if not ids:
        report.skip(name, "no live booking with a waiting list for its service")
        return
    # The first `count` are cancelled one by one and re-assigned; the rest from several connections at
    # once afterwards (`_cancel_concurrently`).
    ids, others = ids[:count], ids[count:]
    appointments = list(Appointment.objects.filter(pk__in=ids))
    # Slots freed before this run and still queued (by anything but this workload) would be drained
    # with this run's and take their candidates first, so batches and one by one would differ: they are
    # re-assigned first, untimed.
    stale = _queue_drain_untimed()
    if stale:
        report.details["waitlist_stale_queue_drained"] = stale
    # The broker and cache connections made before the clock starts (their first use imports the
    # client, ~2 s each on this box): a cold process's one-off cost is not a cancellation's.
    from django.core.cache import cache

    from config.celery import app

    with app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1)
    cache.get("bench-warm-up")
    with connection.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()")
        wal_before = cur.fetchone()[0]
    began, began_cpu = time.perf_counter(), time.process_time()
    freed = []
    for appointment in appointments:
        appointment_cancel_by_patient(appointment=appointment)
        freed.append(appointment.slot_id)
    t_cancel = time.perf_counter() - began
    cpu_cancel = time.process_time() - began_cpu
    with connection.cursor() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [wal_before])
        wal_cancel = float(cur.fetchone()[0])
    # The freed slots offered one by one (the baseline: what a task per freed slot did), inside a
    # transaction that is then rolled back, and then the same slots as production offers them: the
    # cancellations queued them (booking_freedslot) and one drain takes them off the queue in batches
    # (waitlist_drain -> waitlist_allocate_slots' chunks: one statement locks a chunk's slots, one
    # fetches every slot's first candidates), from the same state: the same queue order, rules and
    # explanation (tests/booking/test_waitlist_batch.py). The baseline pays savepoints instead of
    # commits, so the ratio is if anything understated.
    from django.db import transaction

    one_by_one = batched = freed
    began_alloc = time.perf_counter()
    with transaction.atomic():
        single = {slot_id: waitlist_allocate_slot(slot_id=slot_id) for slot_id in one_by_one}
        transaction.set_rollback(True)
    t_single = time.perf_counter() - began_alloc
    assigned_single = sum(1 for a in single.values() if a is not None)
    began_batch = time.perf_counter()
    assigned_batch = 0
    how = "waitlist_allocate_slots"
    if _module_has("apps.booking.services", "waitlist_drain"):
        from apps.booking.services import waitlist_drain

        how = "waitlist_drain of the queue the cancellations filled"
        drained = waitlist_drain(limit=10 * len(freed) + 1000)
        t_batch = time.perf_counter() - began_batch
        got = dict(
            Appointment.objects.filter(
                slot_id__in=freed, channel="waitlist", status__in=("booked", "confirmed")
            )
            .filter(created_at__gte=now)
            .values_list("slot_id", "registration_id")
        )
        allocated_ids = {slot_id: got.get(slot_id) for slot_id in freed}
        report.details["waitlist_drained"] = drained
    elif _module_has("apps.booking.services", "waitlist_allocate_slots"):
        from apps.booking.services import waitlist_allocate_slots

        allocated = waitlist_allocate_slots(slot_ids=batched)
        t_batch = time.perf_counter() - began_batch
        allocated_ids = {s: (a.registration_id if a else None) for s, a in allocated.items()}
    else:
        allocated_ids = {}
        t_batch = 0.0
    if allocated_ids:
        assigned_batch = sum(1 for r in allocated_ids.values() if r is not None)
        report.details["waitlist_batch_same_as_one_by_one"] = all(
            r == (single[s].registration_id if single[s] else None) for s, r in allocated_ids.items()
        )
    rate_single = len(one_by_one) / t_single if t_single else 0
    rate_batch = report.details.get("waitlist_drained", len(batched)) / t_batch if t_batch else 0
    cancel_rate = len(freed) / t_cancel
    report.add(
        name,
        "cancellations/s (in process)",
        round(cancel_rate, 1),
        note=f"{len(freed)} cancelled in {t_cancel:.2f} s (appointment_cancel_by_patient; goal >= 300/s)",
    )
    report.add(
        name,
        "CPU per cancellation (this process): ms",
        round(1000 * cpu_cancel / len(freed), 2),
        note="process time of the loop above: Python and the database driver, not PostgreSQL's own",
    )
    report.add(
        name,
        "WAL per cancellation: kB",
        round(wal_cancel / len(freed) / 1024, 1),
        note="the server's WAL during the loop: mostly full-page images of pages first written since "
        "the last checkpoint, so the rate follows it (docs/performance.md e, docs/operations.md)",
    )
    report.add(
        name,
        "freed slots offered/s, batches vs one by one",
        round(rate_batch, 1),
        round(rate_single, 1),
        ratio(rate_batch, rate_single),
        f"the same {len(freed)} slots ({how}): {assigned_batch} re-assigned in batches, "
        f"{assigned_single} one by one "
        f"(rolled back; same patients: {report.details.get('waitlist_batch_same_as_one_by_one')}); "
        "the rest had no matching waiting patient"
        + (f"; {stale} slots queued before the run re-assigned first, untimed" if stale else ""),
    )
    projected = 1000 / cancel_rate + 1000 / rate_batch if rate_batch else None
    report.add(
        name,
        "1,000 freed slots re-assigned (cancel + batches, projected): s",
        round(projected, 1) if projected else None,
        note="from the two rates above, one process (goal <= 10 s at full scale)",
    )
    if not others:
        return
    # One connection cancelling one booking after another waits for the disk at every commit (the
    # commit's WAL flush: one fdatasync, ~3 ms on this box's disk, `pg_test_fsync`), which caps it near
    # 300/s whatever the cancellation costs. Patients cancel from many web processes at once, whose
    # commits PostgreSQL flushes together: the same cancellations from CANCEL_CONNECTIONS connections.
    rest = list(Appointment.objects.filter(pk__in=others))
    with connection.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()")
        wal_before = cur.fetchone()[0]
    took_parallel = _cancel_concurrently(rest, CANCEL_CONNECTIONS)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [wal_before])
        wal_parallel = float(cur.fetchone()[0])
    rate_parallel = len(rest) / took_parallel
    report.add(
        name,
        f"cancellations/s, {CANCEL_CONNECTIONS} connections at once (in process)",
        round(rate_parallel, 1),
        round(cancel_rate, 1),
        ratio(rate_parallel, cancel_rate),
        f"{len(rest)} other bookings cancelled in {took_parallel:.2f} s, "
        f"{wal_parallel / len(rest) / 1024:.1f} kB of WAL each; against one connection (above)",
    )
    report.add(
        name,
        f"1,000 freed slots re-assigned, cancelled from {CANCEL_CONNECTIONS} connections (projected): s",
        round(1000 / rate_parallel + 1000 / rate_batch, 1) if rate_batch else None,
        note="the batches' rate above; goal <= 10 s",
    )
    # Their freed slots are taken off the queue, not re-assigned: the batches above measured that, and
    # re-assigning them would use up the generated queues twice as fast for the next runs.
    from apps.booking.models import FreedSlot

    FreedSlot.objects.filter(slot_id__in=[a.slot_id for a in rest]).delete()


def _queue_drain_untimed() -> int:
    """Re-assign every slot still in the freed-slot queue (`booking_freedslot`); how many were there."""
    if not _module_has("apps.booking.services", "waitlist_drain"):
        return 0
    from apps.booking.models import FreedSlot
    from apps.booking.services import waitlist_drain

    queued = FreedSlot.objects.count()
    if queued:
        waitlist_drain(limit=10 * queued + 1000)
    return queued


CANCEL_CONNECTIONS = 4


def _cancel_concurrently(appointments: list[Any], connections: int) -> float:
    """Cancel the appointments from `connections` threads, each with its own database connection
    (opened before the clock starts); the seconds from the common start to the last commit."""
    import threading

    from django.db import connection

    from apps.booking.services import appointment_cancel_by_patient

    ready = threading.Barrier(connections + 1, timeout=60)
    failures: list[BaseException] = []

    def work(chunk: list[Any]) -> None:
        try:
            connection.ensure_connection()
            ready.wait()
            for appointment in chunk:
                appointment_cancel_by_patient(appointment=appointment)
        except BaseException as exc:  # reported below, after every thread has stopped
            failures.append(exc)
            ready.abort()
        finally:
            connection.close()

    threads = [
        threading.Thread(target=work, args=(appointments[i::connections],)) for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"a concurrent cancellation failed: {failures[0]!r}") from failures[0]
    return took


# --- main ----------------------------------------------------------------------------------------

# --- f. SMART Scheduling Links export -----------------------------------------------------------


def workload_bulk_export(report: Report) -> None:
    """Every Slot NDJSON file of $bulk-publish streamed in a process of its own (bench/
    bulk_export_worker.py), against the same rows read by a bare server-side cursor."""
    results = {}
    for mode in ("raw", "views"):
        args = [PY, "-m", "bench.bulk_export_worker"] + (["--raw"] if mode == "raw" else [])
        out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True, env=os.environ)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    views, raw = results["views"], results["raw"]
    report.details["bulk_export"] = results
    report.add(
        "f. bulk export",
        "Slot NDJSON lines/s (all voivodeships)",
        round(views["lines_per_s"]),
        round(raw["lines_per_s"]),
        ratio(views["lines_per_s"], raw["lines_per_s"]),
        f"{views['lines']} slots, {views['bytes'] / 2**20:.0f} MiB in {views['seconds']:.1f} s; "
        "baseline: the same rows through a bare server-side cursor",
    )
    report.add(
        "f. bulk export",
        "resident memory MiB (start / at 10% / end / peak)",
        f"{views['rss_start_mib']:.0f} / {views['rss_at_10pct_mib']:.0f} / {views['rss_end_mib']:.0f} / "
        f"{views['rss_peak_mib']:.0f}",
        note="flat: the end is the 10% mark, whatever the number of slots",
    )


WORKLOADS = ("search", "storm", "publish", "reconciliation", "waitlist", "bulk_export")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each workload does. The full run follows the issue; the quick run (make bench
    QUICK=1) is cut to stay under two minutes from an empty database on a loaded 2-core box."""

    days: int = 90  # days of future slots generated
    search_runs: int = 100
    storm_slots: int = 1000
    storm_threads: int = 200
    storm_runs: int = 3  # the median is reported
    ceiling_requests: int = 10_000
    publish_per_call: int = 10_000
    publish_batches: int = 100  # at scale 1.0 (1 million slots); proportionally fewer below
    waitlist: int = 1000

    @classmethod
    def for_run(cls, *, quick: bool, scale: float) -> Sizes:
        if quick:
            return cls(
                days=31,
                search_runs=10,
                storm_slots=200,
                storm_threads=50,
                storm_runs=1,
                ceiling_requests=1000,
                publish_per_call=1000,
                publish_batches=2,
                waitlist=100,
            )
        return cls(publish_batches=max(2, min(100, round(100 * scale))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="scale 0.005 and small workloads, under 2 minutes"
    )
    parser.add_argument("--scale", type=float, default=None, help="override the data scale")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--only",
        type=lambda v: [w.strip() for w in v.split(",") if w.strip()],
        default=None,
        help=f"comma-separated workloads to run, of: {', '.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument(
        "--no-generate",
        action="store_true",
        help="use the data already in the database (fail if there is none) instead of generating it",
    )
    parser.add_argument(
        "--visit-factor",
        type=float,
        default=None,
        help="reconciliation month = this many times the weekly sessions (default 2.25: the issue's "
        "10 M reported visits at scale 1.0; 1.0 in --quick)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only or []) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(sorted(unknown))}: choose from {', '.join(WORKLOADS)}")
    scale = args.scale if args.scale is not None else (QUICK_SCALE if args.quick else 1.0)
    size = Sizes.for_run(quick=args.quick, scale=scale)
    visit_factor = args.visit_factor if args.visit_factor is not None else (1.0 if args.quick else 2.25)
    _settings_environment()
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # a fresh clone's empty database works too
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d") + ("" if scale == 1.0 else f"-scale{scale:g}")
    if args.only:  # a partial run does not overwrite the full one of the day
        stamp += "-only-" + "-".join(args.only)
    report = Report()
    began = time.perf_counter()
    info = data_ensure(
        scale, args.seed, report, generate=not args.no_generate, visit_factor=visit_factor, days=size.days
    )
    today = dt.datetime.now(dt.UTC).date()
    month_first = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("search", lambda: workload_search(report, size.search_runs, stamp)),
        ("storm", lambda: workload_storm(report, size)),
        ("publish", lambda: workload_publish(report, size.publish_per_call, size.publish_batches)),
        ("reconciliation", lambda: workload_reconciliation(report, month_first)),
        ("waitlist", lambda: workload_waitlist(report, size.waitlist)),
        ("bulk_export", lambda: workload_bulk_export(report)),
    ]
    timings = {}
    try:
        for label, step in steps:
            if args.only is not None and label not in args.only:
                continue
            print(f"running {label} ...", flush=True)
            t0 = time.perf_counter()
            step()
            timings[label] = round(time.perf_counter() - t0, 1)
    finally:
        shared_server_stop()
    wall = time.perf_counter() - began
    table = report.table()
    print()
    print(table)
    print(f"\nwall time {wall:.0f} s")
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scale": scale,
        "quick": args.quick,
        "sizes": dataclasses.asdict(size),
        "visit_factor": visit_factor,
        "only": args.only,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "data": info,
        "step_seconds": timings,
        "wall_seconds": round(wall, 1),
    }
    (RESULTS / f"{stamp}.json").write_text(
        json.dumps({**meta, "rows": report.rows, "details": report.details}, indent=2, default=str),
        encoding="utf-8",
    )
    (RESULTS / f"{stamp}.md").write_text(
        f"# Benchmark {meta['date']} (scale {scale})\n\n"
        f"{os.cpu_count()} CPUs, wall time {wall:.0f} s; steps (s): {timings}\n\n{report.markdown()}\n",
        encoding="utf-8",
    )
    print(f"results: bench/results/{stamp}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
