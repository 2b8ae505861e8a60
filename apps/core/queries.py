"""Small query helpers shared by the hot paths."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


def one_or_none(queryset: QuerySet[M]) -> M | None:
    """The row of a lookup by a unique key, or None. Unlike `.first()` it adds no ORDER BY, whose
    compilation is a measurable share of a booking request (docs/performance.md, the storm)."""
    return next(iter(queryset[:1]), None)
