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
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from apps.core import pesel
from apps.notifications.models import ComplianceCheck
from apps.reconciliation.models import Verdict, reason_text

# The settlement export format (docs/reconciliation.md, "Settlement export"): one row per verdict.
# (key, Polish label, English label); the keys are the header of the default (tools) format.
COLUMNS: list[tuple[str, str, str]] = [
    ("facility_code", "kod placówki", "facility code"),
    ("facility_visit_id", "id wizyty w placówce", "facility visit id"),
    ("service_code", "kod usługi", "service code"),
    ("visit_at", "data wizyty", "visit date"),
    ("patient_pesel", "PESEL (maskowany)", "PESEL (masked)"),
    ("eligible", "do zapłaty wg reguł", "eligible by the rules"),
    ("reason", "kod powodu", "reason code"),
    ("final_eligible", "do zapłaty", "payable"),
    ("overridden", "zmieniony", "overridden"),
    ("matched_appointment_id", "id rejestracji", "appointment id"),
    ("rule_version", "wersja reguł", "rule version"),
    ("reason_text", "powód", "reason"),
    ("run_id", "przebieg", "run"),
    ("voivodeship", "województwo", "voivodeship"),
    ("facility_name", "placówka", "facility"),
    ("visit_version", "wersja wizyty", "visit version"),
    ("emergency", "przypadek nagły", "emergency"),
    ("override_justification", "uzasadnienie zmiany", "override justification"),
    ("override_by", "zmienił", "overridden by"),
    ("override_at", "data zmiany", "overridden at"),
    ("tariff_pln", "taryfa (PLN)", "tariff (PLN)"),
    ("payable_pln", "do zapłaty (PLN)", "payable (PLN)"),
]
HEADER = [key for key, _, _ in COLUMNS]
BOOLEAN_COLUMNS = {"eligible", "final_eligible", "overridden", "emergency"}
YES_NO = {"pl": ("tak", "nie"), "en": ("yes", "no")}


def header_for(language: str | None) -> list[str]:
    """Column labels in one language ("pl", "en"), or the stable keys (None)."""
    if language == "pl":
        return [pl for _, pl, _ in COLUMNS]
    if language == "en":
        return [en for _, _, en in COLUMNS]
    return list(HEADER)


def verdict_values(verdicts: QuerySet[Verdict], *, language: str = "pl") -> Iterator[list[Any]]:
    """Typed values (datetime in Warsaw time, bool, int, Decimal, None) in `COLUMNS` order."""
    qs = verdicts.select_related(
        "visit",
        "facility",
        "facility__voivodeship",
        "service",
        "service__tariff",
        "override",
        "override__user",
    )
    for v in qs.iterator(chunk_size=2000):
        tariff = getattr(getattr(v.service, "tariff", None), "amount", None)
        override = v.override
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
            v.facility.voivodeship.name,
            v.facility.name,
            v.visit_version,
            v.visit.emergency,
            override.justification if override else None,
            override.user.get_username() if override else None,
            timezone.localtime(override.at) if override else None,
            tariff,
            (tariff if v.final_eligible else Decimal("0.00")) if tariff is not None else None,
        ]


def _as_text(value: Any, column: str, *, language: str, excel: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        yes, no = YES_NO["pl" if language == "pl" else "en"]
        return yes if value else no
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M") if excel else value.isoformat()
    if isinstance(value, Decimal) and excel:
        return f"{value:.2f}".replace(".", ",")  # Polish Excel reads a decimal comma
    return str(value)


def verdict_export(
    verdicts: QuerySet[Verdict], *, kind: str, filename: str, language: str | None, excel_csv: bool
) -> HttpResponseBase:
    """The settlement export of a verdict list. `language` "pl"/"en" labels the columns and words
    the reason texts (None: the stable keys of the tools format, Polish reason texts, yes/no);
    `excel_csv`: a CSV for Polish Excel (byte-order mark, semicolons, decimal comma) instead of plain
    UTF-8 with commas and ISO 8601 times for tools. XLSX cells are typed (dates, numbers, booleans)."""
    words = language or "en"
    rows = verdict_values(verdicts, language=language or "pl")
    header = header_for(language)
    if kind == "xlsx":
        naive = (
            [c.replace(tzinfo=None) if isinstance(c, dt.datetime) else c for c in row]  # Excel has no zones
            for row in rows
        )
        return xlsx_response(naive, filename=filename, header=header, date_columns=_date_columns())
    text_rows = (
        [_as_text(c, key, language=words, excel=excel_csv) for c, key in zip(row, HEADER, strict=True)]
        for row in rows
    )
    return csv_response(text_rows, filename=filename, header=header, excel=excel_csv)


def _date_columns() -> list[int]:
    return [i for i, key in enumerate(HEADER) if key in ("visit_at", "override_at")]


def verdict_rows(verdicts: QuerySet[Verdict]) -> Iterator[list[Any]]:
    """The tools format as text (kept for callers of the former export)."""
    for row in verdict_values(verdicts):
        yield [_as_text(c, key, language="en", excel=False) for c, key in zip(row, HEADER, strict=True)]


COMPLIANCE_HEADER = [
    "check_day",
    "facility_code",
    "facility_name",
    "voivodeship",
    "service_code",
    "service_name",
    "published_until",
    "published_days",
    "required_days",
    "days_short",
    "compliant",
]


def compliance_rows(checks: QuerySet[ComplianceCheck]) -> Iterator[list[Any]]:
    """Rows of `staff.selectors.compliance_list` (annotated with `days_short`)."""
    for c in checks.iterator(chunk_size=2000):
        yield [
            c.day.isoformat(),
            c.facility.nfz_code,
            c.facility.name,
            c.facility.voivodeship.name,
            c.service.code,
            c.service.name_pl,
            c.published_until.isoformat() if c.published_until else "",
            c.published_days,
            c.required_days,
            c.days_short,  # type: ignore[attr-defined]
            "yes" if c.compliant else "no",
        ]


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


def xlsx_response(
    rows: Iterable[list[Any]],
    *,
    filename: str,
    header: list[str] = HEADER,
    sheet_name: str = "verdicts",
    date_columns: list[int] | None = None,
) -> HttpResponse:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_name)
    formats = set(date_columns or [])
    for n, row in enumerate(_with_header(rows, header)):
        if n and formats:
            cells: list[Any] = []
            for i, value in enumerate(row):
                if i in formats and value is not None:
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.number_format = "yyyy-mm-dd hh:mm"
                    cells.append(cell)
                else:
                    cells.append(value)
            sheet.append(cells)
        else:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = HttpResponse(
        buffer.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.xlsx"'
    return response


def table_response(
    kind: str,
    rows: Iterable[list[Any]],
    *,
    filename: str,
    header: list[str] = HEADER,
    sheet_name: str = "verdicts",
) -> HttpResponseBase:
    """The export a staff page offers: `kind` is "csv" or "xlsx"."""
    if kind == "csv":
        return csv_response(rows, filename=filename, header=header)
    return xlsx_response(rows, filename=filename, header=header, sheet_name=sheet_name)


def _with_header(rows: Iterable[list[Any]], header: list[str]) -> Iterator[list[Any]]:
    yield header
    yield from rows
