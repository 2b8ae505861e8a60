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

from django.utils import translation
from django.utils.translation import gettext_noop as _

from apps.core import pesel as pesel_lib
from apps.core.errors import DomainError, localised

WARSAW = ZoneInfo("Europe/Warsaw")
NOT_AN_OBJECT = "__not_an_object__"
FIELDS = ("pesel", "facility_code", "service_code", "visit_at", "visit_id")
# `correction_reason` with a visit id already reported corrects it (a new version); with `withdrawn`
# true it withdraws it.
OPTIONAL_FIELDS = ("emergency", "correction_reason", "withdrawn")
MAX_REASON = 500
# Characters that render as nothing: a reason or justification made only of these is empty.
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"), None)


def visible_text(value: str) -> str:
    """The text without zero-width characters and surrounding whitespace ("" if nothing is visible)."""
    return value.translate(INVISIBLE).strip() if isinstance(value, str) else ""


TRUE = {"1", "true", "t", "yes", "y", "tak"}
FALSE = {"", "0", "false", "f", "no", "n", "nie"}
MAX_VISIT_ID = 64
# Clocks of clinic systems drift: a visit may be stamped this far ahead of CeR's clock.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
MAX_COLUMNS = 32


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
    withdraw: bool = False
    correction_reason: str = ""

    def same_as(self, other: VisitRow) -> bool:
        """Whether two rows report the same content (a re-sent row, not a correction)."""
        return (self.pesel, self.service_id, self.visit_at, self.emergency, self.withdraw) == (
            other.pesel,
            other.service_id,
            other.visit_at,
            other.emergency,
            other.withdraw,
        )


def message_in(message: str, params: dict[str, Any] | None, language: str) -> str:
    """An import message (an English msgid of the catalogue, marked with `_`) in one language."""
    english = language.startswith("en")
    with translation.override("en" if english else "pl"):
        text = translation.gettext(message)
    if params and not english:  # a PESEL's refusal reason is an English phrase: its Polish one here
        params = {k: pesel_lib.REASONS_PL.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
    try:
        return text % (params or {})
    except (KeyError, TypeError, ValueError):
        return text


def unreadable(message: str, **params: Any) -> DomainError:
    """`import_unreadable` with its reason in both languages, from the catalogue."""
    return DomainError(
        "import_unreadable",
        reason=localised(message_in(message, params, "pl"), message_in(message, params, "en")),
    )


@dataclass(frozen=True)
class RowError:
    """A rejected row: `message` is a catalogue msgid with %(name)s `params`. The stored form keeps the
    English text (`reason`, for tools and the API) and the msgid with its params, so a page shows it
    in the reader's language (`row_error_text`)."""

    line: int
    message: str
    column: str = ""
    params: dict[str, Any] | None = None

    @property
    def reason(self) -> str:
        return message_in(self.message, self.params, "en")

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "column": self.column,
            "reason": self.reason,
            "message": self.message,
            "params": self.params or {},
        }


def row_error_text(error: dict[str, Any], language: str) -> str:
    """The reason of a stored row error in one language (errors stored before the catalogue: as stored)."""
    if not error.get("message"):
        return str(error.get("reason", ""))
    return message_in(str(error["message"]), error.get("params") or {}, language)


@dataclass(frozen=True)
class VisitBounds:
    """The visit times a facility may report: not in the future (beyond a few minutes of clock skew),
    not older than the settlement window (`SettlementPolicy.settlement_window_days`)."""

    earliest: dt.datetime
    latest: dt.datetime
    window_days: int

    @classmethod
    def around(cls, now: dt.datetime, *, window_days: int) -> VisitBounds:
        return cls(
            earliest=now - dt.timedelta(days=window_days),
            latest=now + FUTURE_TOLERANCE,
            window_days=window_days,
        )


