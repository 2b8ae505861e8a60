"""Writes of open data: the queue statistics (beat job) and the de-identified research extract."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from . import selectors
from .models import QueueStat, ResearchExtract
from .suppression import Table, suppress

WARSAW = ZoneInfo("Europe/Warsaw")
AVERAGE_WINDOW_DAYS = 90


def _month_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The calendar month before `day` (the NFZ statistics are "as at the end of the month")."""
    first_this = day.replace(day=1)
    first_prev = (first_this - dt.timedelta(days=1)).replace(day=1)
    return (
        dt.datetime.combine(first_prev, dt.time(), tzinfo=WARSAW),
        dt.datetime.combine(first_this, dt.time(), tzinfo=WARSAW),
    )


def queue_stats_compute(*, now: dt.datetime | None = None) -> int:
    """Recompute every queue (facility x contracted service x case) from the schedule and the
    registrations. Set-based reads, then one transaction that replaces the published rows, so a
    reader sees either the old set or the new one. Returns the number of rows."""
    now = now or timezone.now()
    today = now.astimezone(WARSAW).date()
    keys = selectors.queue_keys(on=today)
    first_free = selectors.first_free_by_queue(now=now)
    awaiting = selectors.awaiting_by_queue(now=now)
    averages = selectors.average_wait_by_queue(since=now - dt.timedelta(days=AVERAGE_WINDOW_DAYS), until=now)
    month_start, month_end = _month_bounds(today)
    removed = selectors.removed_by_queue(since=month_start, until=month_end)
    rows = []
    for facility_id, service_id in keys:
        first = first_free.get((facility_id, service_id))
        for case in (QueueStat.Case.STABLE, QueueStat.Case.URGENT):
            key = (facility_id, service_id, int(case))
            average = averages.get(key)
            rows.append(
                QueueStat(
                    facility_id=facility_id,
                    service_id=service_id,
                    case=case,
                    first_free_date=first.astimezone(WARSAW).date() if first else None,
                    awaiting=awaiting.get(key, 0),
                    removed=removed.get(key, 0),
                    average_period_days=math.ceil(average) if average is not None else None,
                    stats_month=month_start.strftime("%Y-%m"),
                    computed_at=now,
                )
            )
    with transaction.atomic():
        QueueStat.objects.all().delete()
        QueueStat.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


# --- research extract ------------------------------------------------------------------------------

K_DEFAULT = 10
ALL = "ALL"
COLUMNS = (
    "service",
    "month",
    "voivodeship",
    "age_band",
    "sex",
    "patients",
    "appointments",
    "mean_wait_days",
    "no_show_rate",
    "cancellation_rate",
    "suppressed",
)


def _published(row: dict, *, suppressed: bool) -> dict:
    out = {c: row.get(c, ALL) for c in ("service", "month", "voivodeship", "age_band", "sex")}
    if suppressed:
        out.update(
            patients=None,
            appointments=None,
            mean_wait_days=None,
            no_show_rate=None,
            cancellation_rate=None,
            suppressed=True,
        )
        return out
    n = row["appointments"]
    out.update(
        patients=row["patients"],
        appointments=n,
        mean_wait_days=round(row["wait_days"], 1) if row["wait_days"] is not None else None,
        no_show_rate=round(row["no_show"] / n, 3),
        cancellation_rate=round(row["cancelled"] / n, 3),
        suppressed=False,
    )
    return out


def extract_rows(*, period_from: dt.date, period_to: dt.date, k: int = K_DEFAULT) -> list[dict]:
    """The published rows: for every service x month, a table of voivodeship (rows) by age band x
    sex (columns) with its row totals, column totals and grand total. A cell or total covering
    fewer than k patients is suppressed (primary); then `suppression.suppress` adds complementary
    suppressions until no suppressed value can be derived from the published totals."""
    span = {"period_from": period_from, "period_to": period_to}
    cells = selectors.extract_counts(**span, by=("service", "month", "voivodeship", "age_band", "sex"))
    row_totals = selectors.extract_counts(**span, by=("service", "month", "voivodeship"))
    col_totals = selectors.extract_counts(**span, by=("service", "month", "age_band", "sex"))
    grand = selectors.extract_counts(**span, by=("service", "month"))
    tables: dict[tuple[str, str], Table] = {}
    for g in grand:
        tables[(g["service"], g["month"])] = Table(k=k, grand=g)
    for c in cells:
        tables[(c["service"], c["month"])].cells[(c["voivodeship"], (c["age_band"], c["sex"]))] = c
    for r in row_totals:
        tables[(r["service"], r["month"])].row_totals[r["voivodeship"]] = r
    for c in col_totals:
        tables[(c["service"], c["month"])].col_totals[(c["age_band"], c["sex"])] = c
    out: list[dict] = []
    for key in sorted(tables):
        table = tables[key]
        hidden = suppress(table)
        for (row, col), cell in sorted(table.cells.items()):
            out.append(_published(cell, suppressed=("cell", row, col) in hidden))
        for row, total in sorted(table.row_totals.items()):
            out.append(_published(total, suppressed=("row", row) in hidden))
        for col, total in sorted(table.col_totals.items()):
            out.append(_published(total, suppressed=("col", col) in hidden))
        out.append(_published(table.grand, suppressed=("grand",) in hidden))
    return out


def _csv(rows: list[dict]) -> bytes:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if row[c] is None else row[c]) for c in COLUMNS})
    return buffer.getvalue().encode("utf-8")


def _parquet(rows: list[dict]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("service", pa.string()),
            ("month", pa.string()),
            ("voivodeship", pa.string()),
            ("age_band", pa.string()),
            ("sex", pa.string()),
            ("patients", pa.int64()),
            ("appointments", pa.int64()),
            ("mean_wait_days", pa.float64()),
            ("no_show_rate", pa.float64()),
            ("cancellation_rate", pa.float64()),
            ("suppressed", pa.bool_()),
        ]
    )
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer)
    return buffer.getvalue()


def research_extract_create(
    *, period_from: dt.date, period_to: dt.date, k: int = K_DEFAULT, created_by: str = ""
) -> ResearchExtract:
    rows = extract_rows(period_from=period_from, period_to=period_to, k=k)
    return ResearchExtract.objects.create(
        period_from=period_from,
        period_to=period_to,
        k=k,
        created_by=created_by[:150],
        rows=len(rows),
        suppressed=sum(1 for r in rows if r["suppressed"]),
        csv=_csv(rows),
        parquet=_parquet(rows),
    )
