"""Reads of the integration API. `FacilityScope` is the ONE place the caller's facility filters data.

Every API view gets `self.scope` (built once from the authenticated client) and reads only through
it; nothing in the API layer queries Schedule, Slot, Appointment or webhooks without it. An id that
belongs to another facility therefore behaves exactly like an id that does not exist (404).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from django.db.models import Q, QuerySet

from apps.catalog.models import Entitlement, Facility, ReasonCode, Service
from apps.core.errors import DomainError
from apps.core.queries import model_from_row, optional_model_from_row, prepared_cursor, select_columns
from apps.outbox.models import FeedHorizon, OutboxEvent
from apps.outbox.selectors import event_list_after
from apps.patients.models import Patient
from apps.reconciliation.models import ReconciliationRun, ReportedVisit, Verdict
from apps.reconciliation.selectors import visit_verdicts
from apps.scheduling.models import Schedule, Slot

from .models import WebhookDelivery, WebhookSubscription


def cursor_encode(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str, *, types: tuple[type, ...]) -> tuple[Any, ...]:
    """Decode an opaque cursor; anything not produced by `cursor_encode` is a 400 problem."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError
        out: list[Any] = []
        for value, kind in zip(values, types, strict=True):
            if kind is dt.datetime:
                out.append(dt.datetime.fromisoformat(value))
            elif kind is int and isinstance(value, int) and not isinstance(value, bool):
                out.append(value)
            else:
                raise ValueError
        return tuple(out)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise DomainError("invalid_cursor", field="cursor") from None


def not_found(what: str) -> DomainError:
    """`<what>_not_found` (404): also what another facility's ids give, so they are never visible."""
    return DomainError(f"{what}_not_found")


class FacilityScope:
    def __init__(self, facility: Facility) -> None:
        self.facility = facility

    def schedules(self) -> QuerySet[Schedule]:
        return Schedule.objects.filter(facility=self.facility)

    def slots(self) -> QuerySet[Slot]:
        return Slot.objects.filter(facility=self.facility)

    def appointments(self):  # -> QuerySet[Appointment]
        from apps.booking.models import Appointment

        return Appointment.objects.filter(facility=self.facility)

    def waitlist_entries(self):  # -> QuerySet[Registration]
        """Waiting-list entries this facility registered (`Registration.registered_by`, written by the
        join; not its outbox event, which the outbox does not keep for as long as an entry may wait)."""
        from apps.booking.models import Registration

        return Registration.objects.filter(registered_by=self.facility)

    def waitlist_entry(self, pk: Any):
        return self._one(
            self.waitlist_entries().select_related(
                "patient", "service", "referral", "entitlement", "voivodeship", "locality", "facility"
            ),
            "waitlist_entry",
            pk,
        )

    def subscriptions(self) -> QuerySet[WebhookSubscription]:
        return WebhookSubscription.objects.filter(facility=self.facility, active=True)

    def deliveries(self) -> QuerySet[WebhookDelivery]:
        return WebhookDelivery.objects.filter(subscription__facility=self.facility)

    def _one(self, qs: QuerySet, what: str, pk: Any, *, for_update: bool = False) -> Any:
        if for_update:
            qs = qs.select_for_update(of=("self",))
        try:
            return qs.get(pk=int(pk))
        except (ValueError, TypeError, OverflowError, qs.model.DoesNotExist):
            raise not_found(what) from None

    def schedule(self, pk: Any, *, for_update: bool = False) -> Schedule:
        return self._one(
            self.schedules().select_related("service", "practitioner"), "schedule", pk, for_update=for_update
        )

    def slot(self, pk: Any) -> Slot:
        return self._one(self.slots(), "slot", pk)

    def appointment(self, pk: Any, *, for_update: bool = False, start: dt.datetime | None = None):
        """One booking of this facility, read in its own month's partitions (`start`, its start if the
        caller knows it, else `booking.selectors.appointment_in_month` finds it)."""
        from apps.booking.selectors import appointment_in_month

        try:
            key = appointment_in_month(int(pk), slot=True, start=start)
        except (ValueError, TypeError):
            key = None
        if key is None:
            raise not_found("booking")
        return self._one(
            self.appointments()
            .filter(**key)
            .select_related("patient", "service", "slot", "reason", "registration__referral"),
            "booking",
            pk,
            for_update=for_update,
        )

    def subscription(self, pk: Any) -> WebhookSubscription:
        return self._one(self.subscriptions(), "webhook", pk)

    def delivery(self, pk: Any) -> WebhookDelivery:
        return self._one(self.deliveries().select_related("event", "subscription"), "delivery", pk)

    # --- lists with keyset (cursor) pagination on (start, id) ---------------------------------------

    def slot_list(
        self,
        *,
        date_from: dt.datetime | None = None,
        date_to: dt.datetime | None = None,
        service: str | None = None,
        status: str | None = None,
        schedule_id: int | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[Slot], str | None]:
        qs = self.slots().select_related("service")
        qs = _filter_window(qs, date_from, date_to, service, status)
        if schedule_id is not None:
            qs = qs.filter(schedule_id=schedule_id)
        return _page(qs, cursor, limit)

    def appointment_list(
        self,
        *,
        date_from: dt.datetime | None = None,
        date_to: dt.datetime | None = None,
        service: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list, str | None]:
        qs = self.appointments().select_related("patient", "service", "reason", "registration__referral")
        qs = _filter_window(qs, date_from, date_to, service, status)
        return _page(qs, cursor, limit)

    def visits(self) -> QuerySet[ReportedVisit]:
        return ReportedVisit.objects.filter(facility=self.facility)

    def visit_list(
        self,
        *,
        date_from: dt.datetime | None = None,
        date_to: dt.datetime | None = None,
        service: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[ReportedVisit], str | None]:
        """Reported visits by visit time (keyset on (visit_at, id), the facility's scope index), each
        with `latest_verdict`: its verdict in the newest finished run, or None if not yet reconciled."""
        qs = self.visits().select_related("service")
        if date_from is not None:
            qs = qs.filter(visit_at__gte=date_from)
        if date_to is not None:
            qs = qs.filter(visit_at__lt=date_to)
        if service:
            qs = qs.filter(service__code=service)
        rows, next_cursor = _page(qs, cursor, limit, field="visit_at")
        latest = latest_verdicts(visit_ids=[v.pk for v in rows])
        for visit in rows:
            visit.latest_verdict = latest.get(visit.pk)  # type: ignore[attr-defined]
        return rows, next_cursor

    def changes(self, *, cursor: str | None, limit: int) -> tuple[list[OutboxEvent], str | None]:
        after = cursor_decode(cursor, types=(int, int)) if cursor else None
        if after is not None:
            left = FeedHorizon.objects.filter(facility_id=self.facility.pk).values_list("txid", "event_id")
            horizon = left.first()
            if horizon is not None and tuple(after) < horizon:  # an event after it left with its month
                raise DomainError("cursor_expired")
        events = event_list_after(after=after, facility_id=self.facility.pk, limit=limit)  # type: ignore[arg-type]
        if events:
            last = events[-1]
            return events, cursor_encode(last.txid, last.id)
        return events, cursor  # nothing new: keep polling with the same cursor


