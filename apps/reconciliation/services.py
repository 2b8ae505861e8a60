"""Writes of the reconciliation context: importing reported visits, running reconciliations, overrides."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_noop as _

from apps.catalog.models import Facility, Service
from apps.core.errors import DomainError

from . import engine
from .imports import WARSAW, RawRow, RowError, VisitBounds, VisitRow, row_validate, rows_read, visible_text
from .models import (
    ImportBatch,
    Override,
    ReconciliationRun,
    Verdict,
    VisitKey,
    settlement_policy,
)
from .selectors import visit_verdicts

logger = logging.getLogger(__name__)

# pg_advisory_lock(int, int): the first key names this use, the second is a hash of the scope.
LOCK_CLASS = 7305
MAX_ERRORS_KEPT = 1000
# Visits per chunk transaction. Larger chunks amortise the per-chunk planning, commit and progress
# update; a crash loses at most one chunk (200,000 visits: seconds of work).
DEFAULT_CHUNK = 200_000
# A run with this many verdicts refreshes the verdict table's statistics before its final passes.
ANALYZE_FROM = 100_000


# --- Import ---------------------------------------------------------------------------------------


def _file_read(file: Any) -> tuple[bytes, str]:
    if isinstance(file, str | Path):
        path = Path(file)
        return path.read_bytes(), path.name
    if isinstance(file, bytes):
        return file, "visits"
    content = file.read()
    if isinstance(content, str):
        content = content.encode("utf-8")
    return content, Path(getattr(file, "name", "") or "visits").name


def visits_import(*, file: str | Path | bytes | IO[Any], source: str, uploaded_by: Any = None) -> ImportBatch:
    """Import a CSV or JSON file of reported visits.

    Importing a file whose content was imported before returns that earlier batch and changes
    nothing (`batch.already_imported` is True). A visit id already reported by the facility is kept
    as it was (counted as a duplicate). Malformed rows are listed in `batch.errors` with their line
    number and reason; the valid rows are imported all the same.
    """
    content, name = _file_read(file)
    digest = hashlib.sha256(content).hexdigest()
    if source != ImportBatch.Source.API:
        existing = ImportBatch.objects.filter(sha256=digest).exclude(source=ImportBatch.Source.API).first()
        if existing is not None:
            existing.already_imported = True  # type: ignore[attr-defined]
            return existing
    raw = rows_read(content=content, name=name)
    try:
        with transaction.atomic():
            batch = ImportBatch.objects.create(
                file_name=name[:255], sha256=digest, source=source, uploaded_by=uploaded_by
            )
            visits_record(batch=batch, rows=raw)
    except IntegrityError:
        # The same file imported at the same moment by someone else: theirs stands.
        batch = ImportBatch.objects.get(sha256=digest, source=source)
        batch.already_imported = True  # type: ignore[attr-defined]
        return batch
    batch.already_imported = False  # type: ignore[attr-defined]
    return batch


def visits_record(*, batch: ImportBatch, rows: list[RawRow], facility: Facility | None = None) -> ImportBatch:
    """Validate raw rows and insert the valid ones in one statement; `facility`, when given (a
    facility's API client), refuses rows for any other facility."""
    facility_codes = {str(r.data.get("facility_code") or "") for r in rows}
    service_codes = {str(r.data.get("service_code") or "") for r in rows}
    facilities_qs = Facility.objects.filter(nfz_code__in=facility_codes)
    if facility is not None:
        facilities_qs = facilities_qs.filter(pk=facility.pk)
    facilities = dict(facilities_qs.values_list("nfz_code", "id"))
    services = dict(Service.objects.filter(code__in=service_codes).values_list("code", "id"))
    bounds = VisitBounds.around(timezone.now(), window_days=settlement_policy().settlement_window_days)
    valid: list[VisitRow] = []
    problems: list[RowError] = []
    for row in rows:
        checked = row_validate(row, facilities=facilities, services=services, bounds=bounds)
        (valid if isinstance(checked, VisitRow) else problems).append(checked)  # type: ignore[arg-type]
    new, corrections, duplicates, refused = _visits_classify(valid)
    problems = sorted([*problems, *refused], key=lambda p: p.line)
    inserted = engine.visits_insert(batch_id=batch.pk, rows=new)
    corrected = engine.visits_correct(batch_id=batch.pk, corrections=corrections)
    batch.rows_total = len(rows)
    batch.rows_imported = inserted
    batch.rows_corrected = corrected
    batch.rows_duplicate = duplicates + len(new) - inserted
    batch.rows_rejected = len(problems)
    batch.errors = [p.as_dict() for p in problems[:MAX_ERRORS_KEPT]]
    batch.save(
        update_fields=[
            "rows_total",
            "rows_imported",
            "rows_corrected",
            "rows_duplicate",
            "rows_rejected",
            "errors",
        ]
    )
    return batch


def _visits_classify(
    rows: list[VisitRow],
) -> tuple[list[VisitRow], list[tuple[int, VisitRow]], int, list[RowError]]:
    """Split valid rows into new visits, corrections (visit id, row), re-sent duplicates and refusals.

    A visit id already reported with the same content is a duplicate (a report can be sent again). With
    other content it is a correction only if the row gives a `correction_reason`; otherwise it is refused,
    never silently dropped. The existing visits are read (and row-locked, so two corrections of one visit
    cannot interleave) in one statement."""
    if not rows:
        return [], [], 0, []
    existing = {
        (current.facility_id, current.visit_id): (pk, current) for pk, current in engine.visits_current(rows)
    }
    new: list[VisitRow] = []
    corrections: list[tuple[int, VisitRow]] = []
    duplicates = 0
    refused: list[RowError] = []
    seen: dict[tuple[int, str], VisitRow] = {}
    for row in rows:
        key = (row.facility_id, row.visit_id)
        if key in seen:
            if seen[key].same_as(row):
                duplicates += 1
            else:
                refused.append(
                    RowError(row.line, _("the same visit_id twice in one file with other data"), "visit_id")
                )
            continue
        seen[key] = row
        if key not in existing:
            if row.withdraw:
                refused.append(
                    RowError(row.line, _("nothing to withdraw: this visit_id was never reported"), "visit_id")
                )
            else:
                new.append(row)
            continue
        pk, current = existing[key]
        if current.same_as(row):
            duplicates += 1
        elif not row.correction_reason:
            refused.append(
                RowError(
                    row.line,
                    _("visit_id already reported with other data: give a correction_reason to correct it"),
                    "correction_reason",
                )
            )
        else:
            corrections.append((pk, row))
    return new, corrections, duplicates, refused


# --- Runs -----------------------------------------------------------------------------------------


def period_bounds(*, scope: str, period_start: dt.date) -> tuple[dt.date, dt.date]:
    if scope == ReconciliationRun.Scope.DAY:
        return period_start, period_start + dt.timedelta(days=1)
    if scope == ReconciliationRun.Scope.MONTH:
        first = period_start.replace(day=1)
        days = calendar.monthrange(first.year, first.month)[1]
        return first, first + dt.timedelta(days=days)
    raise DomainError("invalid_period", value=scope)


def run_create(
    *,
    scope: str,
    period_start: dt.date,
    facility: Facility | None = None,
    created_by: Any = None,
    chunk_size: int | None = None,
) -> ReconciliationRun:
    """A run for a day or a month (optionally one facility). An unfinished run of the same scope
    (queued, or failed/stopped midway) is returned instead, so asking again resumes it."""
    start, end = period_bounds(scope=scope, period_start=period_start)
    if end > timezone.localdate():
        # A month (or day) that has not ended cannot be settled: its visits are still being reported.
        raise DomainError("reconciliation_period_open", period=_period_label(scope, start))
    unfinished = ReconciliationRun.objects.filter(
        scope=scope,
        period_start=start,
        facility=facility,
        state__in=[
            ReconciliationRun.State.QUEUED,
            ReconciliationRun.State.RUNNING,
            ReconciliationRun.State.FAILED,
        ],
    ).first()
    if unfinished is not None:
        return unfinished
    return ReconciliationRun.objects.create(
        scope=scope,
        period_start=start,
        period_end=end,
        facility=facility,
        created_by=created_by,
        rule_version=engine.RULES_VERSION,
        chunk_size=chunk_size or int(getattr(settings, "CER_RECONCILIATION_CHUNK", DEFAULT_CHUNK)),
    )


def _lock_key(run: ReconciliationRun) -> str:
    return f"reconciliation:{run.scope}:{run.period_start.isoformat()}:{run.facility_id or '*'}"


@contextmanager
def _scope_lock(run: ReconciliationRun) -> Iterator[bool]:
    """A session-level advisory lock on the run's scope, held across the chunk transactions. If the
    worker dies, PostgreSQL drops the lock with its connection, so a crashed run can be resumed."""
    key = _lock_key(run)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [LOCK_CLASS, key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [LOCK_CLASS, key])


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=WARSAW)


