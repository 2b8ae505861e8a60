"""Structured logs: one JSON object per line, with the request id and the actor where known.

Personal data never belongs in a log line (DESIGN.md section 7): code logs ids, not a PESEL, name,
phone number or e-mail address. As a second line of defence the formatter masks PESEL-shaped
numbers (11 digits with a valid PESEL checksum), e-mail addresses and phone numbers in the message
and the traceback, and says so in `redacted`; the test run's log is scanned for them
(tests/operations/test_logs.py), so a leak is a failing build, not a silent mask.

Expected refusals are not warnings: a lost booking race answers 409 and is logged at INFO
(`ExpectedRefusalFilter`), so a busy morning does not flood the warnings operators watch.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from .context import current_actor, current_request_id

# Eleven digits standing alone (not part of a longer number or of a hex id such as a request id).
PESEL_SHAPED = re.compile(r"(?<![0-9A-Za-z])\d{11}(?![0-9A-Za-z])")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Polish numbers as written on forms and by SMS gateways: +48 / 0048 and nine digits, spaced or not.
PHONE = re.compile(r"(?<![\d+])(?:\+|00)48[ -]?\d{3}[ -]?\d{3}[ -]?\d{3}(?!\d)")
_WEIGHTS = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)

# Status codes that are an answer, not a fault: the caller lost a race or repeated itself.
EXPECTED_REFUSALS = frozenset({409})


def is_pesel_shaped(digits: str) -> bool:
    """11 digits whose last one is the PESEL checksum of the first ten (a date check would let
    through fewer, but a leak is a leak whatever the date digits say)."""
    if len(digits) != 11 or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits, _WEIGHTS, strict=False))
    return (10 - total % 10) % 10 == int(digits[10])


def pesel_shaped_numbers(text: str) -> list[str]:
    return [m for m in PESEL_SHAPED.findall(text) if is_pesel_shaped(m)]


def redact(text: str) -> tuple[str, list[str]]:
    """The text with personal data masked, and the kinds that were found."""
    found: list[str] = []

    def pesel(match: re.Match[str]) -> str:
        if is_pesel_shaped(match.group()):
            found.append("pesel")
            return "[PESEL]"
        return match.group()

    text = PESEL_SHAPED.sub(pesel, text)
    text, emails = EMAIL.subn("[e-mail]", text)
    text, phones = PHONE.subn("[phone]", text)
    found += ["email"] * bool(emails) + ["phone"] * bool(phones)
    return text, sorted(set(found))


class ContextFilter(logging.Filter):
    """Adds the request id (web request or Celery task) and the actor to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        # `django.request` logs a 4xx/5xx after the middleware has returned: its record carries the request.
        request = getattr(record, "request", None)
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id() or getattr(request, "request_id", "")
        for key, value in current_actor(request).items():
            setattr(record, key, value)
        return True


class ExpectedRefusalFilter(logging.Filter):
    """`django.request` logs every 4xx as a warning; a 409 (a lost race, a repeated request) is an
    expected answer and goes out at INFO instead, and not at all where INFO is not logged
    (LOG_LEVEL=WARNING): the logger's own level check ran before the record was lowered. LOG_LEVEL is
    the root logger's level; Django's default configuration gives its own `django` logger INFO, which
    `django.request` inherits, so both are asked (with only the second, every lost race of a storm was
    still written at LOG_LEVEL=WARNING)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) in EXPECTED_REFUSALS and record.levelno == logging.WARNING:
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(
                logging.INFO
            ) and logging.getLogger().isEnabledFor(logging.INFO)
        return True


_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request"}
_EXTRA_KEYS = ("request_id", "facility_id", "api_client_id", "user_id", "task_id", "task_name")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, context, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        message, redacted = redact(record.getMessage())
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for key in _EXTRA_KEYS:
            value = getattr(record, key, None)
            if value not in (None, ""):
                entry[key] = value
        status = getattr(record, "status_code", None)
        if isinstance(status, int):
            entry["status_code"] = status
        for key, value in vars(record).items():  # `extra=` fields given by the caller
            if key not in _RESERVED and key not in entry and not key.startswith("_"):
                if isinstance(value, int | float | bool | type(None)):
                    entry[key] = value
                else:
                    entry[key], found = redact(str(value))
                    redacted = sorted(set(redacted) | set(found))
        if record.exc_info:
            exc_text, exc_redacted = redact(self.formatException(record.exc_info))
            entry["exc"] = exc_text
            redacted = sorted(set(redacted) | set(exc_redacted))
        if redacted:
            entry["redacted"] = redacted
        return json.dumps(entry, ensure_ascii=False, default=str)


# Fields the formatter writes itself from values that are never personal data.
_OWN_FIELDS = ("ts", "request_id")


def log_leaks(lines: Iterable[str]) -> list[str]:
    """Lines of a JSON log that hold personal data: a PESEL-shaped number in any field but the time
    and the request id, or a mask the formatter had to apply (code that logs personal data is a bug
    even when it was caught). A line that is not JSON is scanned whole."""
    leaks = []
    for line in lines:
        try:
            entry = json.loads(line)
            fields = (
                [str(v) for k, v in entry.items() if k not in _OWN_FIELDS]
                if isinstance(entry, dict)
                else [line]
            )
        except ValueError:
            entry, fields = None, [line]
        # A mask on Django's own request log ("Not Found: <path>") covers what a caller typed into a
        # URL (a fuzzer's 11-digit id can pass the PESEL checksum): the mask is the defence working.
        # A mask anywhere else means our code tried to log personal data, which is a bug.
        masked_by_us = (
            isinstance(entry, dict) and "redacted" in entry and entry.get("logger") != "django.request"
        )
        if any(pesel_shaped_numbers(text) for text in fields) or masked_by_us:
            leaks.append(line.rstrip("\n"))
    return leaks
