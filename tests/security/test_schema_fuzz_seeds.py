"""Schemathesis beyond the derandomized run of tests/integration/test_openapi.py: random examples
under fixed seeds (so a failure reproduces), checking that no operation answers 5xx or anything but
its documented content type."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error

from tests.integration.test_openapi import demo_token, each_operation  # noqa: F401 (the fixture)

SETTINGS = settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))


def _check(case, token: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error, content_type_conformance]
    )


test_no_5xx_under_seed_15 = each_operation(_check, SETTINGS, fixed_seed=15)
test_no_5xx_under_seed_20261201 = each_operation(_check, SETTINGS, fixed_seed=20261201)