def _filter_window(qs: QuerySet, date_from, date_to, service, status) -> QuerySet:
    if date_from is not None:
        qs = qs.filter(start__gte=date_from)
    if date_to is not None:
        qs = qs.filter(start__lt=date_to)
    if service:
        qs = qs.filter(service__code=service)
    if status:
        qs = qs.filter(status=status)
    return qs


def _page(qs: QuerySet, cursor: str | None, limit: int, *, field: str = "start") -> tuple[list, str | None]:
    if cursor:
        start, pk = cursor_decode(cursor, types=(dt.datetime, int))
        qs = qs.filter(Q(**{f"{field}__gt": start}) | Q(**{field: start, "id__gt": pk}))
    rows = list(qs.order_by(field, "id")[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, cursor_encode(getattr(rows[-1], field).isoformat(), rows[-1].id)
    return rows, None


def id_page(
    qs: QuerySet, cursor: str | None, limit: int, *, newest_first: bool = False
) -> tuple[list, str | None]:
    """Keyset pagination on the primary key, for lists without a time order (reference data, webhook
    subscriptions, the delivery log newest first)."""
    if cursor:
        (pk,) = cursor_decode(cursor, types=(int,))
        qs = qs.filter(id__lt=pk) if newest_first else qs.filter(id__gt=pk)
    rows = list(qs.order_by("-id" if newest_first else "id")[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, cursor_encode(rows[-1].id)
    return rows, None


def latest_verdicts(*, visit_ids: list[int]) -> dict[int, Verdict]:
    """Each visit's verdict in the newest finished run that covered it (one query over the verdicts'
    visit index). Runs still in progress are left out: their overrides are applied only at the end."""
    if not visit_ids:
        return {}
    verdicts = (
        visit_verdicts(visit_ids=visit_ids)
        .filter(run__state=ReconciliationRun.State.DONE)
        .select_related("run")
        .order_by("visit_id", "-run_id")
        .distinct("visit_id")
    )
    return {v.visit_id: v for v in verdicts}


# --- Reference data (not facility-specific) -------------------------------------------------------


def service_catalogue() -> QuerySet[Service]:
    return Service.objects.order_by("code")


def reason_code_list() -> QuerySet[ReasonCode]:
    return ReasonCode.objects.order_by("kind", "code")


def entitlement_list() -> QuerySet[Entitlement]:
    return Entitlement.objects.order_by("-priority", "code")


PATIENT_BY_PESEL_SQL = f"""
SELECT {select_columns(Patient, "p")} FROM {Patient._meta.db_table} p WHERE p.pesel = %s
"""  # noqa: S608 (names from the model; the value is bound)


def patient_by_pesel(*, pesel: str) -> Patient | None:
    """Plain SQL: it runs on every desk booking (docs/performance.md). None: not known here (the
    caller may then ask the patient registry, `apps.patients.registry`)."""
    with prepared_cursor() as cursor:
        cursor.execute(PATIENT_BY_PESEL_SQL, [pesel])
        row = cursor.fetchone()
    if row is None:
        return None
    return model_from_row(Patient, row)[0]


def patient_by_pesel_read(*, pesel: str) -> tuple[str, list[Any]]:
    """`patient_by_pesel` as a read to run inside another statement (`idempotency_claim_reading`);
    `patient_from_read` makes its row the same patient."""
    return PATIENT_BY_PESEL_SQL, [pesel]


def patient_from_read(row: tuple[Any, ...]) -> Patient | None:
    return optional_model_from_row(Patient, row)[0]


def practitioner_in_facility(*, scope: FacilityScope, pk: int):
    from apps.scheduling.models import Practitioner

    practitioner = Practitioner.objects.filter(facility=scope.facility, pk=pk).first()
    if practitioner is None:
        raise not_found("practitioner")
    return practitioner