def run_execute(
    *, run_id: int, on_progress: Callable[[ReconciliationRun], None] | None = None
) -> ReconciliationRun:
    """Reconcile a run to the end, chunk by chunk, resuming after its last committed chunk.

    Refuses (`reconciliation_busy`, nothing changed) while another worker holds the same scope. Must
    not be called inside a transaction in production: every chunk commits on its own.
    """
    run = ReconciliationRun.objects.get(pk=run_id)
    if run.state == ReconciliationRun.State.DONE:
        return run
    with _scope_lock(run) as acquired:
        if not acquired:
            raise DomainError("reconciliation_busy", scope=_scope_label(run))
        # Holding the lock, nobody else works on this scope: a "running" state is a crashed worker's.
        claimed = ReconciliationRun.objects.filter(
            pk=run_id,
            state__in=[
                ReconciliationRun.State.QUEUED,
                ReconciliationRun.State.RUNNING,
                ReconciliationRun.State.FAILED,
            ],
        ).update(
            state=ReconciliationRun.State.RUNNING,
            started_at=Coalesce(F("started_at"), timezone.now()),
            attempts=F("attempts") + 1,
            error="",
        )
        run.refresh_from_db()
        if not claimed:
            if run.state == ReconciliationRun.State.DONE:
                return run
            raise DomainError("reconciliation_run_state", state=run.state)
        try:
            _run_chunks(run, on_progress)
        except Exception as exc:
            ReconciliationRun.objects.filter(pk=run_id).update(
                state=ReconciliationRun.State.FAILED, error=f"{type(exc).__name__}: {exc}"[:1000]
            )
            logger.exception("reconciliation run %s failed", run_id)
            raise
    run.refresh_from_db()
    return run


