"""The one set of booking rules: facts in, a refusal (or nothing) out.

Every operation that creates, moves or allocates a booking or a waiting-list entry builds `Facts` for
the target slot (or the first day a waiting-list entry asks for) and calls `check`. The rules read the
catalogue (`Service`) and never the database: the facts come from one read by the caller
(`apps.booking.sql`), so a rule cannot be skipped by a path that happened not to load something.

`PATHS` lists every such operation with the rules it evaluates; `docs/booking-rules.md` is generated
from it (`python manage.py booking_rules_doc`) and a test keeps the two equal, while
`tests/booking/test_rules_every_path.py` runs each path against each rule.

A parent, legal guardian or authorised person acting for someone on the patient pages calls these same
paths with that person as `patient` (`apps.portal.acting`), so every rule is judged on the child or
the adult acted for, never on who clicked (`tests/portal/test_acting_for.py`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from apps.catalog.models import Service
from apps.core.errors import DomainError, localised
from apps.patients.models import Patient, Referral
from apps.scheduling.models import Slot


@dataclass(frozen=True)
class Facts:
    """What the rules need to know about one booking (or waiting-list entry) of a patient.

    `day` is the visit's local date (or a waiting-list entry's first day): age, interval and scope are
    judged on it, never on the day the request was made. `referral` is the e-referral the registration
    holds or is about to hold; `referral_known` is False only where the path takes no referral yet (a
    hold: the number is entered on the booking step, which checks it).
    """

    patient: Patient
    service: Service
    day: dt.date
    last_screening: dt.date | None = None
    slot: Slot | None = None
    referral: Referral | None = None
    referral_known: bool = True


def add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, candidate)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def interval_months(patient: Patient, service: Service) -> int | None:
    """The screening interval that applies to the patient (shorter for programme risk groups)."""
    return service.interval_months_risk if patient.screening_risk_group else service.interval_months


def next_screening_day(patient: Patient, service: Service, last: dt.date | None) -> dt.date | None:
    """The first day the programme's interval allows another screening, or None if any day does."""
    months = interval_months(patient, service)
    if not months or last is None:
        return None
    return add_months(last, months)


# --- the rules: each raises DomainError, or returns -------------------------------------------------


def service_in_scope(facts: Facts) -> None:
    """The service is covered by CeR on the visit's date (catalogue `cer_from`)."""
    if not facts.service.covered_on(facts.day):
        raise DomainError(
            "service_not_covered",
            service=facts.service.code,
            service_name=localised(facts.service.name_pl, facts.service.name_en),
            date=facts.day,
        )


def sex(facts: Facts) -> None:
    """The screening programme's sex (catalogue `eligible_sex`)."""
    if facts.service.eligible_sex and facts.patient.sex != facts.service.eligible_sex:
        raise DomainError("not_eligible_sex")


def age(facts: Facts) -> None:
    """The programme's age range, counted by year of birth on the visit's date (MZ regulation: age by
    birth year, not birthday), so a visit after New Year is judged with the new year's age."""
    service = facts.service
    years = facts.day.year - facts.patient.birth_date.year
    if (service.age_min is not None and years < service.age_min) or (
        service.age_max is not None and years > service.age_max
    ):
        raise DomainError("not_eligible_age", age_min=service.age_min or 0, age_max=service.age_max or 150)


def screening_interval(facts: Facts) -> None:
    """The programme's interval since the last screening (its record: an attended CeR screening
    writes one)."""
    allowed_from = next_screening_day(facts.patient, facts.service, facts.last_screening)
    if allowed_from is not None and facts.day < allowed_from:
        raise DomainError("not_eligible_interval", last=facts.last_screening, next=allowed_from)


def referral(facts: Facts) -> None:
    """A service that needs an e-referral is booked only on one issued to this patient for this service
    (its access code, state and expiry are checked when it is claimed: `services.referrals`)."""
    if not facts.service.referral_required or not facts.referral_known:
        return
    found = facts.referral
    if found is None:
        raise DomainError("referral_required", field="referral_number")
    if found.patient_id != facts.patient.pk:
        raise DomainError("referral_invalid", field="referral_code")
    if found.service_id != facts.service.pk:
        raise DomainError(
            "referral_wrong_service",
            field="referral_number",
            service=localised(found.service.name_pl, found.service.name_en),
        )


