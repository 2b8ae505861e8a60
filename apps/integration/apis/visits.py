"""Visits reported for settlement (reimbursement reconciliation) by the caller's facility, and their
latest verdicts.

The shape of a request is checked as a whole (an unknown field is a typo that would silently lose
data, so it refuses the request); the content of each visit is checked per row by the
reconciliation import, which keeps the valid rows and reports the others by their index.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from apps.core.api_errors import response_language
from apps.core.errors import DomainError, text
from apps.reconciliation.imports import MAX_VISIT_ID, row_error_text
from apps.reconciliation.models import Reason

from ..services import visits_report
from .base import (
    IDEMPOTENCY_PARAMETER,
    READ_ERRORS,
    FacilityApi,
    StrictSerializer,
    echo_safe,
    example,
    example_of,
    page_example,
    responses,
)
from .schedules import WindowQuery, _parse

MAX_VISITS_PER_REQUEST = 10_000
ROW_FIELDS = (
    "visit_id",
    "pesel",
    "service_code",
    "visit_at",
    "emergency",
    "facility_code",
    "correction_reason",
    "withdrawn",
)
REQUIRED_ROW_FIELDS = ("visit_id", "pesel", "service_code", "visit_at")

VISIT_ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": list(REQUIRED_ROW_FIELDS),
    "properties": {
        "visit_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_VISIT_ID,
            "description": "Your own id of the visit. Posting the same id again changes nothing.",
        },
        "pesel": {"type": "string", "pattern": "^[0-9]{11}$", "description": "The patient's PESEL"},
        "service_code": {"type": "string", "maxLength": 32, "description": "Service code from /services"},
        "visit_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601; without a UTC offset it is Europe/Warsaw wall-clock time",
        },
        "emergency": {"type": "boolean", "default": False, "description": "An emergency (nagły) case"},
        "facility_code": {
            "type": "string",
            "description": "Optional: your facility's NFZ code. Any other code refuses the request (403).",
        },
        "correction_reason": {
            "type": "string",
            "maxLength": 500,
            "description": "Why a visit_id already reported is sent with other data: the visit is "
            "corrected (a new version; every version is kept, the latest is settled). Without it such "
            "a row is rejected.",
        },
        "withdrawn": {
            "type": "boolean",
            "default": False,
            "description": "With correction_reason: withdraw a visit already reported (it is not settled)",
        },
    },
}


def _storable(value: Any) -> bool:
    """PostgreSQL text takes neither NUL nor a lone surrogate (valid JSON: "\\u0000", "\\ud800")."""
    if not isinstance(value, str):
        return True
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@extend_schema_field(
    {"type": "array", "minItems": 1, "maxItems": MAX_VISITS_PER_REQUEST, "items": VISIT_ROW_SCHEMA}
)
class VisitRowsField(serializers.Field):
    """Checks only the shape of each row (an object with known fields, text PostgreSQL can store); the values
    are the import's to judge, row by row. Plain dict checks: a nested serializer per row would cost
    ~50x more on 10,000 rows."""

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, list):
            raise serializers.ValidationError(text("expected_visit_list"))
        if not data:
            raise serializers.ValidationError(text("at_least_one_visit"))
        allowed = set(ROW_FIELDS)
        errors: dict[str, list[str]] = {}
        for index, row in enumerate(data):
            problem = None
            if not isinstance(row, dict):
                problem = "Expected an object: " + ", ".join(ROW_FIELDS) + "."
            elif unknown := sorted(set(row) - allowed):
                problem = "Unknown fields: " + ", ".join(echo_safe(name) for name in unknown) + "."
            elif "facility_code" in row and not isinstance(row["facility_code"], str):
                problem = "facility_code must be a string."
            elif not all(_storable(v) for v in row.values()):
                problem = "Text must be valid Unicode without NUL characters."
            if problem:
                errors[str(index)] = [problem]
                if len(errors) >= 20:
                    break
        if errors:
            raise serializers.ValidationError(errors)
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class VisitsReportInput(StrictSerializer):
    visits = VisitRowsField(help_text=f"Up to {MAX_VISITS_PER_REQUEST:,} visits per request")
    facility = serializers.CharField(
        required=False,
        help_text="Optional: your facility's NFZ code. Visits are always recorded for the facility of "
        "your credentials; naming any other refuses the request (403).",
    )


class VisitRowErrorOutput(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the row in `visits`, from 0")
    visit_id = serializers.CharField(allow_null=True, help_text="The row's visit_id, if it had one")
    field = serializers.CharField(
        allow_null=True, help_text="The field that was refused (`pesel`, `visit_at`...), if one was"
    )
    reason = serializers.CharField(
        help_text="Why the row was rejected, in the answer's language (Accept-Language, Polish by "
        "default); never quotes the PESEL. Match on `field`, not on this text."
    )


class VisitsReportOutput(serializers.Serializer):
    batch_id = serializers.IntegerField(help_text="CeR's id of this report (quote it to NFZ staff)")
    received = serializers.IntegerField(help_text="Rows in the request")
    recorded = serializers.IntegerField(help_text="New visits recorded for settlement")
    duplicates = serializers.IntegerField(
        help_text="Valid rows whose visit_id your facility had already reported with the same data "
        "(left unchanged)"
    )
    corrected = serializers.IntegerField(
        help_text="Visits already reported that these rows corrected or withdrew (with correction_reason)"
    )
    rejected = serializers.IntegerField(help_text="Rows refused; see `errors`")
    # Output only (never validates input), so shadowing `Serializer.errors` is harmless.
    errors = VisitRowErrorOutput(many=True)  # type: ignore[assignment]
    errors_truncated = serializers.BooleanField(
        help_text="True when more rows were rejected than `errors` lists (the first 1,000 are listed)"
    )


@example(
    {
        "run_id": 3,
        "decided_at": "2026-07-16T02:14:09+02:00",
        "eligible": True,
        "reason": "matched_registration",
        "final_eligible": True,
        "overridden": False,
        "rule_version": "2026.2.s1",
        "visit_version": 1,
    }
)
class VerdictOutput(serializers.Serializer):
    run_id = serializers.IntegerField()
    decided_at = serializers.DateTimeField(source="run.finished_at", allow_null=True)
    eligible = serializers.BooleanField(help_text="What the rules decided")
    reason = serializers.ChoiceField(choices=Reason.choices)
    final_eligible = serializers.BooleanField(help_text="What NFZ settles (after any staff override)")
    overridden = serializers.SerializerMethodField()
    rule_version = serializers.CharField()
    visit_version = serializers.IntegerField(help_text="The version of the visit this run decided")

    def get_overridden(self, verdict: Any) -> bool:
        return verdict.override_id is not None


@example(
    {
        "id": 9,
        "visit_id": "HIS-2026-000123",
        "service": "KARDIO_1",
        "visit_at": "2026-07-14T09:20:00+02:00",
        "emergency": False,
        "reported_at": "2026-07-14T18:02:41+02:00",
        "version": 1,
        "withdrawn": False,
        "correction_reason": "",
        "verdict": example_of(VerdictOutput),
    }
)
class VisitOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="CeR's id of the reported visit")
    visit_id = serializers.CharField(source="facility_visit_id")
    service = serializers.CharField(source="service.code")
    visit_at = serializers.DateTimeField()
    emergency = serializers.BooleanField()
    reported_at = serializers.DateTimeField(source="created_at")
    version = serializers.IntegerField(help_text="1, then one more for each correction you sent")
    withdrawn = serializers.BooleanField(help_text="You withdrew the visit: it is not settled")
    correction_reason = serializers.CharField(help_text="The reason of the latest correction, if any")
    verdict = VerdictOutput(
        source="latest_verdict",
        allow_null=True,
        help_text="The verdict of the newest finished reconciliation run; null until one has run",
    )


@example(page_example(example_of(VisitOutput)))
class VisitPage(serializers.Serializer):
    results = VisitOutput(many=True)
    next = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page")


class VisitQuery(WindowQuery):
    """date_from/date_to select by the visit's date (Europe/Warsaw), like the other lists."""