def _chunk_settings() -> None:
    work_mem = getattr(settings, "CER_RECONCILIATION_WORK_MEM", "64MB")
    with connection.cursor() as cursor:
        # All local to the transaction: the larger sort/hash memory; JIT off (compiling the chunk
        # statement took longer than running it: 4.7 s of 8 s per 50,000 visits); and no wait for the
        # WAL flush at commit. A commit lost in a server crash loses the chunk's verdicts together with
        # the cursor that committed with them, so the resumed run decides the chunk again.
        cursor.execute(
            "SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true),"
            " set_config('synchronous_commit', 'off', true)",
            [work_mem],
        )


def _run_chunks(run: ReconciliationRun, on_progress: Callable[[ReconciliationRun], None] | None) -> None:
    start, end = _local_midnight(run.period_start), _local_midnight(run.period_end)
    if run.chunks_done == 0 and run.visits_done == 0 and run.cursor_visit_id == 0:
        # First attempt: freeze the scope (visits imported later wait for the next run).
        total, first, last = engine.scope_bounds(start=start, end=end, facility_id=run.facility_id)
        ReconciliationRun.objects.filter(pk=run.pk).update(
            visits_total=total, cursor_visit_id=first, last_visit_id=last
        )
        run.refresh_from_db()
    with transaction.atomic():
        _chunk_settings()
        # Once per attempt, for the visits still to decide: patients who joined CeR since the import.
        engine.patients_resolve(
            lo=run.cursor_visit_id, hi=run.last_visit_id, start=start, end=end, facility_id=run.facility_id
        )
    if on_progress:
        on_progress(run)
    while run.cursor_visit_id < run.last_visit_id:
        lo = run.cursor_visit_id
        hi = min(lo + run.chunk_size, run.last_visit_id)
        with transaction.atomic():
            _chunk_settings()
            done = engine.chunk_process(
                run_id=run.pk, lo=lo, hi=hi, start=start, end=end, facility_id=run.facility_id
            )
            # Progress and counts commit with the chunk's verdicts: a crash loses at most this chunk.
            ReconciliationRun.objects.filter(pk=run.pk).update(
                cursor_visit_id=hi,
                chunks_done=F("chunks_done") + 1,
                visits_done=F("visits_done") + done.decided,
                eligible_count=F("eligible_count") + done.eligible,
                ineligible_count=F("ineligible_count") + (done.decided - done.eligible),
            )
        run.refresh_from_db()
        if on_progress:
            on_progress(run)
    with transaction.atomic():
        _chunk_settings()
        if run.visits_done >= ANALYZE_FROM:
            engine.stats_refresh(run_id=run.pk, start=start)
        # Duplicate claims turn eligible verdicts ineligible; overrides change only `final_eligible`.
        duplicates = engine.duplicates_mark(run_id=run.pk, start=start, end=end)
        engine.overrides_apply(run_id=run.pk, start=start)
        ReconciliationRun.objects.filter(pk=run.pk).update(
            state=ReconciliationRun.State.DONE,
            finished_at=timezone.now(),
            eligible_count=F("eligible_count") - duplicates,
            ineligible_count=F("ineligible_count") + duplicates,
        )
    run.refresh_from_db()
    if on_progress:
        on_progress(run)


