"""Reading reported-visit files (CSV and JSON) into validated rows, each with its line number.

Parsing is per row by nature (every row is checked on its own and a bad row must not stop the good
ones); the database work that follows is set-based (`services.visits_record`). Reasons never quote
the PESEL: they are stored and shown to staff, and a PESEL must not end up in logs or pages.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from apps.core import pesel as pesel_lib
from apps.core.errors import DomainError

WARSAW = ZoneInfo("Europe/Warsaw")
FIELDS = ("pesel", "facility_code", "service_code", "visit_at", "visit_id")
OPTIONAL_FIELDS = ("emergency",)
TRUE = {"1", "true", "t", "yes", "y", "tak"}
FALSE = {"", "0", "false", "f", "no", "n", "nie"}
MAX_VISIT_ID = 64


@dataclass(frozen=True)
class RawRow:
    line: int
    data: dict[str, Any]


@dataclass(frozen=True)
class VisitRow:
    line: int
    pesel: str
    facility_id: int
    service_id: int
    visit_at: dt.datetime
    emergency: bool
    visit_id: str


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


def rows_read(*, content: bytes, name: str) -> list[RawRow]:
    """Split a file into raw rows. CSV line numbers are physical lines (the header is line 1);
    JSON rows are numbered by their position in the list, from 1."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DomainError("import_unreadable", reason="not UTF-8 text") from None
    if name.lower().endswith(".json") or text.lstrip()[:1] in ("[", "{"):
        return _json_rows(text)
    return _csv_rows(text)


def _json_rows(text: str) -> list[RawRow]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DomainError("import_unreadable", reason=f"invalid JSON at line {exc.lineno}") from None
    if isinstance(data, dict):
        data = data.get("visits")
    if not isinstance(data, list):
        raise DomainError("import_unreadable", reason='expected a list of visits or {"visits": [...]}')
    return [RawRow(line=n, data=item if isinstance(item, dict) else {}) for n, item in enumerate(data, 1)]


def _csv_rows(text: str) -> list[RawRow]:
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [f for f in FIELDS if f not in header]
    if missing:
        raise DomainError("import_unreadable", reason="missing columns: " + ", ".join(missing))
    reader.fieldnames = header
    rows = []
    try:
        for record in reader:
            rows.append(RawRow(line=reader.line_num, data=record))
    except csv.Error as exc:
        raise DomainError("import_unreadable", reason=f"CSV error at line {reader.line_num}: {exc}") from None
    return rows


def _visit_at(value: Any) -> dt.datetime:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("missing visit date")
    parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    # A date-time without an offset is Polish wall-clock time, as facilities record it.
    return parsed.replace(tzinfo=WARSAW) if parsed.tzinfo is None else parsed


def row_validate(row: RawRow, *, facilities: dict[str, int], services: dict[str, int]) -> VisitRow | RowError:
    data = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.data.items() if k}
    value = data.get("pesel")
    number = str(value) if isinstance(value, str | int) else ""
    try:
        pesel_lib.parse(number)
    except pesel_lib.InvalidPesel as exc:
        return RowError(row.line, f"invalid PESEL: {exc.reason}")
    facility_code = str(data.get("facility_code") or "")
    if facility_code not in facilities:
        return RowError(row.line, f"unknown facility code {facility_code[:20]!r}")
    service_code = str(data.get("service_code") or "")
    if service_code not in services:
        return RowError(row.line, f"unknown service code {service_code[:32]!r}")
    try:
        visit_at = _visit_at(data.get("visit_at"))
    except (ValueError, TypeError):
        return RowError(row.line, "bad visit date: expected ISO 8601, e.g. 2026-07-14T09:20")
    visit_id = data.get("visit_id")
    visit_id = str(visit_id) if isinstance(visit_id, str | int) else ""
    if not visit_id or len(visit_id) > MAX_VISIT_ID:
        return RowError(row.line, f"visit_id must be 1-{MAX_VISIT_ID} characters")
    flag = data.get("emergency")
    if isinstance(flag, bool):
        emergency = flag
    elif str(flag if flag is not None else "").lower() in TRUE | FALSE:
        emergency = str(flag if flag is not None else "").lower() in TRUE
    else:
        return RowError(row.line, "emergency must be true/false or 1/0")
    return VisitRow(
        line=row.line,
        pesel=number,
        facility_id=facilities[facility_code],
        service_id=services[service_code],
        visit_at=visit_at,
        emergency=emergency,
        visit_id=visit_id,
    )
