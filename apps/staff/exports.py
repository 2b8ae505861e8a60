"""CSV and XLSX exports of a filtered verdict list, streamed so a large list never sits in memory.
PESELs are masked as on the pages."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from openpyxl import Workbook

from apps.core import pesel
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


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(rows: Iterable[list[Any]], *, filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    lines = (writer.writerow(row) for row in _with_header(rows))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def xlsx_response(rows: Iterable[list[Any]], *, filename: str) -> HttpResponse:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("verdicts")
    for row in _with_header(rows):
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = HttpResponse(
        buffer.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.xlsx"'
    return response


def _with_header(rows: Iterable[list[Any]]) -> Iterator[list[Any]]:
    yield HEADER
    yield from rows
