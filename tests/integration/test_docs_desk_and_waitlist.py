"""The README's and the quickstart's curl commands for a new patient's desk booking and the facility
waiting list, run as written (bodies, methods and paths taken from the Markdown) against the API."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
from pathlib import Path

import pytest
import time_machine

from apps.booking.models import Appointment, Registration
from apps.catalog.models import Locality
from apps.patients.models import Patient, PatientEntitlement
from tests.factories import (
    ContractFactory,
    EntitlementFactory,
    PatientFactory,
    ReferralFactory,
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
# The docs' dates (e.g. a preference window up to 2027-03-31) are read on the day they were written.
DOCS_DAY = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


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
    """What the documented calls name: a slot (documented as 123), the patients, the e-referral
    REF0000000001/1234 for KARDIO_1, the ZHDK entitlement, Warsaw (TERYT 14, SIMC 9140007)."""
    voivodeship = VoivodeshipFactory(teryt="14")
    Locality.objects.get_or_create(
        simc="9140007", defaults={"name": "Warszawa", "voivodeship": voivodeship, "lat": 52.23, "lon": 21.01}
    )
    EntitlementFactory(code="ZHDK")
    cardiology = ServiceFactory()
    ServiceFactory(mammography=True)
    cytology = ServiceFactory(cytology=True)
    for service in (cardiology, cytology):
        ContractFactory(facility=facility_a, service=service)
    slot = SlotFactory(schedule=ScheduleFactory(facility=facility_a, service=cytology))
    known = PatientFactory(pesel="44051401359", sex="M", birth_date=dt.date(1944, 5, 14))
    ReferralFactory(number="REF0000000001", access_code="1234", patient=known, service=cardiology)
    return slot


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


@pytest.mark.parametrize("doc", ["docs/integration-quickstart.md", "README.md"])
def test_the_documented_desk_and_waitlist_calls_work_as_written(doc, facility_a, documented_world):
    api = Api(access_token_create(api_client_create(facility=facility_a)))

    with time_machine.travel(DOCS_DAY, tick=True):
        responses = _run(doc, api, documented_world)

    calls = [(method, re.sub(r"/\d+", "/{id}", path)) for method, path, _ in responses]
    assert ("POST", "/api/v1/bookings") in calls and ("POST", "/api/v1/waitlist") in calls
    assert ("GET", "/api/v1/waitlist/{id}") in calls
    new = Patient.objects.get(pesel="70051712308")
    assert new.source == Patient.Source.FACILITY and new.source_facility == facility_a
    assert Appointment.objects.filter(patient=new, slot=documented_world).exists()
    assert Registration.objects.filter(status__in=("waiting", "closed")).exists()
    if doc.startswith("docs/"):
        assert responses[-1][2]["status"] == "closed"  # the documented leave
        assert PatientEntitlement.objects.get(patient__pesel="44051401359").document.startswith("legitymacja")
