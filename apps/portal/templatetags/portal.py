from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
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


@register.filter
def wall_time(value: dt.datetime | None) -> str:
    """ "HH:MM" in Warsaw; in the hour the autumn clock change repeats (e.g. 02:00-02:59 on 31 Oct
    2027) it says which of the two it is: "02:20 (czas letni)" / "02:20 (czas zimowy)"."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    naive = local.replace(tzinfo=None)
    zone = ZoneInfo(settings.TIME_ZONE)
    text = f"{local:%H:%M}"
    if naive.replace(tzinfo=zone, fold=0).utcoffset() != naive.replace(tzinfo=zone, fold=1).utcoffset():
        text += f" ({_('summer time') if local.dst() else _('winter time')})"
    return text


@register.simple_tag(takes_context=True)
def acting_for(context: template.Context) -> Any:
    """Whom the signed-in person books for (`apps.portal.acting.Acting`), or None.

    `{% acting_for as acting %}`"""
    import redis
    from django.db import Error as DatabaseError

    from apps.portal.acting import current

    request = context.get("request")
    if request is None:
        return None
    try:
        return current(request)
    except (DatabaseError, redis.exceptions.RedisError):
        return None  # an error page while the database or Redis is down: no line, not a second error


@register.filter
def dependant_label(option: Any) -> str:
    """ "Jan Kowalski (syn)": a person one may book for (`apps.patients.services.Dependant`)."""
    from apps.portal.acting import person_label

    return person_label(option.patient, option.relationship)


@register.filter
def add_days(day: dt.date | None, days: int) -> dt.date | None:
    return None if day is None else day + dt.timedelta(days=int(days))


@register.simple_tag
def field_html(field: Any) -> SafeString:
    """`{% field_html form.city %}`: the markup of `portal/_field.html` for one form field, made in Python
    (the search page draws eight fields on every request: an included template each was a visible
    share of its CPU). tests/portal/test_search_page_html.py keeps the two the same."""
    errors = field.errors
    widget = conditional_escape(str(field))  # the widget (and its hidden initial, if the field has one)
    if field.is_hidden:
        inner = widget
    else:
        required = mark_safe(' <span aria-hidden="true">*</span>') if field.field.required else ""
        inner = format_html('<label for="{}">{}{}</label>', field.id_for_label, field.label, required)
        if field.help_text:
            inner += format_html('<p class="hint" id="{}_helptext">{}</p>', field.auto_id, field.help_text)
        if errors:
            shown = mark_safe("".join(format_html("<p>{}</p>", error) for error in errors))  # noqa: S308
            inner += format_html('<div class="error-message" id="{}_error">{}</div>', field.auto_id, shown)
        inner += widget
    return format_html('<div class="field{}">{}</div>', " field-error" if errors else "", inner)
