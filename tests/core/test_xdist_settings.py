"""The suite runs on several pytest-xdist processes (Makefile `test`): each needs its own Redis database,
since every test clears the cache, and the log scan must read every process's log."""

from __future__ import annotations

import os
from fnmatch import fnmatch

from django.conf import settings

from config.settings._xdist import worker_redis_url


def test_each_worker_gets_the_databases_after_the_one_given():
    assert worker_redis_url("redis://127.0.0.1:6379/0", "gw0") == "redis://127.0.0.1:6379/1"
    assert worker_redis_url("redis://127.0.0.1:6379/0", "gw1") == "redis://127.0.0.1:6379/2"
    assert worker_redis_url("redis://127.0.0.1:6379", "gw0") == "redis://127.0.0.1:6379/1"
    assert worker_redis_url("redis://:pw@host:6380/8", "gw3") == "redis://:pw@host:6380/12"


def test_the_numbers_wrap_within_redis_sixteen_databases():
    assert worker_redis_url("redis://127.0.0.1:6379/15", "gw0") == "redis://127.0.0.1:6379/0"


def test_this_process_uses_its_own_redis_database_when_it_is_a_worker():
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    location = settings.CACHES["default"]["LOCATION"]
    assert location == os.environ["REDIS_URL"]  # subprocesses a test starts inherit the same one
    if worker:
        assert os.environ["CER_XDIST_REDIS_MOVED"] == "1"
        assert location.rsplit("/", 1)[1] != ""


def test_every_process_of_the_run_logs_to_a_file_the_main_process_scans():
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    assert settings.TEST_LOG_FILE.name == f"pytest-{settings.TEST_RUN}-{worker}.jsonl"
    assert fnmatch(settings.TEST_LOG_FILE.name, f"pytest-{settings.TEST_RUN}-*.jsonl")  # the scan's pattern
    assert settings.TEST_LOG_FILE.parent == settings.TEST_LOG_DIR
