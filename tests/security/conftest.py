"""The attack suite reuses the integration API's personas (facility A's and B's systems)."""

from tests.integration.conftest import (  # noqa: F401 (fixtures)
    Api,
    anonymous,
    api_a,
    api_b,
    issued_a,
    issued_b,
    world_a,
)