def slot_kind(facts: Facts) -> None:
    """CeR registers first visits: a registration is booked only into a first-visit slot (a follow-up
    slot belongs to the facility's own patients under care)."""
    if facts.slot is not None and facts.slot.kind != Slot.Kind.FIRST:
        raise DomainError("slot_kind_mismatch", field="slot_id")


@dataclass(frozen=True)
class Rule:
    name: str
    check: Callable[[Facts], None]
    summary: str


RULES: tuple[Rule, ...] = (
    Rule("service_in_scope", service_in_scope, "service covered by CeR on the visit date"),
    Rule("sex", sex, "programme sex"),
    Rule("age", age, "programme age by birth year on the visit date"),
    Rule("screening_interval", screening_interval, "screening interval since the last test"),
    Rule("referral", referral, "e-referral of this patient for this service"),
    Rule("slot_kind", slot_kind, "first-visit slot for a first-visit registration"),
)


def failures(facts: Facts) -> list[DomainError]:
    """Every rule the facts break, in `RULES` order (empty: bookable)."""
    found = []
    for rule in RULES:
        try:
            rule.check(facts)
        except DomainError as exc:
            found.append(exc)
    return found


def check(facts: Facts) -> None:
    """Refuse with the first rule the facts break."""
    for rule in RULES:
        rule.check(facts)


def allows(facts: Facts) -> bool:
    """Whether no rule refuses the facts (stops at the first refusal, as `check`)."""
    try:
        check(facts)
    except DomainError:
        return False
    return True


# --- every path that books, moves or allocates -------------------------------------------------------


@dataclass(frozen=True)
class Path:
    name: str
    function: str
    interfaces: str
    day: str
    # Rules this path does not evaluate itself, and why (another step of the same flow does).
    deferred: dict[str, str]


PATHS: tuple[Path, ...] = (
    Path(
        "hold",
        "services.holds.slot_hold",
        "patient pages (also acting for a dependant)",
        "the slot's date",
        {"referral": "entered on the booking step, which checks it (`book`)"},
    ),
    Path(
        "book",
        "services.book.appointment_book",
        "patient pages (also acting for a dependant), API (desk/phone/e-mail)",
        "the slot's date",
        {},
    ),
    Path(
        "reschedule",
        "services.lifecycle.appointment_reschedule",
        "patient pages (also acting for a dependant), API",
        "the new slot's date",
        {},
    ),
    Path(
        "waitlist_join",
        "services.waitlist.waitlist_join",
        "patient pages (also acting for a dependant), API",
        "the first day of the entry's window (or today)",
        {"slot_kind": "no slot yet; every allocation checks it"},
    ),
    Path(
        "allocate_slot",
        "services.waitlist.waitlist_allocate_slot",
        "Celery (a slot freed or published)",
        "the slot's date, per candidate in queue order",
        {},
    ),
    Path(
        "allocate_slots",
        "services.waitlist.waitlist_allocate_slots",
        "Celery: the freed-slot drain (waitlist_drain, a batch of queued freed slots), bench",
        "each slot's date, per candidate in queue order",
        {},
    ),
    Path(
        "allocate_registration",
        "services.waitlist.waitlist_allocate_registration",
        "Celery (join, sweep)",
        "each candidate slot's date, earliest first",
        {},
    ),
    Path(
        "facility_cancel_rebook",
        "services.lifecycle.appointment_cancel_by_facility",
        "API",
        "each candidate slot's date, earliest first",
        {},
    ),
    Path(
        "session_cancel_rebook",
        "services.lifecycle.session_cancel_by_facility",
        "API (a whole day of a schedule)",
        "each candidate slot's date, earliest first",
        {},
    ),
)


def rules_table() -> str:
    """The table of `docs/booking-rules.md`: every path against every rule."""
    header = "| path | function | used by | judged on | " + " | ".join(r.name for r in RULES) + " |"
    lines = [header, "|" + " --- |" * (4 + len(RULES))]
    for path in PATHS:
        cells = ["deferred" if rule.name in path.deferred else "yes" for rule in RULES]
        lines.append(
            f"| {path.name} | `{path.function}` | {path.interfaces} | {path.day} | "
            + " | ".join(cells)
            + " |"
        )
    lines.append("")
    for path in PATHS:
        for rule_name, why in path.deferred.items():
            lines.append(f"- {path.name} / {rule_name}: {why}.")
    lines.append("")
    lines.append("The rules (`apps/booking/rules.py`, in the order they are evaluated):")
    lines.append("")
    for rule in RULES:
        lines.append(f"- `{rule.name}`: {rule.summary}.")
    return "\n".join(lines) + "\n"
