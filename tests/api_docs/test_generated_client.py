"""Issue 17: a typed Python client generated from the live schema by a standard generator
(openapi-python-client) drives a whole desk flow against a live server on loopback: publish, book,
cancel, report an outcome, report a visit and read its verdict. One live server, one generation."""

from __future__ import annotations

import datetime as dt
import importlib
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from django.utils import timezone

from tests.factories import PatientFactory
from tests.factories.integration import access_token_create

CONFIG = "package_name_override: cer_client_generated\nproject_name_override: cer-client-generated\n"


def _generator() -> str:
    found = shutil.which("openapi-python-client") or str(
        Path(sys.executable).parent / "openapi-python-client"
    )
    assert Path(found).exists(), "openapi-python-client (a dev dependency) is not installed"
    return found


def _generate(base_url: str, target: Path) -> None:
    with urllib.request.urlopen(f"{base_url}/api/schema/?format=json", timeout=30) as answer:  # noqa: S310 (loopback)
        (target / "openapi.json").write_bytes(answer.read())
    (target / "config.yaml").write_text(CONFIG)
    subprocess.run(  # noqa: S603 (a fixed executable and arguments)
        [_generator(), "generate", "--path", "openapi.json", "--config", "config.yaml", "--meta", "none"],
        cwd=target,
        check=True,
        capture_output=True,
        timeout=90,
    )


def _key() -> str:
    return str(uuid.uuid4())


def test_a_generated_client_drives_a_desk_flow(live_server, tmp_path, world_a, issued_a):
    _generate(live_server.url, tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        api = importlib.import_module("cer_client_generated.api")
        client_module = importlib.import_module("cer_client_generated")
        models = importlib.import_module("cer_client_generated.models")
        publish = importlib.import_module("cer_client_generated.api.schedules.schedules_slots_publish")
        create = importlib.import_module("cer_client_generated.api.bookings.bookings_create")
        cancel = importlib.import_module("cer_client_generated.api.bookings.bookings_cancel")
        outcome = importlib.import_module("cer_client_generated.api.bookings.bookings_outcome")
        report = importlib.import_module("cer_client_generated.api.visits.visits_report")
        visits = importlib.import_module("cer_client_generated.api.visits.visits_list")
    finally:
        sys.path.remove(str(tmp_path))
    assert api is not None
    client = client_module.AuthenticatedClient(base_url=live_server.url, token=access_token_create(issued_a))
    start = (timezone.now() + dt.timedelta(days=3)).replace(hour=7, minute=0, second=0, microsecond=0)

    # Publish a slot.
    published = publish.sync(
        schedule_id=world_a.schedule.pk,
        client=client,
        body=models.SlotsPublishInputRequest.from_dict(
            {"slots": [{"start": start.isoformat(), "end": (start + dt.timedelta(minutes=20)).isoformat()}]}
        ),
        idempotency_key=_key(),
    )
    assert isinstance(published, models.SlotsPublishOutput), published
    slot_id = world_a.schedule.slots.get(start=start).pk

    # Book it at the desk for a patient, then cancel it for them.
    patient = PatientFactory()
    booked = create.sync(
        client=client,
        body=models.BookingCreateInputRequest.from_dict(
            {"slot_id": slot_id, "pesel": patient.pesel, "channel": "desk"}
        ),
        idempotency_key=_key(),
    )
    assert isinstance(booked, models.BookingOutput), booked
    assert booked.status == models.BookingOutputStatusEnum.BOOKED
    cancelled = cancel.sync(
        booking_id=booked.id,
        client=client,
        body=models.CancelInputRequest(reason_code="DOCTOR_ILLNESS"),
        idempotency_key=_key(),
    )
    assert isinstance(cancelled, models.BookingOutput), cancelled
    assert cancelled.status == models.BookingOutputStatusEnum.CANCELLED_BY_FACILITY

    # A refusal comes back typed too.
    again = cancel.sync(
        booking_id=booked.id, client=client, body=models.CancelInputRequest(reason_code="DOCTOR_ILLNESS")
    )
    assert isinstance(again, models.Problem) and again.code == "booking_state"

    # Report the outcome of a visit that has started.
    attended = outcome.sync(
        booking_id=world_a.past_booking.pk,
        client=client,
        body=models.OutcomeInputRequest(outcome=models.OutcomeEnum.ATTENDED),
        idempotency_key=_key(),
    )
    assert isinstance(attended, models.BookingOutput), attended
    assert attended.status == models.BookingOutputStatusEnum.ATTENDED

    # Report the visit for settlement and read its verdict (none until a reconciliation run).
    visit_at = world_a.past_booking.start.isoformat()
    reported = report.sync(
        client=client,
        body=models.VisitsReportInputRequest.from_dict(
            {
                "visits": [
                    {
                        "visit_id": "HIS-1",
                        "pesel": world_a.past_booking.patient.pesel,
                        "service_code": world_a.service.code,
                        "visit_at": visit_at,
                    }
                ]
            }
        ),
        idempotency_key=_key(),
    )
    assert isinstance(reported, models.VisitsReportOutput) and reported.recorded == 1, reported
    page = visits.sync(client=client)
    assert isinstance(page, models.VisitPage)
    assert [v.visit_id for v in page.results] == ["HIS-1"]
    assert page.results[0].verdict is None
