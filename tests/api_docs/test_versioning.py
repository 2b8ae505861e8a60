"""Issue 17 (docs/versioning.md): a deprecated operation says so on every answer (Deprecation,
RFC 9745; Sunset, RFC 8594) and in the schema; the others say nothing."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from django.test import Client

from apps.integration.apis.reference import ServiceListApi


def test_a_deprecated_operation_sends_deprecation_and_sunset(api_a, db, monkeypatch):
    monkeypatch.setattr(ServiceListApi, "deprecated_on", dt.date(2027, 1, 1))
    monkeypatch.setattr(ServiceListApi, "sunset_on", dt.date(2028, 1, 1))

    response = api_a.get("/api/v1/services")
    schema = json.loads(Client().get("/api/schema/?format=json").content)

    assert response["Deprecation"] == "@1798761600"
    assert response["Sunset"] == "Sat, 01 Jan 2028 00:00:00 GMT"
    assert 'rel="deprecation"' in response["Link"]
    assert schema["paths"]["/api/v1/services"]["get"]["deprecated"] is True


def test_a_current_operation_sends_neither(api_a, db):
    response = api_a.get("/api/v1/services")

    assert "Deprecation" not in response and "Sunset" not in response


def test_the_changelog_names_the_schemas_version_first(db):
    """docs/versioning.md: the document states the version it describes, and the changelog lists it."""
    changelog = (Path(__file__).resolve().parents[2] / "docs" / "changelog.md").read_text(encoding="utf-8")
    schema = json.loads(Client().get("/api/schema/?format=json").content)

    newest = re.search(r"^## (\d+\.\d+\.\d+)", changelog, re.M)

    assert newest is not None and newest.group(1) == schema["info"]["version"]
