"""Forms of the patient pages. Labels and errors follow the page language (gettext_lazy)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from apps.catalog import reference_cache
from apps.catalog.models import Facility, Service, Voivodeship
from apps.scheduling.selectors import Near

from . import sql

if TYPE_CHECKING:
    from .selectors import PlaceChoice

RADIUS_CHOICES = [
    ("", _("Only in this city")),
    ("10", "10 km"),
    ("25", "25 km"),
    ("50", "50 km"),
    ("100", "100 km"),
]
MAX_WINDOW_DAYS = 366
DATE_INPUT_FORMATS = ["%d.%m.%Y", "%Y-%m-%d"]


class PeselForm(forms.Form):
    pesel = forms.CharField(
        label=_("PESEL number"),
        min_length=11,
        max_length=11,
        help_text=_("11 digits. We send a one-time code to the phone number or e-mail you gave NFZ."),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "pattern": "[0-9]{11}"}),
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("One-time code"),
        min_length=6,
        max_length=7,
        help_text=_("6 digits from the message we sent you."),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )


class _CachedChoiceIterator(forms.models.ModelChoiceIterator):
    """The choices from the rows kept in the process (`reference_cache`), not a query per form."""

    field: _CachedModelChoiceField

    def __iter__(self) -> Any:
        rows = self.field.reference.rows()
        if rows is None:
            yield from super().__iter__()
            return
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in rows:
            yield self.choice(obj)

    def __len__(self) -> int:
        rows = self.field.reference.rows()
        return super().__len__() if rows is None else len(rows) + (self.field.empty_label is not None)


class _Kept:
    """A widget whose HTML is kept per class, name, value, attributes and language (shared by the
    processes' requests, at most `_limit` pieces): the search form's widgets are the same for every
    patient who searches the same way, and rendering each through the form renderer's templates was a
    visible share of the page (docs/performance.md)."""

    _rendered: dict[tuple[Any, ...], str] = {}
    _limit = 2000
    attrs: dict[str, Any]

    def _kept_options(self) -> Any:
        return None

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> Any:
        options = self._kept_options()
        if options is _NOT_KEPT:
            return super().render(name, value, attrs, renderer)  # type: ignore[misc]
        attributes = tuple(sorted({**self.attrs, **(attrs or {})}.items()))
        shown = (type(value).__name__, str(value))  # a date and its ISO text are drawn differently
        key = (type(self), getattr(self, "format", None), options, name, shown, attributes, get_language())
        html = self._rendered.get(key)
        if html is None:
            html = super().render(name, value, attrs, renderer)  # type: ignore[misc]
            if len(self._rendered) >= self._limit:
                self._rendered.clear()
            self._rendered[key] = html
        return html


_NOT_KEPT = object()


class _CachedSelect(_Kept, forms.Select):
    """A select whose HTML is kept (`_Kept`), also per list of options: for reference data per loaded
    copy of the rows (`generation`), else its values and labels in this language."""

    reference: reference_cache.ReferenceRows | None = None

    def _kept_options(self) -> Any:
        if self.reference is not None:
            if self.reference.rows() is None:
                return _NOT_KEPT
            return (id(self.reference), self.reference.generation)
        return tuple((str(v), str(label)) for v, label in self.choices)


class _CachedTextInput(_Kept, forms.TextInput):
    pass


class _CachedDateInput(_Kept, forms.DateInput):
    pass


class _CachedModelChoiceField(forms.ModelChoiceField):
    """A choice of reference data served from the process's copy (`reference_cache`): the list, the
    lookup of the chosen row and the rendered select; the database while the copy is bypassed."""

    iterator = _CachedChoiceIterator
    reference: reference_cache.ReferenceRows

    def __init__(self, *args: Any, reference: reference_cache.ReferenceRows, **kwargs: Any) -> None:
        self.reference = reference
        super().__init__(*args, widget=_CachedSelect, **kwargs)
        self.widget.reference = reference

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        result = super().__deepcopy__(memo)
        result.widget.reference = self.reference
        return result

    def to_python(self, value: Any) -> Any:
        if value in self.empty_values or self.to_field_name:
            return super().to_python(value)
        try:
            pk = self.reference.model._meta.pk.to_python(  # type: ignore[union-attr]
                value.pk if isinstance(value, Model) else value
            )
            found = self.reference.get(pk)
        except (ValidationError, LookupError, TypeError, ValueError):
            return super().to_python(value)
        if found is None:
            raise ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice", params={"value": value}
            )
        return found


class _ServiceChoiceField(_CachedModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name(get_language() or "pl"))


class _VoivodeshipChoiceField(_CachedModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name if (get_language() or "pl").startswith("pl") else obj.name_en)


class _FacilityChoiceField(forms.ModelChoiceField):
    """A place: its select lists only the places a view offers (`offer_places`), never every facility
    of the country (the queryset only validates the choice). The select's HTML is kept per list of
    places, value and language (`_CachedSelect`): the same area gives every patient the same list."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, widget=_CachedSelect, **kwargs)
        self.widget.choices = [("", self.empty_label)]

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        result = super().__deepcopy__(memo)  # a form's copy: its queryset's setter listed every row
        result.widget.choices = [("", result.empty_label)]
        return result

    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.locality.name})"


