"""CSV and XLSX exports of the staff lists (verdicts, schedule compliance), streamed so a large list
never sits in memory. PESELs are masked as on the pages."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from apps.core import pesel
from apps.notifications.models import ComplianceCheck
from apps.reconciliation.models import Verdict, reason_text

# The settlement export format (docs/reconciliation.md, "Settlement export"): one row per verdict.
# (key, label): the keys are the header of the tools format; the labels come from the message
# catalogue, so a file is labelled in one language (Polish or English), never both.
COLUMNS: list[tuple[str, Any]] = [
    ("facility_code", _("facility code")),
    ("facility_visit_id", _("facility visit id")),
    ("service_code", _("service code")),
    ("visit_at", _("visit date")),
    ("patient_pesel", _("PESEL (masked)")),
    ("eligible", _("eligible by the rules")),
    ("reason", _("reason code")),
    ("final_eligible", _("payable")),
    ("overridden", _("overridden")),
    ("matched_appointment_id", _("appointment id")),
    ("rule_version", _("rule version")),
    ("reason_text", _("reason")),
    ("run_id", _("run")),
    ("voivodeship", _("voivodeship")),
    ("facility_name", _("facility")),
    ("visit_version", _("visit version")),
    ("emergency", _("emergency")),
    ("override_justification", _("override justification")),
    ("override_by", _("overridden by")),
    ("override_at", _("overridden at")),
    ("tariff_pln", _("tariff (PLN)")),
    ("payable_pln", _("payable (PLN)")),
]
HEADER = [key for key, _label in COLUMNS]


def _labels(columns: list[tuple[str, Any]], language: str | None) -> list[str]:
    """Column labels in one language ("pl", "en"), or the stable keys (None)."""
    if language is None:
        return [key for key, _label in columns]
    with translation.override(language):
        return [str(label) for _key, label in columns]


def header_for(language: str | None) -> list[str]:
    """The settlement export's column labels in one language ("pl", "en"), or the stable keys (None)."""
    return _labels(COLUMNS, language)


def verdict_values(verdicts: QuerySet[Verdict], *, language: str = "pl") -> Iterator[list[Any]]:
    """Typed values (datetime in Warsaw time, bool, int, Decimal, None) in `COLUMNS` order; texts (the
    reason, the voivodeship) in `language`."""
    qs = verdicts.select_related(
        "visit",
        "facility",
        "facility__voivodeship",
        "service",
        "service__tariff",
        "override",
        "override__user",
    )
    english = language == "en"
    for v in qs.iterator(chunk_size=2000):
        tariff = getattr(getattr(v.service, "tariff", None), "amount", None)
        override = v.override
        voivodeship = v.facility.voivodeship
        yield [
            v.facility.nfz_code,
            v.visit.facility_visit_id,
            v.service.code,
            timezone.localtime(v.visit_at),
            pesel.mask(v.visit.patient_pesel),
            v.eligible,
            v.reason,
            v.final_eligible,
            v.override_id is not None,
            v.matched_appointment_id,
            v.rule_version,
            reason_text(v.reason, language),
            v.run_id,
            (voivodeship.name_en or voivodeship.name) if english else voivodeship.name,
            v.facility.name,
            v.visit_version,
            v.visit.emergency,
            override.justification if override else None,
            override.user.get_username() if override else None,
            timezone.localtime(override.at) if override else None,
            tariff,
            (tariff if v.final_eligible else Decimal("0.00")) if tariff is not None else None,
        ]


