"""Structured logs: JSON lines with the request id, no personal data, lost races at INFO."""

from __future__ import annotations

import json
import logging

import pytest

from apps.operations.context import request_id_var
from apps.operations.logs import ContextFilter, JsonFormatter, is_pesel_shaped, log_leaks, redact
from tests.factories import PatientFactory

VALID_PESEL = "44051401359"  # checksum-valid example from the PESEL standard


def _json_line(logger_name: str, message: str, *args: object, **extra: object) -> dict:
    record = logging.getLogger(logger_name).makeRecord(
        logger_name, logging.INFO, __file__, 1, message, args, None, extra=extra or None
    )
    ContextFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_a_log_line_is_one_json_object_with_the_request_id():
    token = request_id_var.set("req-json-1")
    try:
        entry = _json_line("apps.test", "booked %s slots", 3, appointment_id=17)
    finally:
        request_id_var.reset(token)

    assert entry["message"] == "booked 3 slots"
    assert entry["request_id"] == "req-json-1"
    assert entry["level"] == "INFO" and entry["logger"] == "apps.test"
    assert entry["appointment_id"] == 17
    assert entry["ts"].endswith("+00:00")
    assert "redacted" not in entry


def test_personal_data_that_slips_into_a_message_is_masked_and_flagged():
    entry = _json_line(
        "apps.test",
        "patient %s at %s, call +48 600 100 200",
        VALID_PESEL,
        "jan.kowalski@example.pl",
        note=VALID_PESEL,
    )

    assert VALID_PESEL not in json.dumps(entry)
    assert "kowalski" not in entry["message"] and "600 100 200" not in entry["message"]
    assert entry["message"] == "patient [PESEL] at [e-mail], call [phone]"
    assert entry["redacted"] == ["email", "pesel", "phone"]


def test_ids_and_timestamps_that_are_not_pesel_shaped_are_left_alone():
    original = "appointment 44051401358 at 1733050000000, slot 12345678901, id 440514013590"
    text, found = redact(original)

    assert is_pesel_shaped(VALID_PESEL) and not is_pesel_shaped("44051401358")
    assert (text, found) == (original, [])


def test_the_scan_finds_a_pesel_in_a_log_file(tmp_path):
    """The check the whole run ends with (tests/conftest.py), on a log that leaks and one that does not."""
    path = tmp_path / "run.jsonl"
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.operations.leak")
    logger.addHandler(handler)
    logger.propagate = False  # kept out of the run's own log, which must stay clean
    try:
        logger.info("appointment %s booked", 17)
        logger.info("patient %s", VALID_PESEL)
        logger.warning("raw", extra={"payload": {"pesel": VALID_PESEL}})
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.propagate = True
    lines = path.read_text().splitlines()

    assert len(log_leaks(lines)) == 2
    assert log_leaks(lines[:1]) == []
    assert log_leaks(['{"message": "patient ' + VALID_PESEL + '"}']) != []


def test_a_lost_race_409_is_logged_at_info_not_warning(api_a, world_a, caplog):
    body = {"slot_id": world_a.booking.slot.pk, "pesel": PatientFactory().pesel, "channel": "desk"}

    with caplog.at_level(logging.INFO, logger="django.request"):
        response = api_a.post("/api/v1/bookings", body, **{"X-Request-ID": "req-lost-race"})
        missing = api_a.get("/api/v1/bookings/999999999")

    assert response.status_code == 409 and missing.status_code == 404
    records = {r.status_code: r for r in caplog.records if r.name == "django.request"}
    assert records[409].levelname == "INFO"
    assert records[404].levelname == "WARNING"  # a real fault on the caller's side stays a warning
    formatted = json.loads(JsonFormatter().format(records[409]))
    assert formatted["status_code"] == 409
    assert formatted["request_id"] == "req-lost-race"  # logged after the middleware returned
    assert formatted["facility_id"] == world_a.facility.pk
    assert body["pesel"] not in json.dumps(formatted)


class _Kept(logging.Handler):
    """Every record that reaches it, whatever its level (as the console handler of the settings)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_lost_race_409_is_not_logged_where_info_is_not_wanted(api_a, world_a):
    body = {"slot_id": world_a.booking.slot.pk, "pesel": PatientFactory().pesel, "channel": "desk"}
    logger, kept = logging.getLogger("django.request"), _Kept()
    level = logger.level
    logger.addHandler(kept)
    logger.setLevel(logging.WARNING)  # LOG_LEVEL=WARNING
    try:
        response = api_a.post("/api/v1/bookings", body)
        missing = api_a.get("/api/v1/bookings/999999999")
    finally:
        logger.removeHandler(kept)
        logger.setLevel(level)

    assert response.status_code == 409 and missing.status_code == 404
    assert [r.status_code for r in kept.records] == [404]


def test_a_lost_race_409_is_not_logged_at_log_level_warning_with_djangos_own_logger_at_info(api_a, world_a):
    """LOG_LEVEL sets the root logger's level; Django's default configuration leaves its `django`
    logger (the parent of `django.request`) at INFO."""
    body = {"slot_id": world_a.booking.slot.pk, "pesel": PatientFactory().pesel, "channel": "desk"}
    root, django_logger, kept = logging.getLogger(), logging.getLogger("django"), _Kept()
    levels = root.level, django_logger.level
    root.addHandler(kept)
    root.setLevel(logging.WARNING)  # LOG_LEVEL=WARNING
    django_logger.setLevel(logging.INFO)  # Django's DEFAULT_LOGGING
    try:
        response = api_a.post("/api/v1/bookings", body)
        missing = api_a.get("/api/v1/bookings/999999999")
    finally:
        root.removeHandler(kept)
        root.setLevel(levels[0])
        django_logger.setLevel(levels[1])

    assert response.status_code == 409 and missing.status_code == 404
    assert [r.status_code for r in kept.records if r.name == "django.request"] == [404]


@pytest.mark.django_db
def test_a_staff_users_id_is_in_the_log_but_never_a_name(client, django_user_model, caplog):
    staff = django_user_model.objects.create_user("anna.nowak", password="x" * 16)
    client.force_login(staff)

    with caplog.at_level(logging.INFO, logger="django.request"):
        response = client.get("/staff/runs/999999/")  # signed in, without the staff permission

    record = next(r for r in caplog.records if r.name == "django.request")
    formatted = JsonFormatter().format(record)
    assert response.status_code == 403
    assert json.loads(formatted)["user_id"] == staff.pk
    assert "anna.nowak" not in formatted


def test_a_masked_id_in_a_url_that_django_logs_is_not_a_leak_but_anything_else_masked_is():
    """A caller (a fuzzer) may put an 11-digit id that passes the PESEL checksum into a URL; Django's
    request log masks it, and that mask is the defence working. The same mask on our own log is a bug."""
    masked = (
        '{"logger": "django.request", "message": "Not Found: /api/v1/schedules/[PESEL]", '
        '"redacted": ["pesel"]}'
    )
    ours = '{"logger": "cer.booking", "message": "patient [PESEL]", "redacted": ["pesel"]}'
    unmasked = '{"logger": "django.request", "message": "Not Found: /api/v1/schedules/' + VALID_PESEL + '"}'
    assert log_leaks([masked]) == []
    assert log_leaks([ours]) == [ours]
    assert log_leaks([unmasked]) == [unmasked]
