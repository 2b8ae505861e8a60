from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

register = template.Library()

STATUS_LABELS = {
    "booked": _("Booked"),
    "confirmed": _("Confirmed"),
    "attended": _("Attended"),
    "no_show": _("Did not attend"),
    "cancelled_by_patient": _("Cancelled by you"),
    "cancelled_by_facility": _("Cancelled by the facility"),
    "released": _("Released"),
    "rescheduled": _("Moved to another date"),
}


@register.filter
def localized_name(obj: Any) -> str:
    """The Polish or English name of a catalogue row (Service, Voivodeship, ReasonCode...)."""
    if obj is None:
        return ""
    polish = (get_language() or "pl").startswith("pl")
    if hasattr(obj, "name_pl"):
        return str(obj.name_pl if polish else obj.name_en)
    return str(obj.name if polish else getattr(obj, "name_en", obj.name))


@register.filter
def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))