def offer_places(form: forms.Form, places: list[PlaceChoice] | None) -> None:
    """The select of a form's `facility` field lists these places (by name), plus the chosen one if it
    is not among them; with None (too many to list) the field is left out of the page (`places_offered`
    is False) and only a chosen place is kept, as a hidden field."""
    field = cast(_FacilityChoiceField, form.fields["facility"])
    chosen = str(form["facility"].value() or "").strip()
    form.places_offered = places is not None  # type: ignore[attr-defined]
    listed = [(p.pk, f"{p.name} ({p.locality_name})") for p in places or []]
    if chosen.isdigit() and chosen not in {str(pk) for pk, _label in listed}:
        found = Facility.objects.select_related("locality").filter(pk=int(chosen), active=True)
        listed = [*((f.pk, field.label_from_instance(f)) for f in found), *listed]
    field.widget.choices = [("", field.empty_label), *listed]


class PlaceAndDatesForm(forms.Form):
    """Where and when: the preferences shared by search and the waiting list."""

    voivodeship = _VoivodeshipChoiceField(
        queryset=Voivodeship.objects.all(),
        reference=reference_cache.VOIVODESHIPS,
        required=False,
        label=_("Voivodeship"),
        empty_label=_("Anywhere in Poland"),
    )
    city = forms.CharField(label=_("City or town"), required=False, max_length=100, widget=_CachedTextInput)
    radius_km = forms.TypedChoiceField(
        label=_("Distance from the city"),
        choices=RADIUS_CHOICES,
        required=False,
        coerce=int,
        empty_value=None,
        widget=_CachedSelect,
    )
    # A text field whose hint is what it accepts: a browser's date picker shows its own locale's order
    # (dd.mm.rrrr, mm/dd/yyyy...), which never matched a fixed hint. ISO still works (links, old URLs).
    date_from = forms.DateField(
        label=_("From date"),
        required=False,
        input_formats=DATE_INPUT_FORMATS,
        widget=_CachedDateInput(format="%d.%m.%Y", attrs={"inputmode": "numeric", "autocomplete": "off"}),
        help_text=_("Format: DD.MM.YYYY, e.g. 05.03.2027"),
    )
    date_to = forms.DateField(
        label=_("To date"),
        required=False,
        input_formats=DATE_INPUT_FORMATS,
        widget=_CachedDateInput(format="%d.%m.%Y", attrs={"inputmode": "numeric", "autocomplete": "off"}),
        help_text=_("Format: DD.MM.YYYY, e.g. 05.03.2027"),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        city = (data.get("city") or "").strip()
        data["locality"] = None
        if city:
            voivodeship = data.get("voivodeship")
            locality = sql.locality_named(name=city, voivodeship_id=voivodeship.pk if voivodeship else None)
            if locality is None:
                self.add_error("city", _("We do not know this city. Check the spelling."))
            data["locality"] = locality
        elif data.get("radius_km"):
            self.add_error("city", _("Enter the city to measure the distance from."))
        date_from, date_to = data.get("date_from"), data.get("date_to")
        if date_from and date_to and date_to < date_from:
            self.add_error("date_to", _("The end date must not be before the start date."))
        today = timezone.localdate()
        if date_to and date_to < today:
            self.add_error("date_to", _("The end date is in the past."))
        if date_from and date_from > today + dt.timedelta(days=MAX_WINDOW_DAYS):
            self.add_error("date_from", _("Choose a date within a year from today."))
        return data

    def near(self) -> Near | None:
        locality, radius = self.cleaned_data.get("locality"), self.cleaned_data.get("radius_km")
        if locality is not None and radius:
            return Near(lat=locality.lat, lon=locality.lon, radius_km=float(radius))
        return None


TIME_OF_DAY_CHOICES = [
    ("", _("Any time of day")),
    ("morning", _("Morning (before 12:00)")),
    ("afternoon", _("Afternoon (12:00-17:00)")),
    ("evening", _("Evening (from 17:00)")),
]
MAX_PAGE = 50


class SearchForm(PlaceAndDatesForm):
    service = _ServiceChoiceField(
        queryset=Service.objects.order_by("name_pl"),
        reference=reference_cache.SERVICES,
        label=_("Service"),
        empty_label=_("Choose a service"),
    )
    time_of_day = forms.ChoiceField(
        label=_("Time of day"), choices=TIME_OF_DAY_CHOICES, required=False, widget=_CachedSelect
    )
    # One place's dates, page by page: chosen in the select of the area's places (offered once the
    # service is known: `offer_places`), or by a result's "more dates at this place" link.
    facility = _FacilityChoiceField(
        queryset=Facility.objects.filter(active=True),
        required=False,
        label=_("Place"),
        empty_label=_("All places in the area"),
        help_text=_("The places with an NFZ contract for this service in the area you chose."),
    )
    page = forms.IntegerField(min_value=1, max_value=MAX_PAGE, required=False, widget=forms.HiddenInput)

    field_order = ["service", "voivodeship", "city", "radius_km", "date_from", "date_to", "time_of_day"]

    def offer_places(self, places: list[PlaceChoice] | None) -> None:
        offer_places(self, places)


class ReferralForm(forms.Form):
    referral_number = forms.CharField(label=_("E-referral number"), required=False, max_length=44)
    referral_code = forms.CharField(
        label=_("Access code (4 digits)"),
        required=False,
        max_length=4,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )

    def __init__(self, *args: Any, required: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.referral_required = required
        if required:
            for name in ("referral_number", "referral_code"):
                self.fields[name].required = True

    def clean_referral_code(self) -> str:
        code = (self.cleaned_data.get("referral_code") or "").strip()
        if code and (len(code) != 4 or not code.isdigit()):
            raise forms.ValidationError(_("The access code has exactly 4 digits."))
        return code


class WaitlistJoinForm(SearchForm, ReferralForm):
    field_order = [*SearchForm.field_order, "referral_number", "referral_code"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("time_of_day", "page"):  # search-only: the waiting list does not take them
            del self.fields[name]
        self.fields["facility"].widget = forms.HiddenInput()  # the place chosen in the search, if any

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        service = data.get("service")
        if service is not None and service.referral_required:
            for name in ("referral_number", "referral_code"):
                if not data.get(name) and name not in self.errors:
                    self.add_error(name, _("This service needs an e-referral: enter this field."))
        return data


class WaitlistPreferencesForm(PlaceAndDatesForm):
    """A waiting entry's preferences, all of them at once: an empty field means "any"."""

    facility = _FacilityChoiceField(
        queryset=Facility.objects.filter(active=True),
        required=False,
        label=_("Place"),
        empty_label=_("Any place in the area"),
        help_text=_("The places with an NFZ contract for this service in the area you chose."),
    )

    field_order = ["voivodeship", "city", "radius_km", "facility", "date_from", "date_to"]

    def __init__(self, *args: Any, registration: Any, **kwargs: Any) -> None:
        entry = registration
        kwargs.setdefault(
            "initial",
            {
                "voivodeship": entry.voivodeship_id,
                "city": entry.locality.name if entry.locality else "",
                "radius_km": str(entry.max_distance_km) if entry.max_distance_km else "",
                "facility": entry.facility_id,
                "date_from": entry.date_from,
                "date_to": entry.date_to,
            },
        )
        super().__init__(*args, **kwargs)
        self.registration = entry
        facility = cast(_FacilityChoiceField, self.fields["facility"])
        facility.queryset = Facility.objects.filter(
            active=True, contracts__service=entry.service_id
        ).distinct()
        facility.widget.choices = [("", facility.empty_label)]  # the view offers the area's places
        radius = cast(forms.TypedChoiceField, self.fields["radius_km"])
        if entry.max_distance_km and str(entry.max_distance_km) not in {v for v, _label in RADIUS_CHOICES}:
            # A distance a facility entered over the API (any number of km) stays a choice.
            radius.choices = [*RADIUS_CHOICES, (str(entry.max_distance_km), f"{entry.max_distance_km} km")]

    def offer_places(self, places: list[PlaceChoice] | None) -> None:
        offer_places(self, places)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        entry = self.registration
        city = (data.get("city") or "").strip()
        voivodeship = data.get("voivodeship")
        # The same name keeps the same town (names repeat: "Nowa Wieś" is in every voivodeship).
        same_town = entry.locality is not None and city.lower() == entry.locality.name.lower()
        if same_town and (voivodeship is None or voivodeship.pk == entry.locality.voivodeship_id):
            data["locality"] = entry.locality
        facility = data.get("facility")
        if facility is not None and "facility" not in self.errors and not self._in_area(facility, data):
            self.add_error(
                "facility",
                _("This place is not in the area you chose. Choose a place in it, or any place in the area."),
            )
        return data

    def _in_area(self, facility: Facility, data: dict[str, Any]) -> bool:
        from apps.scheduling.selectors import distance_km

        voivodeship, locality = data.get("voivodeship"), data.get("locality")
        if voivodeship is not None and facility.voivodeship_id != voivodeship.pk:
            return False
        near = self.near()
        if near is not None:
            return distance_km(near.lat, near.lon, facility.lat, facility.lon) <= near.radius_km
        return locality is None or facility.locality_id == locality.pk
