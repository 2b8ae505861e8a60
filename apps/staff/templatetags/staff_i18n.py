"""Catalogue names in the page's language: a service's or voivodeship's Polish or English name, never
both (the data holds both)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import translation

register = template.Library()


def english() -> bool:
    return (translation.get_language() or "pl").startswith("en")


@register.filter
def local_name(obj: Any) -> str:
    """`Service` (name_pl / name_en) or `Voivodeship` (name / name_en) in the active language."""
    if obj is None:
        return ""
    polish = getattr(obj, "name_pl", None)
    if polish is None:
        polish = getattr(obj, "name", "")
    english_name = getattr(obj, "name_en", "") or polish
    return str(english_name if english() else polish)
