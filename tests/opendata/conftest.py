"""Shared with the FHIR tests: the world the README examples run against."""

from tests.fhir.conftest import fhir_world  # noqa: F401
