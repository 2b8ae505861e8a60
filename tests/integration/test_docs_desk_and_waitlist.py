"""The README's curl commands for a new patient's desk booking and the facility waiting list, run as
written (bodies, methods and paths taken from the Markdown) against the API. Its ids (slot 123, entry
77) are placeholders, so the commands go through the test client with those ids mapped to this test's
rows; the quickstart, whose blocks carry their ids in shell variables, runs whole in bash
(tests/api_docs/test_quickstart.py)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from apps.booking.models import Appointment, Registration
from apps.patients.models import Patient
from tests.factories import (
    ContractFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
    VoivodeshipFactory,
)
from tests.factories.integration import access_token_create, api_client_create

from .conftest import Api

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"```bash\n(.*?)```", re.S)
# `curl` and its arguments up to the first newline that is neither escaped nor inside quotes.
CURL = re.compile(r"curl((?:[^'\n\\]|'[^']*'|\\\n|\\)*)")


def _commands(doc: str) -> list[tuple[str, str, dict | None]]:
    """(method, path, body) of every documented call to the desk-patient or waiting-list operations."""
    found = []
    for block in FENCE.findall((ROOT / doc).read_text()):
        for match in CURL.finditer(block):
            tokens = shlex.split(match.group(1).replace("\\\n", " "), comments=True)
            method, body, path = None, None, None
            for i, token in enumerate(tokens):
                if token == "-X":
                    method = tokens[i + 1]
                elif token == "-d":
                    body = tokens[i + 1]
                elif token.startswith("$CER/api/v1/"):
                    path = token.removeprefix("$CER")
            if path is None or not path.startswith(("/api/v1/waitlist", "/api/v1/bookings")):
                continue
            data = json.loads(body) if body is not None else None
            if path.startswith("/api/v1/waitlist") or (data and "patient" in data):
                found.append((method or ("POST" if data is not None else "GET"), path, data))
    return found


@pytest.fixture
def documented_world(facility_a):
    """What the documented calls name: a screening slot (documented as 123), mammography screening,
    the voivodeship with TERYT 14."""
    VoivodeshipFactory(teryt="14")
    ServiceFactory(mammography=True)
    cytology = ServiceFactory(cytology=True)
    ContractFactory(facility=facility_a, service=cytology)
    return SlotFactory(schedule=ScheduleFactory(facility=facility_a, service=cytology))


def _run(doc: str, api: Api, slot) -> list:
    responses, entry_id = [], None
    for method, path, body in _commands(doc):
        if body and body.get("slot_id") == 123:
            body = {**body, "slot_id": slot.pk}
        if entry_id is not None:
            path = path.replace("/77", f"/{entry_id}")
        response = api.call(method, path, body if body is not None else ({} if method == "POST" else None))
        assert response.status_code in (200, 201), (doc, method, path, response.content[:400])
        if path == "/api/v1/waitlist":
            entry_id = response.json()["id"]
        responses.append((method, path, response.json()))
    return responses


def test_the_readmes_desk_and_waitlist_calls_work_as_written(facility_a, documented_world):
    doc = "README.md"
    api = Api(access_token_create(api_client_create(facility=facility_a)))

    responses = _run(doc, api, documented_world)

    calls = [(method, re.sub(r"/\d+", "/{id}", path)) for method, path, _ in responses]
    assert ("POST", "/api/v1/bookings") in calls and ("POST", "/api/v1/waitlist") in calls
    assert ("GET", "/api/v1/waitlist/{id}") in calls
    new = Patient.objects.get(pesel="70051712308")
    assert new.source == Patient.Source.FACILITY and new.source_facility == facility_a
    assert Appointment.objects.filter(patient=new, slot=documented_world).exists()
    assert Registration.objects.filter(status__in=("waiting", "closed")).exists()
