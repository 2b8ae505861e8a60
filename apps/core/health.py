"""Liveness and readiness. `/readyz` is what a load balancer asks before sending traffic.

Readiness is split (issue 15): `/readyz` needs the database and migrations (what every page and the
API's reads need) and reports Redis as `degraded` without failing, so an outage of the shared Redis
does not take every instance out of the balancer while patient pages still work; the API answers
503 + Retry-After meanwhile (`RedisOutageMiddleware`). `/readyz/full` fails on any check (monitoring).
"""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_migrations() -> str:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        return f"error: {len(plan)} migration(s) not applied"
    return "ok"


def _check_redis() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL or "", socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


CHECKS = {"database": _check_database, "migrations": _check_migrations, "redis": _check_redis}
REQUIRED = ("database", "migrations")  # what /readyz needs; the rest may be degraded


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    results = _run_checks()
    ready = all(results[name] == "ok" for name in REQUIRED)
    degraded = ready and any(v != "ok" for v in results.values())
    status = "degraded" if degraded else ("ok" if ready else "fail")
    return JsonResponse({"status": status, "checks": results}, status=200 if ready else 503)


@require_GET
@never_cache
def readyz_full(request: HttpRequest) -> JsonResponse:
    results = _run_checks()
    ready = all(v == "ok" for v in results.values())
    return JsonResponse(
        {"status": "ok" if ready else "fail", "checks": results}, status=200 if ready else 503
    )


def _run_checks() -> dict[str, str]:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        if name == "migrations" and results.get("database") != "ok":
            results[name] = "skipped: database unreachable"
            continue
        try:
            results[name] = check()
        except Exception as exc:  # a readiness probe reports every failure, whatever its type
            results[name] = f"error: {type(exc).__name__}: {exc}".splitlines()[0]
    return results
