"""The integration API's personas (tests/integration/conftest.py) for the documentation's tests."""

from tests.integration.conftest import (  # noqa: F401 (fixtures)
    Api,
    anonymous,
    api_a,
    api_b,
    issued_a,
    issued_b,
    world_a,
)