def rows_read(*, content: bytes, name: str) -> list[RawRow]:
    """Split a file into raw rows. CSV line numbers are physical lines (the header is line 1);
    JSON rows are numbered by their position in the list, from 1."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise unreadable(_("not UTF-8 text")) from None
    if name.lower().endswith(".json") or text.lstrip()[:1] in ("[", "{"):
        return _json_rows(text)
    return _csv_rows(text)


def _json_rows(text: str) -> list[RawRow]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise unreadable(_("invalid JSON at line %(line)s"), line=exc.lineno) from None
    if isinstance(data, dict):
        data = data.get("visits")
    if not isinstance(data, list):
        raise unreadable(_('expected a list of visits or {"visits": [...]}'))
    if not data:
        raise unreadable(_("the file has no visits"))
    # A row that is not an object keeps its value out (`data` None): it is reported as such.
    return [
        RawRow(line=n, data=item if isinstance(item, dict) else {NOT_AN_OBJECT: True})
        for n, item in enumerate(data, 1)
    ]


def _csv_rows(text: str) -> list[RawRow]:
    if not text.strip():
        raise unreadable(_("the file is empty"))
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    # strict: a quote that is never closed is an error, not a field that swallows the rest of the file.
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        fieldnames = reader.fieldnames or []
    except csv.Error as exc:
        raise unreadable(_("CSV error in the header (line 1): %(error)s"), error=str(exc)) from None
    header = [h.strip().lower() for h in fieldnames]
    missing = [f for f in FIELDS if f not in header]
    unknown = [h for h in header if h not in FIELDS and h not in OPTIONAL_FIELDS]
    if missing or unknown:
        # A misspelt column (`emergancy`) would silently lose its values: the file is refused whole.
        names = {
            "missing": ", ".join(missing),
            "unknown": ", ".join(repr(h[:40]) for h in unknown[:MAX_COLUMNS]),
        }
        if missing and unknown:
            raise unreadable(_("missing columns: %(missing)s; unknown columns: %(unknown)s"), **names)
        if missing:
            raise unreadable(_("missing columns: %(missing)s"), **names)
        raise unreadable(_("unknown columns: %(unknown)s"), **names)
    if len(set(header)) != len(header):
        raise unreadable(_("a column appears twice in the header"))
    reader.fieldnames = header
    rows = []
    start = reader.line_num + 1
    try:
        for record in reader:
            values = [*record.values()]
            if any(isinstance(v, str) and ("\n" in v or "\r" in v) for v in values):
                # No visit field spans lines: a quote opened here swallowed the following line(s).
                raise unreadable(_("unclosed quote in the row starting at line %(line)s"), line=start)
            rows.append(RawRow(line=start, data=record))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise unreadable(
            _("CSV error in the row starting at line %(line)s: %(error)s"), line=start, error=str(exc)
        ) from None
    if not rows:
        raise unreadable(_("the file has a header but no visits"))
    return rows


def _visit_at(value: Any) -> dt.datetime:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("missing visit date")
    parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    # A date-time without an offset is Polish wall-clock time, as facilities record it.
    return parsed.replace(tzinfo=WARSAW) if parsed.tzinfo is None else parsed


def row_validate(
    row: RawRow,
    *,
    facilities: dict[str, int],
    services: dict[str, int],
    bounds: VisitBounds | None = None,
) -> VisitRow | RowError:
    if row.data.get(NOT_AN_OBJECT):
        return RowError(row.line, _("the row is not an object with the visit's fields"))
    if None in row.data:
        # csv.DictReader keeps the values beyond the header's columns under the key None.
        return RowError(row.line, _("more values than columns in the header"))
    data = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.data.items() if k}
    unknown = sorted(k for k in data if k not in FIELDS and k not in OPTIONAL_FIELDS)
    if unknown:
        # A misspelt field (`emergancy`) would silently lose its value: the row is refused.
        name = str(unknown[0])[:40]
        return RowError(row.line, _("unknown field %(name)s"), name, {"name": repr(name)})
    value = data.get("pesel")
    number = str(value) if isinstance(value, str | int) else ""
    try:
        pesel_lib.parse(number)
    except pesel_lib.InvalidPesel as exc:
        return RowError(row.line, _("invalid PESEL: %(reason)s"), "pesel", {"reason": exc.reason})
    facility_code = str(data.get("facility_code") or "")
    if facility_code not in facilities:
        return RowError(
            row.line, _("unknown facility code %(code)s"), "facility_code", {"code": repr(facility_code[:20])}
        )
    service_code = str(data.get("service_code") or "")
    if service_code not in services:
        return RowError(
            row.line, _("unknown service code %(code)s"), "service_code", {"code": repr(service_code[:32])}
        )
    try:
        visit_at = _visit_at(data.get("visit_at"))
        # Year 0001 (a clinic system's empty date) moved to UTC falls before year 1: not a time at all.
        visit_at.astimezone(dt.UTC)
    except (ValueError, TypeError, OverflowError):
        return RowError(
            row.line,
            _("bad visit date: expected a real ISO 8601 date and time, e.g. 2026-07-14T09:20"),
            "visit_at",
        )
    if bounds is not None:
        if visit_at > bounds.latest:
            return RowError(row.line, _("visit date in the future"), "visit_at")
        if visit_at < bounds.earliest:
            return RowError(
                row.line,
                _("visit date older than the settlement window (%(days)s days)"),
                "visit_at",
                {"days": bounds.window_days},
            )
    visit_id = data.get("visit_id")
    visit_id = str(visit_id) if isinstance(visit_id, str | int) and not isinstance(visit_id, bool) else ""
    if not visit_id or len(visit_id) > MAX_VISIT_ID:
        return RowError(
            row.line, _("visit_id must be 1-%(max)s characters"), "visit_id", {"max": MAX_VISIT_ID}
        )
    emergency = _flag(data.get("emergency"))
    if emergency is None:
        return RowError(row.line, _("emergency must be true/false or 1/0"), "emergency")
    withdraw = _flag(data.get("withdrawn"))
    if withdraw is None:
        return RowError(row.line, _("withdrawn must be true/false or 1/0"), "withdrawn")
    raw_reason = data.get("correction_reason")
    if raw_reason is not None and not isinstance(raw_reason, str):
        return RowError(row.line, _("correction_reason must be text"), "correction_reason")
    correction_reason = visible_text(raw_reason or "")
    if len(correction_reason) > MAX_REASON:
        return RowError(
            row.line,
            _("correction_reason is longer than %(max)s characters"),
            "correction_reason",
            {"max": MAX_REASON},
        )
    if withdraw and not correction_reason:
        return RowError(row.line, _("a withdrawal needs a correction_reason"), "correction_reason")
    return VisitRow(
        line=row.line,
        pesel=number,
        facility_id=facilities[facility_code],
        service_id=services[service_code],
        visit_at=visit_at,
        emergency=emergency,
        visit_id=visit_id,
        withdraw=withdraw,
        correction_reason=correction_reason,
    )


def _flag(value: Any) -> bool | None:
    """true/false, 1/0, tak/nie ... (absent or empty: false); None if it is none of these."""
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").lower()
    if text in TRUE | FALSE:
        return text in TRUE
    return None
