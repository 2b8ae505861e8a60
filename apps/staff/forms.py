from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from apps.catalog.models import Facility, Service, Voivodeship
from apps.reconciliation.models import Reason

from .templatetags.staff_i18n import local_name

YES_NO = [("", _("all")), ("yes", _("yes")), ("no", _("no"))]
ALL = _("all")


class LocalChoiceField(forms.ModelChoiceField):
    """A service or voivodeship choice labelled in the page's language (code and name for services)."""

    def label_from_instance(self, obj: Any) -> str:
        code = getattr(obj, "code", "")
        return f"{code} {local_name(obj)}" if isinstance(obj, Service) else local_name(obj)


def facility_by_code(value: str | None) -> Facility | None:
    """The facility of an NFZ code typed in a form (None if left empty); a form error if unknown."""
    code = (value or "").strip()
    if not code:
        return None
    facility = Facility.objects.filter(nfz_code=code).first()
    if facility is None:
        raise forms.ValidationError(_t("There is no such facility."))
    return facility


def _yes_no(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


class RunStartForm(forms.Form):
    month = forms.CharField(label=_("Month (YYYY-MM)"), max_length=7)
    facility = forms.CharField(label=_("NFZ facility code (optional)"), max_length=20, required=False)

    def clean_month(self) -> dt.date:
        try:
            return dt.datetime.strptime(self.cleaned_data["month"], "%Y-%m").date()
        except ValueError:
            raise forms.ValidationError(_t("Give the month as YYYY-MM.")) from None

    def clean_facility(self) -> Facility | None:
        return facility_by_code(self.cleaned_data.get("facility"))


class VerdictFilterForm(forms.Form):
    service = LocalChoiceField(
        Service.objects.order_by("code"), required=False, label=_("Service"), to_field_name="code"
    )
    eligible = forms.ChoiceField(choices=YES_NO, required=False, label=_("Payable"))
    reason = forms.ChoiceField(choices=[("", ALL), *Reason.choices], required=False, label=_("Reason"))
    date_from = forms.DateField(
        required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    overridden = forms.ChoiceField(choices=YES_NO, required=False, label=_("Overridden"))

    def filters(self) -> dict[str, Any]:
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "service_id": data["service"].pk if data.get("service") else None,
            "eligible": _yes_no(data.get("eligible", "")),
            "reason": data.get("reason") or None,
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
            "overridden": _yes_no(data.get("overridden", "")),
        }


class RunVerdictFilterForm(VerdictFilterForm):
    """The run-wide verdict list: the drill-down's filters plus voivodeship and facility."""

    voivodeship = LocalChoiceField(
        Voivodeship.objects.order_by("name"),
        required=False,
        label=_("Voivodeship"),
        empty_label=ALL,
    )
    facility = forms.CharField(label=_("Facility code"), max_length=20, required=False)

    def clean_facility(self) -> Facility | None:
        return facility_by_code(self.cleaned_data.get("facility"))

    def filters(self) -> dict[str, Any]:
        found = super().filters()
        if not self.is_valid():
            return found
        data = self.cleaned_data
        found["voivodeship_id"] = data["voivodeship"].pk if data.get("voivodeship") else None
        found["facility_id"] = data["facility"].pk if data.get("facility") else None
        return found


EXPORT_LANGUAGES = {"pl": "pl", "en": "en", "keys": None}


def export_options(query: Any) -> tuple[str | None, bool]:
    """(column language or None for the stable keys, CSV for Polish Excel?) from the query string:
    `lang=pl|en|keys` (default keys), `csv=excel|plain` (default plain UTF-8 with commas)."""
    language = EXPORT_LANGUAGES.get(str(query.get("lang", "keys")))
    return language, query.get("csv") == "excel"


class OverrideFilterForm(forms.Form):
    facility = forms.CharField(label=_("Facility code"), max_length=20, required=False)

    def clean_facility(self) -> Facility | None:
        return facility_by_code(self.cleaned_data.get("facility"))


class ComplianceFilterForm(forms.Form):
    voivodeship = LocalChoiceField(
        Voivodeship.objects.order_by("name"),
        required=False,
        label=_("Voivodeship"),
        empty_label=ALL,
    )
    service = LocalChoiceField(
        Service.objects.order_by("code"),
        required=False,
        label=_("Service"),
        to_field_name="code",
        empty_label=ALL,
    )
    day = forms.DateField(
        required=False,
        label=_("Check day (default: the latest)"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    include_compliant = forms.BooleanField(required=False, label=_("Include compliant"))

    def filters(self) -> dict[str, Any]:
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "voivodeship_id": data["voivodeship"].pk if data.get("voivodeship") else None,
            "service_id": data["service"].pk if data.get("service") else None,
            "include_compliant": bool(data.get("include_compliant")),
        }


class OverrideForm(forms.Form):
    new_eligible = forms.TypedChoiceField(
        label=_("New verdict"),
        choices=[("yes", _("payable")), ("no", _("not payable"))],
        coerce=lambda v: v == "yes",
        widget=forms.RadioSelect,
    )
    justification = forms.CharField(
        label=_("Justification"), widget=forms.Textarea(attrs={"rows": 4}), max_length=4000
    )


class UploadForm(forms.Form):
    file = forms.FileField(label=_("CSV or JSON file"))

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = int(getattr(settings, "CER_VISIT_UPLOAD_MAX_BYTES", 20 * 1024 * 1024))
        if upload.size > limit:
            raise forms.ValidationError(
                _t("The file is too large (at most %(mb)s MB).") % {"mb": limit // (1024 * 1024)}
            )
        if not upload.name.lower().endswith((".csv", ".json")):
            raise forms.ValidationError(_t("Only .csv and .json files."))
        return upload


class WaitlistFilterForm(forms.Form):
    service = LocalChoiceField(
        Service.objects.order_by("code"), label=_("Service"), to_field_name="code", empty_label=None
    )
    voivodeship = LocalChoiceField(
        Voivodeship.objects.order_by("name"),
        required=False,
        label=_("Voivodeship (the patient's preference)"),
        empty_label=ALL,
    )
