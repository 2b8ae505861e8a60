"""Metrics of a machine that runs only Celery workers (no web process to scrape).

With `CER_WORKER_METRICS_PORT` set, the worker's main process serves `GET /metrics` on
`CER_WORKER_METRICS_ADDR` (127.0.0.1 by default) from a thread, once the worker is ready. With
`PROMETHEUS_MULTIPROC_DIR` (required with the prefork pool: the tasks run in child processes) it adds
up every process of the machine that writes there, the pool children included.

Protected like the web's `/metrics`: with `CER_METRICS_TOKEN` set, a scrape must send it as a bearer
token (otherwise 404); without a token the endpoint is served only on a loopback address (a
Prometheus agent on the machine, or an SSH tunnel), and a request for another address is refused at
start with an error in the log, never served open. The scrape-time gauges (outbox lag, backlogs,
queue depth, database and Redis health) are the web's: they describe the whole system, so a worker
machine reports only what its processes counted.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app, multiprocess

logger = logging.getLogger(__name__)

_server: WSGIServer | None = None
_lock = threading.Lock()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _registry() -> CollectorRegistry:
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def metrics_app(token: str | None) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: `/metrics` for a scrape with the token (when there is one), 404 for anything else."""
    inner = make_wsgi_app(_registry())
    expected = f"Bearer {token}".encode() if token else None

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = str(environ.get("HTTP_AUTHORIZATION", "")).encode()
        allowed = environ.get("PATH_INFO") == "/metrics" and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
        if expected is not None:
            allowed = allowed and hmac.compare_digest(given, expected)
        if not allowed:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not Found\n"]
        return inner(environ, start_response)

    return app


def worker_metrics_start() -> WSGIServer | None:
    """Serve this machine's metrics if configured (idempotent). Returns the server, or None."""
    global _server
    port, address = settings.CER_WORKER_METRICS_PORT, settings.CER_WORKER_METRICS_ADDR
    token = settings.CER_METRICS_TOKEN
    if not port:
        return None
    if not token and not _is_loopback(address):
        logger.error(
            "worker metrics not served: %s is not a loopback address and CER_METRICS_TOKEN is unset", address
        )
        return None
    with _lock:
        if _server is None:
            _server = make_server(address, port, metrics_app(token), _Server, handler_class=_QuietHandler)
            threading.Thread(target=_server.serve_forever, name="worker-metrics", daemon=True).start()
            logger.info("worker metrics on %s:%s/metrics", address, _server.server_port)
    return _server


def worker_metrics_stop() -> None:
    global _server
    with _lock:
        if _server is not None:
            _server.shutdown()
            _server.server_close()
            _server = None


def worker_ready(**kwargs: Any) -> None:
    try:
        worker_metrics_start()
    except OSError:  # the port is taken (a second worker on the machine): the first one serves
        logger.exception("worker metrics not served")


def worker_process_shutdown(pid: int | None = None, **kwargs: Any) -> None:
    """A pool child that exits: its live gauges leave the multiprocess files (prometheus-client)."""
    if settings.PROMETHEUS_MULTIPROC_DIR:
        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]