def _period_label(scope: str, start: dt.date) -> str:
    return start.strftime("%Y-%m") if scope == ReconciliationRun.Scope.MONTH else start.isoformat()


def _scope_label(run: ReconciliationRun) -> str:
    period = _period_label(run.scope, run.period_start)
    return period + (f", facility {run.facility.nfz_code}" if run.facility_id and run.facility else "")


# --- Overrides ------------------------------------------------------------------------------------


@transaction.atomic
def verdict_override(*, verdict: Verdict, new_eligible: bool, user: Any, justification: str) -> Override:
    """Staff replace a verdict's outcome. The rules' verdict (`eligible`, `reason`) stays as it was;
    the override row keeps who, when and why, and later runs of the visit's period apply it too, as
    does the current run of the period when the override was made on a superseded one."""
    justification = visible_text(justification or "")
    if not justification:
        # Whitespace or zero-width characters only: nothing anyone could read.
        raise DomainError("justification_required", field="justification")
    locked = Verdict.objects.select_for_update().get(pk=verdict.pk, period_start=verdict.period_start)
    if locked.final_eligible == new_eligible:
        raise DomainError("override_unchanged", field="new_eligible")
    # The override carries copies of the verdict's and the visit's partition columns (their composite
    # foreign keys). The visit's key row is locked: a correction, which locks it too, cannot change the
    # visit's time until this commits (and then updates the copy: ON UPDATE CASCADE).
    visit_at = (
        VisitKey.objects.select_for_update().values_list("visit_at", flat=True).get(visit_id=locked.visit_id)
    )
    override = Override.objects.create(
        verdict=locked,
        verdict_period_start=locked.period_start,
        visit_id=locked.visit_id,
        visit_at=visit_at,
        original_eligible=locked.eligible,
        original_reason=locked.reason,
        new_eligible=new_eligible,
        user=user,
        justification=justification,
    )
    current = current_run_ids(run_ids=visit_verdicts(visit_ids=[locked.visit_id]).values("run_id"))
    # Each run's verdict of the visit, named with its partition column (the run's period_start).
    targets = Q(pk=locked.pk, period_start=locked.period_start)
    for run_id, period_start in ReconciliationRun.objects.filter(pk__in=current).values_list(
        "pk", "period_start"
    ):
        targets |= Q(run_id=run_id, period_start=period_start, visit_id=locked.visit_id)
    Verdict.objects.filter(targets).update(final_eligible=new_eligible, override=override)
    verdict.refresh_from_db()
    return override


def current_run_ids(*, run_ids: Any = None) -> set[int]:
    """Ids of the current runs: the newest finished run of each scope (scope, period, facility); the
    older finished runs of a scope are superseded. Optionally only among `run_ids`."""
    done = ReconciliationRun.objects.filter(state=ReconciliationRun.State.DONE)
    latest = (
        done.order_by("scope", "period_start", "facility_id", "-id")
        .distinct("scope", "period_start", "facility_id")
        .values_list("id", flat=True)
    )
    ids = set(latest)
    if run_ids is not None:
        ids &= set(ReconciliationRun.objects.filter(pk__in=run_ids).values_list("id", flat=True))
    return ids
