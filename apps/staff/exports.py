"""CSV and XLSX exports of the staff lists (verdicts, schedule compliance), streamed so a large list
never sits in memory. PESELs are masked as on the pages."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils import timezone
from openpyxl import Workbook

from apps.core import pesel
from apps.notifications.models import ComplianceCheck
from apps.reconciliation.models import Verdict

HEADER = [
    "facility_code",
    "facility_visit_id",
    "service_code",
    "visit_at",
    "patient_pesel",
    "eligible",
    "reason",
    "final_eligible",
    "overridden",
    "matched_appointment_id",
    "rule_version",
]


def verdict_rows(verdicts: QuerySet[Verdict]) -> Iterator[list[Any]]:
    for v in verdicts.iterator(chunk_size=2000):
        yield [
            v.facility.nfz_code,
            v.visit.facility_visit_id,
            v.service.code,
            timezone.localtime(v.visit_at).strftime("%Y-%m-%d %H:%M"),
            pesel.mask(v.visit.patient_pesel),
            "yes" if v.eligible else "no",
            v.reason,
            "yes" if v.final_eligible else "no",
            "yes" if v.override_id else "no",
            v.matched_appointment_id or "",
            v.rule_version,
        ]


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
    rows: Iterable[list[Any]], *, filename: str, header: list[str] = HEADER
) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    lines = (writer.writerow(row) for row in _with_header(rows, header))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def xlsx_response(
    rows: Iterable[list[Any]], *, filename: str, header: list[str] = HEADER, sheet_name: str = "verdicts"
) -> HttpResponse:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_name)
    for row in _with_header(rows, header):
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
