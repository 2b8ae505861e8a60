"""One active Celery beat (apps/core/beat.py): the holder of a PostgreSQL advisory lock sends, the
others stand by; the lock moves when the holder closes, or when its session is gone (the standby
then takes over, and the former holder steps down instead of sending). In process, real PostgreSQL;
the same with real beat processes and SIGKILL is in tests/operations/test_many_instances.py."""

import pytest
from django.db import connection

from apps.core.beat import LeaderDatabaseScheduler, lock_conninfo
from config.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


def _beat() -> LeaderDatabaseScheduler:
    return LeaderDatabaseScheduler(app=app, lazy=True)


def test_one_beat_holds_the_lock_and_the_standby_takes_it_when_it_closes():
    first, second = _beat(), _beat()
    try:
        assert first.lock_held() is True
        assert second.lock_held() is False
        assert first.lock_held() is True  # still, at the next tick
        first.close()
        assert second.lock_held() is True
        assert second.active and not first.active
    finally:
        first.close()
        second.close()


def test_a_beat_whose_session_is_gone_steps_down_and_the_standby_takes_over():
    first, second = _beat(), _beat()
    try:
        assert first.lock_held() is True
        assert second.lock_held() is False
        assert first._lock_conn is not None
        pid = first._lock_conn.info.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])  # waits until it is gone
        assert second.lock_held() is True
        assert first.lock_held() is False  # reconnects, finds the lock taken: stands by
        assert first.tick() == first.standby_seconds  # a standby sends nothing
    finally:
        first.close()
        second.close()


def test_the_lock_session_has_keepalives_both_ways_and_keeps_the_database_options():
    args = lock_conninfo(
        {
            "NAME": "cer",
            "USER": "u",
            "HOST": "db",
            "PORT": "5432",
            "OPTIONS": {"options": "-c a=1", "prepare_threshold": 5},
        }
    )
    assert args["dbname"] == "cer" and args["keepalives"] == 1
    assert args["options"].startswith("-c a=1 ") and "tcp_keepalives_idle=10" in args["options"]
    assert "prepare_threshold" not in args
