"""Loading and maintaining the reference data. Idempotent: loading twice changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from .models import Entitlement, Holiday, Locality, ReasonCode, Service, Voivodeship

REFERENCE_DIR = Path(settings.BASE_DIR) / "fixtures" / "reference"

SERVICE_FIELDS = (
    "name_pl",
    "name_en",
    "specialty",
    "kind",
    "referral_required",
    "cer_from",
    "obligatory_from",
    "min_horizon_days",
    "waitlist_lookahead_days",
    "slot_minutes",
    "reminder_offsets_days",
    "confirmation_required",
    "confirm_deadline_hours",
    "confirm_min_notice_hours",
    "confirm_exempt_channels",
    "referral_after_no_show",
    "no_show_after_hours",
    "source",
    "notes",
)


def _read(directory: Path, name: str) -> list[dict[str, Any]]:
    return json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))


def _service_defaults(row: dict[str, Any]) -> dict[str, Any]:
    defaults = {field: row[field] for field in SERVICE_FIELDS if field in row}
    rule = row.get("eligibility") or {}
    defaults.update(
        eligible_sex=rule.get("sex") or "",
        age_min=rule.get("age_min"),
        age_max=rule.get("age_max"),
        interval_months=rule.get("interval_months"),
        interval_months_risk=rule.get("interval_months_risk"),
        eligibility_source=rule.get("source", ""),
    )
    return defaults


@transaction.atomic
def reference_load(*, directory: Path = REFERENCE_DIR) -> dict[str, int]:
    """Create or update voivodeships, localities, services, entitlements, reason codes and holidays.

    Rows are matched on their natural keys (TERYT, SIMC, code, date). A service whose eligibility
    rule changes gets its `rule_version` bumped, so reconciliation verdicts can say which rule applied.
    """
    counts: dict[str, int] = {}
    for row in _read(directory, "voivodeships"):
        Voivodeship.objects.update_or_create(
            teryt=row["teryt"], defaults={"name": row["name"], "name_en": row["name_en"]}
        )
    counts["voivodeships"] = Voivodeship.objects.count()
    for row in _read(directory, "localities"):
        Locality.objects.update_or_create(
            simc=row["simc"],
            defaults={
                "name": row["name"],
                "voivodeship_id": row["voivodeship"],
                "population": row.get("population", 0),
                "lat": row["lat"],
                "lon": row["lon"],
            },
        )
    counts["localities"] = Locality.objects.count()
    for row in _read(directory, "services"):
        defaults = _service_defaults(row)
        service = Service.objects.filter(code=row["code"]).first()
        if service is None:
            Service.objects.create(code=row["code"], **defaults)
            continue
        changed = any(str(getattr(service, k)) != str(v) for k, v in defaults.items())
        if changed:
            for key, value in defaults.items():
                setattr(service, key, value)
            service.rule_version += 1
            service.full_clean(exclude=["code"])
            service.save()
    counts["services"] = Service.objects.count()
    for row in _read(directory, "entitlements"):
        Entitlement.objects.update_or_create(
            code=row["code"],
            defaults={k: row[k] for k in ("name_pl", "name_en", "priority", "legal_basis") if k in row},
        )
    counts["entitlements"] = Entitlement.objects.count()
    for row in _read(directory, "reason_codes"):
        ReasonCode.objects.update_or_create(
            code=row["code"], defaults={k: row[k] for k in ("kind", "name_pl", "name_en")}
        )
    counts["reason_codes"] = ReasonCode.objects.count()
    for row in _read(directory, "holidays"):
        Holiday.objects.update_or_create(
            date=row["date"], defaults={"name_pl": row["name_pl"], "name_en": row["name_en"]}
        )
    counts["holidays"] = Holiday.objects.count()
    return counts
