"""Shared fixtures. Tests run on real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, see Makefile).

Fixed personas for permissions (STYLE.md rule 8): a patient, facility A's system, facility B's
system, NFZ staff. Apps add persona fixtures for their own interfaces in their test folders.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.factories import FacilityFactory, PatientFactory, ServiceFactory


@pytest.fixture(autouse=True)
def _clean_cache():
    """Redis is shared by the whole run: each test starts with an empty cache namespace, and without
    the process's copy of reference data (a test's own reason codes are rolled back with it)."""
    from apps.catalog import reason_cache

    cache.clear()
    reason_cache.clear()
    yield


@pytest.fixture(autouse=True)
def _celery_join_flag():
    """Under the test settings Celery runs a task eagerly, in the caller's thread, and marks a
    process-wide "inside a task" flag around it (which refuses `result.get()`), restoring the value it
    found. Two threads of a concurrency test running eager tasks at once can leave it set, and every
    later test of this xdist worker that calls `.get()` fails ("Never call result.get() within a task").
    Each test starts with it clear."""
    from celery.result import _set_task_join_will_block

    _set_task_join_will_block(False)
    yield


@pytest.fixture
def cardiology(db):
    return ServiceFactory()


@pytest.fixture
def mammography(db):
    return ServiceFactory(mammography=True)


@pytest.fixture
def patient(db):
    return PatientFactory()


@pytest.fixture
def facility_a(db):
    return FacilityFactory(name="Facility A")


@pytest.fixture
def facility_b(db):
    return FacilityFactory(name="Facility B")


def pytest_sessionfinish(session, exitstatus):
    """No PESEL (nor a masked e-mail or phone number) in the logs of the whole run (DESIGN.md section 7).
    Every log record of the run went to a JSON file per process (config/settings/test.py); the main
    process scans them all once its xdist workers, if any, have finished."""
    from django.conf import settings

    from apps.operations.logs import log_leaks

    if hasattr(session.config, "workerinput"):  # an xdist worker: the main process scans its file
        return
    run = getattr(settings, "TEST_RUN", None)
    if run is None:
        return
    paths = sorted(settings.TEST_LOG_DIR.glob(f"pytest-{run}-*.jsonl"))
    leaks: list[str] = []
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as log:
            leaks += [f"{path.name}: {line}" for line in log_leaks(log)]
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line(f"personal data in the test run's log ({settings.TEST_LOG_DIR}):", red=True)
        for line in leaks[:20]:
            reporter.write_line(f"  {line[:300]}")
        session.exitstatus = 1
    else:
        for path in paths:
            path.unlink()


@pytest.fixture
def admin_client(client, admin_user):
    """pytest-django's admin client, past the admin's second factor (django-otp)."""
    from tests.factories.staff import otp_verified

    return otp_verified(client, admin_user)


@pytest.fixture(autouse=True)
def _outbound_network_seam(monkeypatch):
    """No test asks real DNS or connects anywhere but loopback (issue 15). Webhook target names
    resolve through this table: IP literals to themselves, *.example.org to a public documentation
    address (so subscriptions pass their check); a delivery to anything but loopback fails the test."""
    import ipaddress

    from apps.integration import egress

    real_post = egress.post

    def resolve(host: str, port: int) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        if host == "example.org" or host.endswith(".example.org"):
            return ["93.184.216.34"]
        raise OSError(f"test resolver: unknown name {host}")

    def post(target, **kwargs):
        assert ipaddress.ip_address(target.addresses[0]).is_loopback, f"test traffic to {target.addresses}"
        return real_post(target, **kwargs)

    monkeypatch.setattr(egress, "resolve", resolve)
    monkeypatch.setattr(egress, "post", post)