# 403: the token lacks visits:write, or the request names another facility; 413: more than
# MAX_VISITS_PER_REQUEST visits, or the body is too large: split the visits into several requests.
REPORT_RESPONSES = responses(
    {200: VisitsReportOutput},
    (400, 401, 403, 413, 415, 422, 429),
    codes=("facility_forbidden", "visits_batch_too_large", "invalid_pesel"),
)

VISIT_EXAMPLE = {
    "visit_id": "HIS-2026-000123",
    "pesel": "44051401359",
    "service_code": "KARDIO_1",
    "visit_at": "2026-07-14T09:20:00+02:00",
    "emergency": False,
}


class VisitsReportApi(FacilityApi):
    required_scope = "visits:write"

    @extend_schema(
        operation_id="visits_report",
        tags=["visits"],
        summary=f"Report visits for settlement (up to {MAX_VISITS_PER_REQUEST:,} per request)",
        description=(
            "Visits of your facility that NFZ should settle; the reimbursement reconciliation decides "
            "for each whether it is payable. Each row is checked on its own: valid rows are recorded "
            "and the others listed in `errors` with their index and reason (the answer is 200 as "
            "long as the request itself is well-formed, so check `rejected`). Posting a visit_id your "
            "facility already reported with the same data changes nothing (it is counted in "
            "`duplicates`), so a whole report can safely be sent again; an Idempotency-Key also "
            "replays the first answer. With other data it needs a `correction_reason` (the visit is "
            "corrected, counted in `corrected`; with `withdrawn: true` it is withdrawn); without one "
            "the row is rejected. "
            "An unknown field or a row that is not an object refuses the whole request (400); a "
            "`facility` or `facility_code` naming another facility refuses it too (403)."
        ),
        request=VisitsReportInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=REPORT_RESPONSES,
        examples=[
            OpenApiExample(
                "two visits",
                request_only=True,
                value={
                    "visits": [
                        VISIT_EXAMPLE,
                        {**VISIT_EXAMPLE, "visit_id": "HIS-2026-000124", "emergency": True},
                    ]
                },
            ),
            OpenApiExample(
                "summary",
                response_only=True,
                status_codes=["200"],
                value={
                    "batch_id": 42,
                    "received": 3,
                    "recorded": 1,
                    "duplicates": 1,
                    "corrected": 0,
                    "rejected": 1,
                    "errors": [
                        {
                            "index": 2,
                            "visit_id": "HIS-2026-000125",
                            "field": "pesel",
                            "reason": "niepoprawny PESEL: błędna cyfra kontrolna",
                        }
                    ],
                    "errors_truncated": False,
                },
            ),
        ],
    )
    def post(self, request: Any) -> Response:
        body = request.data
        rows = body.get("visits") if isinstance(body, dict) else None
        if isinstance(rows, list) and len(rows) > MAX_VISITS_PER_REQUEST:
            raise DomainError("visits_batch_too_large", count=len(rows), limit=MAX_VISITS_PER_REQUEST)
        data = _parse(VisitsReportInput, body).validated_data
        rows = data["visits"]
        own = self.principal.facility.nfz_code
        named = {row["facility_code"] for row in rows if "facility_code" in row}
        if "facility" in data:
            named.add(data["facility"])
        if named - {own}:
            # Never recorded as a row error: a system posting for another facility is misconfigured
            # (or worse), and nothing of the request may land anywhere.
            raise DomainError("facility_forbidden", own=own)
        batch = visits_report(client=self.principal.client, rows=rows)
        errors = []
        language = response_language()  # one language per answer: Accept-Language, Polish by default
        for error in batch.errors:
            index = error["line"] - 1
            visit_id = rows[index].get("visit_id")
            errors.append(
                {
                    "index": index,
                    "visit_id": str(visit_id)[:MAX_VISIT_ID] if isinstance(visit_id, str | int) else None,
                    "field": error.get("column") or None,
                    "reason": row_error_text(error, language),
                }
            )
        summary = {
            "batch_id": batch.pk,
            "received": batch.rows_total,
            "recorded": batch.rows_imported,
            "duplicates": batch.rows_duplicate,
            "corrected": batch.rows_corrected,
            "rejected": batch.rows_rejected,
            "errors": errors,
            "errors_truncated": batch.rows_rejected > len(errors),
        }
        return Response(VisitsReportOutput(summary).data)


class VisitListApi(FacilityApi):
    # Reading back what the facility reported (and NFZ's verdicts on it) goes with reporting it.
    required_scope = "visits:write"

    @extend_schema(
        operation_id="visits_list",
        tags=["visits"],
        summary="Your reported visits with their latest verdict (cursor pagination)",
        description="Ordered by visit time. PESELs are not echoed back: match rows by your visit_id. "
        "`verdict` is null until a reconciliation run covering the visit has finished.",
        parameters=[VisitQuery],
        responses=responses({200: VisitPage}, READ_ERRORS),
    )
    def get(self, request: Any) -> Response:
        query = _parse(VisitQuery, request.query_params)
        rows, next_cursor = self.scope.visit_list(**query.window())
        return Response({"results": VisitOutput(rows, many=True).data, "next": next_cursor})