def _as_text(value: Any, *, language: str | None, excel: bool) -> str:
    """A typed value as CSV text. Yes/no in the file's language ("yes"/"no" in the tools format)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        if language is None:
            return "yes" if value else "no"
        with translation.override(language):
            return str(_("yes") if value else _("no"))
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M") if excel else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal) and excel:
        return f"{value:.2f}".replace(".", ",")  # Polish Excel reads a decimal comma
    return str(value)


def table_export(
    rows: Iterable[list[Any]],
    *,
    kind: str,
    filename: str,
    header: list[str],
    language: str | None,
    excel_csv: bool,
    sheet_name: str,
) -> HttpResponseBase:
    """Typed rows as XLSX (dates as dates, numbers as numbers, yes/no as booleans) or CSV (text in
    the file's language; `excel_csv`: for Polish Excel)."""
    if kind == "xlsx":
        return xlsx_response(rows, filename=filename, header=header, sheet_name=sheet_name)
    text_rows = ([_as_text(c, language=language, excel=excel_csv) for c in row] for row in rows)
    return csv_response(text_rows, filename=filename, header=header, excel=excel_csv)


def verdict_export(
    verdicts: QuerySet[Verdict], *, kind: str, filename: str, language: str | None, excel_csv: bool
) -> HttpResponseBase:
    """The settlement export of a verdict list. `language` "pl"/"en": the whole file in that language
    (labels, reason texts, yes/no); None: the tools format (the stable keys as the header, yes/no, ISO
    8601 times) with reason texts in the page's language. `excel_csv`: a CSV for Polish Excel
    (byte-order mark, semicolons, decimal comma) instead of plain UTF-8 with commas for tools."""
    texts = language or ("en" if (translation.get_language() or "pl").startswith("en") else "pl")
    return table_export(
        verdict_values(verdicts, language=texts),
        kind=kind,
        filename=filename,
        header=header_for(language),
        language=language,
        excel_csv=excel_csv,
        sheet_name="verdicts",
    )


# The schedule-compliance export: (key, label) as the settlement export's columns.
COMPLIANCE_COLUMNS: list[tuple[str, Any]] = [
    ("check_day", _("check day")),
    ("facility_code", _("facility code")),
    ("facility_name", _("facility")),
    ("voivodeship", _("voivodeship")),
    ("service_code", _("service code")),
    ("service_name", _("service")),
    ("published_until", _("published until")),
    ("published_days", _("horizon (days)")),
    ("required_days", _("required (days)")),
    ("days_short", _("days short")),
    ("compliant", _("compliant")),
]
COMPLIANCE_HEADER = [key for key, _label in COMPLIANCE_COLUMNS]


def compliance_values(checks: QuerySet[ComplianceCheck], *, language: str = "pl") -> Iterator[list[Any]]:
    """Typed rows (dates, ints, bool) of `staff.selectors.compliance_list` (annotated with
    `days_short`); names in `language`."""
    english = language == "en"
    for c in checks.iterator(chunk_size=2000):
        voivodeship = c.facility.voivodeship
        yield [
            c.day,
            c.facility.nfz_code,
            c.facility.name,
            (voivodeship.name_en or voivodeship.name) if english else voivodeship.name,
            c.service.code,
            (c.service.name_en or c.service.name_pl) if english else c.service.name_pl,
            c.published_until,
            c.published_days,
            c.required_days,
            c.days_short,  # type: ignore[attr-defined]
            c.compliant,
        ]


def compliance_export(
    checks: QuerySet[ComplianceCheck], *, kind: str, filename: str, language: str | None, excel_csv: bool
) -> HttpResponseBase:
    """The compliance list as XLSX (typed cells) or CSV, in one language as `verdict_export`."""
    texts = language or ("en" if (translation.get_language() or "pl").startswith("en") else "pl")
    return table_export(
        compliance_values(checks, language=texts),
        kind=kind,
        filename=filename,
        header=_labels(COMPLIANCE_COLUMNS, language),
        language=language,
        excel_csv=excel_csv,
        sheet_name="compliance",
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(
    rows: Iterable[list[Any]], *, filename: str, header: list[str] = HEADER, excel: bool = False
) -> StreamingHttpResponse:
    """Plain UTF-8 with commas (tools), or for Polish Excel: a byte-order mark and semicolons (without
    the mark Excel reads the file as Windows-1250 and garbles Polish letters)."""
    writer = csv.writer(_Echo(), delimiter=";" if excel else ",")
    lines: Iterator[Any] = (writer.writerow(row) for row in _with_header(rows, header))
    if excel:
        lines = itertools.chain(["\ufeff"], lines)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"


def _xlsx_cell(sheet: Any, value: Any) -> Any:
    """A typed cell: a date or date-time (Warsaw wall-clock time; Excel has no zones) with its number
    format; booleans, numbers and text as they are (openpyxl types them)."""
    if isinstance(value, dt.datetime):
        cell = WriteOnlyCell(sheet, value=value.replace(tzinfo=None))
        cell.number_format = DATETIME_FORMAT
        return cell
    if isinstance(value, dt.date):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = DATE_FORMAT
        return cell
    return value


def xlsx_response(
    rows: Iterable[list[Any]], *, filename: str, header: list[str], sheet_name: str
) -> HttpResponse:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_name)
    sheet.append(header)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = HttpResponse(
        buffer.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.xlsx"'
    return response


def _with_header(rows: Iterable[list[Any]], header: list[str]) -> Iterator[list[Any]]:
    yield header
    yield from rows
