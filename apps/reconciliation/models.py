"""Reimbursement reconciliation: reported visits, import batches, runs, verdicts and staff overrides.

NFZ pays for a visit in a CeR-covered service only if it was registered in CeR (DESIGN.md section 5).
Facilities report the visits they want settled (`ReportedVisit`); a `ReconciliationRun` gives every
visit in its scope one `Verdict` with a reason code and the rule version that produced it; staff may
`Override` a verdict, which keeps the original and records who, when and why.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from apps.catalog.models import Facility, Service
from apps.patients.models import Patient


class Reason(models.TextChoices):
    """Reason codes of a verdict. Whether a reason makes a visit eligible is `ELIGIBLE_REASONS`. The
    labels are the reason texts, English in the source and Polish in the catalogue
    (apps/staff/locale): pages and exports show them in one language, never both."""

    MATCHED_REGISTRATION = "matched_registration", _("matching registration in CeR")
    SERVICE_NOT_IN_SCOPE = "service_not_in_scope", _("service not covered by CeR on the visit day")
    FACILITY_NOT_OBLIGED = "facility_not_obliged", _("the facility was not yet obliged to register")
    EMERGENCY = "emergency", _("emergency")
    NO_REGISTRATION = "no_registration", _("no registration in CeR")
    REGISTRATION_CANCELLED = (
        "registration_cancelled",
        _("registration cancelled or released before the visit"),
    )
    FACILITY_MISMATCH = "facility_mismatch", _("registration at another facility")
    SERVICE_MISMATCH = "service_mismatch", _("registration for another service")
    DUPLICATE_CLAIM = "duplicate_claim", _("the same registration claimed a second time")
    NO_SHOW = "no_show", _("the facility recorded that the patient did not attend")
    BOOKED_AFTER_VISIT = "booked_after_visit", _("registration created after the visit began")
    EMERGENCY_NO_PATIENT = "emergency_no_patient", _("emergency, but the PESEL is unknown to CeR")
    WITHDRAWN = "withdrawn", _("visit withdrawn by the facility")


def reason_text(code: str, language: str = "pl") -> str:
    """The text of a reason code in one language ("pl" or "en"), from the message catalogue."""
    label = dict(Reason.choices).get(code)
    if label is None:
        return code
    with translation.override("en" if (language or "pl").lower().startswith("en") else "pl"):
        return str(label)


ELIGIBLE_REASONS = frozenset(
    {
        Reason.MATCHED_REGISTRATION,
        Reason.SERVICE_NOT_IN_SCOPE,
        Reason.FACILITY_NOT_OBLIGED,
        Reason.EMERGENCY,
    }
)
INELIGIBLE_REASONS = tuple(r for r in Reason if r not in ELIGIBLE_REASONS)
# Reasons whose verdict names the appointment the visit was held against (shown with its state and
# booking time on the verdict pages).
CLAIMED_REASONS = frozenset(
    {
        Reason.MATCHED_REGISTRATION,
        Reason.REGISTRATION_CANCELLED,
        Reason.NO_SHOW,
        Reason.BOOKED_AFTER_VISIT,
    }
)


class ImportBatch(models.Model):
    """One file (or API post) of reported visits. A file is identified by its SHA-256: importing it
    again finds this batch and changes nothing."""

    class Source(models.TextChoices):
        FILE = "file", _("file (command)")
        UPLOAD = "upload", _("file (NFZ page)")
        API = "api", _("facility API")

    id = models.BigAutoField(primary_key=True)
    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    source = models.CharField(max_length=8, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rows_total = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    rows_duplicate = models.PositiveIntegerField(default=0)
    rows_corrected = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    # [{"line": 7, "reason": "invalid PESEL: wrong check digit"}, ...]
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sha256"], condition=~Q(source="api"), name="import_batch_file_once"
            )
        ]

    def __str__(self) -> str:
        return f"import {self.pk} {self.file_name}"


class ReportedVisit(models.Model):
    """A visit a facility reports for settlement. The PESEL is kept as reported (the patient may be
    unknown to CeR); `patient` is resolved from it when a patient with that PESEL exists.

    Month partitions on `visit_at` (apps/reconciliation/partitions.py): the real primary key is
    (id, visit_at), and "a facility reports a visit id once" is the unique constraint of the
    unpartitioned `VisitKey` table, which a trigger keeps one row per visit."""

    id = models.BigAutoField(primary_key=True)
    # Indexes are few on purpose (10 M rows a month): facility is led by the unique and scope indexes.
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="+", db_index=False)
    facility_visit_id = models.CharField(max_length=64)
    patient_pesel = models.CharField(max_length=11)
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+", db_index=False)
    visit_at = models.DateTimeField()
    emergency = models.BooleanField(default=False)
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    source_row = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Corrections: the row always holds the latest version (the one runs decide); every earlier version
    # is kept in `VisitVersion`. A withdrawn visit is not settled (reason `withdrawn`).
    # Database defaults: visits are inserted by hand-written SQL (the import, the bench data generator).
    version = models.PositiveIntegerField(default=1, db_default=1)
    withdrawn = models.BooleanField(default=False, db_default=False)
    correction_reason = models.TextField(blank=True, default="", db_default="")
    version_at = models.DateTimeField(null=True, blank=True, help_text="when the latest correction came")

    class Meta:
        ordering = ["id"]
        # No unique constraint: (facility, facility_visit_id) does not hold the partition column, so the
        # rule is VisitKey's.
        indexes = [
            # A run selects its scope (a day or a month, optionally one facility) and walks it by id.
            models.Index(fields=["visit_at", "id"], name="visit_scope"),
            models.Index(fields=["facility", "visit_at", "id"], name="visit_facility_scope"),
            models.Index(
                fields=["patient_pesel"], name="visit_unresolved", condition=Q(patient__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"visit {self.pk} {self.facility_id}/{self.facility_visit_id}"


class VisitKey(models.Model):
    """The rule "a facility reports a visit id once", across every month partition of the visits: one
    row per visit in this unpartitioned table, whose unique constraint is the rule. The import writes
    the key and the visit in one statement (`INSERT ... ON CONFLICT DO NOTHING` here: a concurrent
    import of the same visit id waits for the first and leaves it as it was); a trigger on the visits
    writes the key of a visit any other writer inserts, and refuses a second visit of a key
    (apps/reconciliation/partitions.py). `visit_at` is a copy of the visit's (its partition column), kept
    by the composite foreign key (ON UPDATE CASCADE): it locates the visit in one partition."""

    visit = models.OneToOneField(
        ReportedVisit, primary_key=True, on_delete=models.CASCADE, related_name="key", db_constraint=False
    )
    facility = models.ForeignKey(
        Facility, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    facility_visit_id = models.CharField(max_length=64)
    visit_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["facility", "facility_visit_id"], name="visit_once_per_facility"),
        ]

    def __str__(self) -> str:
        return f"visit key {self.facility_id}/{self.facility_visit_id}"


class VisitVersion(models.Model):
    """An earlier version of a reported visit, kept when the facility corrected or withdrew it
    (append-only). Version n was current from `recorded_at` until the next version came."""

    id = models.BigAutoField(primary_key=True)
    # The composite foreign key (visit_id, current_visit_at) is declared in SQL
    # (apps/reconciliation/partitions.py): `current_visit_at` is a copy of the visit's current `visit_at`
    # (its partition column; this version's own time is `visit_at`), and follows it (ON UPDATE CASCADE).
    visit = models.ForeignKey(
        ReportedVisit, on_delete=models.PROTECT, related_name="versions", db_constraint=False
    )
    current_visit_at = models.DateTimeField()
    version = models.PositiveIntegerField()
    patient_pesel = models.CharField(max_length=11)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+", db_index=False)
    visit_at = models.DateTimeField()
    emergency = models.BooleanField()
    withdrawn = models.BooleanField()
    correction_reason = models.TextField(blank=True)
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    source_row = models.PositiveIntegerField(null=True, blank=True)
    recorded_at = models.DateTimeField()
    superseded_at = models.DateTimeField()

    class Meta:
        ordering = ["visit_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["visit", "version"], name="visit_version_once"),
        ]

    def __str__(self) -> str:
        return f"visit {self.visit_id} v{self.version}"


class ReconciliationRun(models.Model):
    class Scope(models.TextChoices):
        DAY = "day", _("day")
        MONTH = "month", _("month")

    class State(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("finished")
        FAILED = "failed", _("failed")

    id = models.BigAutoField(primary_key=True)
    scope = models.CharField(max_length=5, choices=Scope.choices)
    period_start = models.DateField()
    period_end = models.DateField(help_text="exclusive")
    facility = models.ForeignKey(Facility, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    rule_version = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Progress: the run walks its visits in id order; `cursor_visit_id` is the last id whose chunk
    # committed, so a resumed run skips everything at or below it.
    chunk_size = models.PositiveIntegerField(default=50_000)
    visits_total = models.PositiveIntegerField(default=0)
    visits_done = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    cursor_visit_id = models.BigIntegerField(default=0)
    last_visit_id = models.BigIntegerField(default=0, help_text="the scope's last visit id when it began")
    eligible_count = models.PositiveIntegerField(default=0)
    ineligible_count = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(period_end__gt=models.F("period_start")), name="run_period"),
        ]
        indexes = [models.Index(fields=["scope", "period_start", "state"], name="run_by_period")]
        permissions = [
            ("review_reconciliation", "Can review reconciliation runs and verdicts"),
            ("start_reconciliation", "Can start a reconciliation run"),
            ("override_verdict", "Can override a reconciliation verdict"),
            ("import_visits", "Can upload reported visits"),
            ("export_verdicts", "Can export verdict lists"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} {self.scope} {self.period_start} {self.state}"

    @property
    def progress_percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        if not self.visits_total:
            return 0
        return min(100, self.visits_done * 100 // self.visits_total)


class Verdict(models.Model):
    """The outcome of one run for one visit. `eligible`/`reason` are what the rules decided and never
    change; `final_eligible` is what NFZ settles: the same, unless a staff override says otherwise."""

    id = models.BigAutoField(primary_key=True)
    # A run writes millions of verdicts: every index and foreign-key check costs per row (measured:
    # the deferred run and visit FK checks cost about as much as writing the row itself; the FK
    # check also row-locks the visit, dirtying the visit table). Verdicts are written only by the
    # engine's INSERT ... SELECT, which reads the visit, facility and service in the same statement
    # for the run it holds, so no key is re-checked by PostgreSQL; Django's on_delete still applies
    # (visits are never deleted: PROTECTed patients, no delete path). Only the indexes the pages and
    # the run read exist: (run, visit) unique and (run, facility, visit_at) (docs/reconciliation.md).
    run = models.ForeignKey(
        ReconciliationRun,
        on_delete=models.CASCADE,
        related_name="verdicts",
        db_index=False,
        db_constraint=False,
    )
    visit = models.ForeignKey(
        ReportedVisit, on_delete=models.CASCADE, related_name="verdicts", db_index=False, db_constraint=False
    )
    # Denormalised from the visit: summaries group a run's verdicts without touching the visits.
    facility = models.ForeignKey(
        Facility, on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )
    service = models.ForeignKey(
        Service, on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )
    visit_at = models.DateTimeField()
    eligible = models.BooleanField()
    reason = models.CharField(max_length=24, choices=Reason.choices)
    matched_appointment = models.ForeignKey(
        "booking.Appointment",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    rule_version = models.CharField(max_length=32)
    # The version of the visit the run decided (a correction after the run makes a newer one).
    visit_version = models.PositiveIntegerField(default=1, db_default=1)
    final_eligible = models.BooleanField()
    # Not FK-checked either (the check is queued per inserted row even when NULL): overrides are
    # append-only (PostgreSQL refuses DELETE), so a verdict's override cannot disappear.
    override = models.ForeignKey(
        "Override",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )

    # A copy of the run's `period_start`: the month partitions' column (apps/reconciliation/partitions.py),
    # so a run reads and writes its own month's partition only.
    period_start = models.DateField()

    class Meta:
        ordering = ["visit_at", "visit_id"]
        constraints = [
            # (run, visit) once: `period_start` is the run's, so adding it (a unique rule on the
            # partitioned table must hold the partition column) is the same rule.
            models.UniqueConstraint(fields=["run", "visit", "period_start"], name="verdict_once_per_run"),
        ]
        indexes = [
            models.Index(fields=["run", "facility", "visit_at"], name="verdict_run_facility"),
        ]

    def __str__(self) -> str:
        return f"verdict {self.pk} {self.reason}"


class Override(models.Model):
    """A staff decision replacing a verdict. Append-only: a later override supersedes, never edits."""

    id = models.BigAutoField(primary_key=True)
    # Both tables are month-partitioned: the foreign keys (verdict_id, verdict_period_start) and
    # (visit_id, visit_at) are declared in SQL (apps/reconciliation/partitions.py), with copies of the
    # verdict's `period_start` and the visit's `visit_at` (which follows a corrected visit: ON UPDATE
    # CASCADE, the one change the append-only trigger lets through).
    verdict = models.ForeignKey(
        Verdict, on_delete=models.PROTECT, related_name="overrides", db_constraint=False
    )
    verdict_period_start = models.DateField()
    visit = models.ForeignKey(
        ReportedVisit, on_delete=models.PROTECT, related_name="overrides", db_constraint=False
    )
    visit_at = models.DateTimeField()
    original_eligible = models.BooleanField()
    original_reason = models.CharField(max_length=24, choices=Reason.choices)
    new_eligible = models.BooleanField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    justification = models.TextField()

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(justification__regex=r"^\s*$"), name="override_justification_required"
            ),
        ]
        indexes = [models.Index(fields=["visit", "-id"], name="override_latest_per_visit")]


class Tariff(models.Model):
    """What NFZ pays per visit of a service (PLN), for the "amount at stake" in summaries."""

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="tariff")
    amount = models.DecimalField(max_digits=10, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.service_id}: {self.amount} PLN"


class SettlementPolicy(models.Model):
    """Settlement rules that change, kept as data (one row, editable in the admin): how old a reported
    visit may be, and the share of emergency claims above which a facility is listed for review."""

    settlement_window_days = models.PositiveIntegerField(
        default=730, help_text="visits older than this many days are refused at import"
    )
    emergency_share_threshold = models.DecimalField(
        max_digits=5, decimal_places=2, default=5, help_text="percent of a facility's visits in a run"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(settlement_window_days__gte=1, emergency_share_threshold__gte=0)
                & Q(emergency_share_threshold__lte=100),
                name="settlement_policy_bounds",
            )
        ]

    def __str__(self) -> str:
        return f"settlement policy ({self.settlement_window_days} days)"


def settlement_policy() -> SettlementPolicy:
    """The policy row (the data migration creates it); the model's defaults if it was removed."""
    return SettlementPolicy.objects.order_by("pk").first() or SettlementPolicy()
