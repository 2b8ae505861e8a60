"""Schemathesis's stateful mode (issue 15): sequences of calls along the links schemathesis infers from
the live schema (a schedule created, then read, its slots published, blocked, booked, confirmed,
cancelled...), under two fixed seeds (issue 17) so a failure reproduces. No step may answer 5xx or
anything but its documented content type; the single-call runs are tests/integration/test_openapi.py
and tests/security/test_schema_fuzz_seeds.py, each with two seeds as well."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis.stateful import get_state_machine_test
from schemathesis.checks import content_type_conformance, not_a_server_error

from tests.integration.test_openapi import API, demo_token  # noqa: F401 (the fixture)

SETTINGS = settings(
    max_examples=6,
    stateful_step_count=5,
    deadline=None,
    derandomize=False,  # the seed below decides
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_the_schema_links_operations_into_workflows():
    transitions = [name for name in dir(API.as_state_machine()) if name.split("_", 1)[0] in {"GET", "POST"}]
    # e.g. a created schedule's id feeding its slots' publication, a booking's id feeding its cancel
    assert len(transitions) >= 20
    assert any("PostSchedule" in name for name in transitions)
    assert any("PostBooking" in name for name in transitions)


@pytest.mark.parametrize("fixed_seed", [15, 20261201])
def test_call_sequences_along_the_links_never_answer_5xx(demo_token, fixed_seed):  # noqa: F811
    calls: Counter[str] = Counter()

    class Workflow(API.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case):
            return {"headers": {"Authorization": f"Bearer {demo_token}"}}

        def after_call(self, response, case):
            calls[f"{case.method} {case.path}"] += 1
            super().after_call(response, case)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response,
                checks=[not_a_server_error, content_type_conformance],
                transport_kwargs=kwargs or None,
            )

    # Workflow.run(settings=...) takes no seed: the same test it runs (hypothesis's own, with the two
    # steps at least that schemathesis asks for), under the given seed.
    seed(fixed_seed)(get_state_machine_test(Workflow, settings=SETTINGS, _min_steps=2))()
    assert sum(calls.values()) >= SETTINGS.max_examples  # every scenario made calls
    assert len(calls) >= 3, calls  # and went from one operation to others
