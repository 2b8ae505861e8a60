import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from apps.catalog.models import Facility
from apps.core.errors import DomainError
from apps.reconciliation.models import ReconciliationRun
from apps.reconciliation.services import run_create, run_execute

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Reconcile reported visits of a month (or a day) against CeR registrations. Asking again for a "
        "scope whose run stopped midway resumes it."
    )

    def add_arguments(self, parser):
        period = parser.add_mutually_exclusive_group(required=True)
        period.add_argument("--month", help="YYYY-MM")
        period.add_argument("--day", help="YYYY-MM-DD")
        parser.add_argument("--facility", help="NFZ code of one facility")
        parser.add_argument("--chunk-size", type=int, default=None)

    def handle(self, *args, **options):
        try:
            if options["month"]:
                scope = ReconciliationRun.Scope.MONTH
                start = dt.datetime.strptime(options["month"], "%Y-%m").date()
            else:
                scope = ReconciliationRun.Scope.DAY
                start = dt.date.fromisoformat(options["day"])
        except ValueError:
            raise CommandError("give --month YYYY-MM or --day YYYY-MM-DD") from None
        facility = None
        if options["facility"]:
            facility = Facility.objects.filter(nfz_code=options["facility"]).first()
            if facility is None:
                raise CommandError(f"unknown facility code {options['facility']}")
        chunk_size = options["chunk_size"]
        if chunk_size is not None and chunk_size < 1:
            raise CommandError("--chunk-size must be positive")
        try:
            run = run_create(scope=scope, period_start=start, facility=facility, chunk_size=chunk_size)
        except DomainError as exc:  # e.g. a month that has not ended
            raise CommandError(exc.message_in("en")) from None
        if run.chunks_done:
            self.stdout.write(f"resuming run {run.pk} after {run.visits_done} visits")
        try:
            run = run_execute(run_id=run.pk, on_progress=self._progress)
        except DomainError as exc:
            raise CommandError(exc.message_in("en")) from None
        self.stdout.write("")
        self.stdout.write(
            f"run {run.pk} {run.state}: {run.visits_done} visits, {run.eligible_count} eligible, "
            f"{run.ineligible_count} ineligible"
        )

    def _progress(self, run: ReconciliationRun) -> None:
        filled = BAR_WIDTH * run.progress_percent // 100
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stdout.write(
            f"\r[{bar}] {run.progress_percent:3d}% {run.visits_done}/{run.visits_total} visits", ending=""
        )
        self.stdout.flush()
