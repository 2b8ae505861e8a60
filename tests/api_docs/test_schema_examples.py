"""Issue 17: examples for every request and response. Each operation of the generated schema shows its
request body (where it has one) and every success answer with content by example, and every example in
the document, the error examples included, is valid for the schema it illustrates (OpenAPI 3.0 rules:
`nullable`, formats; a request is read as written, an answer as read)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator, oas30_format_checker


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        return json.loads(Client().get("/api/schema/?format=json").content)


def _operations(schema: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield path, method, op


def _examples(media: dict) -> list[tuple[str, Any]]:
    found = [(name, example["value"]) for name, example in media.get("examples", {}).items()]
    if "example" in media:
        found.append(("example", media["example"]))
    return found


def _null_or_reference(node: Any) -> Any:
    """drf-spectacular writes a nullable nested object in OpenAPI 3.0 as `{"allOf": [{"$ref": ...}],
    "nullable": true}`, which the 3.0.3 clarification of `nullable` leaves ambiguous (a strict reader
    applies the referenced schema to null too). It means "null, or the referenced object", as
    schemathesis and openapi-python-client read it; so does this test."""
    if isinstance(node, list):
        return [_null_or_reference(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _null_or_reference(value) for key, value in node.items()}
    if node.get("nullable") is True and "allOf" in node and "type" not in node:
        rest = {key: value for key, value in node.items() if key != "nullable"}
        return {"anyOf": [rest, {"enum": [None]}]}
    return node


def _bodies(schema: dict) -> Iterator[tuple[str, str, dict, type]]:
    """(where, media type, media object, validator) of every request and answer body."""
    for path, method, op in _operations(schema):
        for media_type, media in op.get("requestBody", {}).get("content", {}).items():
            yield f"{method.upper()} {path} request", media_type, media, OAS30WriteValidator
        for status, answer in op["responses"].items():
            for media_type, media in answer.get("content", {}).items():
                yield f"{method.upper()} {path} {status}", media_type, media, OAS30ReadValidator


def test_every_operation_shows_its_request_and_success_answers_by_example(schema):
    missing = []
    for path, method, op in _operations(schema):
        for media_type, media in op.get("requestBody", {}).get("content", {}).items():
            if not _examples(media):
                missing.append(f"{method.upper()} {path} request ({media_type})")
        successes = [status for status in op["responses"] if status.startswith("2")]
        assert successes, (method, path)
        for status in successes:
            for media_type, media in op["responses"][status].get("content", {}).items():
                if not _examples(media):
                    missing.append(f"{method.upper()} {path} {status} ({media_type})")
    assert not missing, "\n".join(missing)


def test_every_error_answer_keeps_an_example(schema):
    missing = [
        f"{method.upper()} {path} {status}"
        for path, method, op in _operations(schema)
        for status, answer in op["responses"].items()
        if status.startswith(("4", "5"))
        for media in answer.get("content", {}).values()
        if not _examples(media)
    ]
    assert not missing, "\n".join(missing)


def test_every_example_is_valid_for_its_schema(schema):
    checked, invalid = 0, []
    for where, media_type, media, validator_class in _bodies(schema):
        # The body's schema, resolved against the document's own components.
        document = _null_or_reference({**media["schema"], "components": schema["components"]})
        validator = validator_class(document, format_checker=oas30_format_checker)
        for name, value in _examples(media):
            checked += 1
            errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
            invalid += [
                f"{where} {media_type} example {name!r} at {'/'.join(map(str, e.absolute_path))}: "
                f"{e.message[:200]}"
                for e in errors[:3]
            ]
    assert not invalid, "\n".join(invalid)
    assert checked > 100  # every operation's request, success and error examples


def test_an_invalid_example_would_be_noticed(schema):
    """The validator is not vacuous: a booking answer without its required fields fails."""
    document = {"$ref": "#/components/schemas/BookingOutput", "components": schema["components"]}
    validator = OAS30ReadValidator(document, format_checker=oas30_format_checker)

    assert list(validator.iter_errors({"id": "seven", "start": "yesterday"}))
