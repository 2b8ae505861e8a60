from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from apps.core.errors import DomainError

from .models import Contract, Facility, Service


def service_get(*, code: str) -> Service:
    try:
        return Service.objects.get(code=code)
    except Service.DoesNotExist:
        raise DomainError("unknown_service", service=code) from None


def service_list_in_scope(*, on: dt.date) -> QuerySet[Service]:
    """Services that CeR covers on a date: the catalogue's effective dates decide, not code."""
    return Service.objects.filter(cer_from__lte=on).order_by("code")


def registration_obligatory_from(*, service: Service, facility: Facility) -> dt.date:
    """From when a facility must register this service in CeR (NFZ pays nothing unregistered after)."""
    return max(service.obligatory_from, facility.obligatory_from or service.obligatory_from)


def contract_active(*, facility_id: int, service_id: int, on: dt.date) -> bool:
    return Contract.objects.filter(
        Q(valid_to__isnull=True) | Q(valid_to__gte=on),
        facility_id=facility_id,
        service_id=service_id,
        valid_from__lte=on,
    ).exists()
