"""Patient pages: thin views over the booking services and selectors; they work without JavaScript.

Another patient's appointment id behaves exactly like a missing one (404), every write is a POST
with a CSRF token, and a refusal from a booking rule is shown in the page language with nothing
changed. The PESEL is only ever read from a POST body and never stored in the session.

A parent, legal guardian or authorised person acts for someone else through the same pages and the
same booking services (`apps.portal.acting`): `patient_required` hands each view the person acted
for, checked against the patient registry on every request.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from apps.booking import selectors as booking_selectors
from apps.booking import services as booking_services
from apps.booking.models import LIVE_APPOINTMENT, Appointment
from apps.core.errors import DomainError
from apps.notifications.selectors import inbox_list
from apps.notifications.services import DEV_OUTBOX_KEY, message_mark_read
from apps.operations.metrics import portal_refused
from apps.patients.models import Patient
from apps.scheduling.models import Slot
from apps.scheduling.selectors import Near, slot_search

from . import acting as acting_lib
from . import ics, manage, results, selectors
from .forms import CodeForm, PeselForm, ReferralForm, SearchForm, WaitlistJoinForm, WaitlistPreferencesForm
from .services import SignInError, login_code_request, login_code_verify, patient_user_link

SESSION_LOGIN_CODE = "portal_login_code"
SESSION_DECOY_ATTEMPTS = "portal_login_decoy"
SESSION_JUST_BOOKED = "portal_just_booked"  # the appointment whose page shows the confirmation panel
SESSION_HOLD_EXTENSIONS = "portal_hold_extensions"  # slot id -> how many times the hold was extended
HOLD_EXTENSIONS_MAX = 10  # WCAG 2.2.1 asks for at least 10 extensions
HOLD_WARNING_SECONDS = 120  # the warning shows this long before the hold ends
RESULTS = 10
PLACES_PER_PAGE = 5  # places on a page of search results, each with its earliest dates
SLOTS_PER_PLACE = 3

View = Callable[..., HttpResponse]


def _patient(request: HttpRequest) -> Patient:
    patient = selectors.patient_for_user(user_id=request.user.pk)
    if patient is None:
        raise Http404
    return patient


def patient_required(view: View | None = None, *, owner: Callable[..., int | None] | None = None) -> Any:
    """The view gets the patient the signed-in person acts for (themselves, or a person the registry
    lets them act for: `acting_lib.resolve`). `owner(**url kwargs)`: the patient the URL's object
    (appointment, waiting-list entry) belongs to; it decides, and a stranger's object is a 404."""

    def decorate(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            actor = _patient(request)
            patient_id = None
            if owner is not None:
                patient_id = owner(**kwargs)
                if patient_id is None:
                    raise Http404
            try:
                acting = acting_lib.resolve(request, actor, patient_id=patient_id)
            except DomainError as exc:
                portal_refused(exc)
                if owner is not None and exc.code == "acting_not_allowed":
                    raise Http404 from None  # another patient's appointment: as if it did not exist
                return _acting_refused(request, actor, exc)
            request.cer_acting = acting  # type: ignore[attr-defined]
            match = request.resolver_match
            page = match.url_name if match else view.__name__
            details = " ".join(f"{k}={v}" for k, v in kwargs.items())
            method = (request.method or "").lower()
            acting_lib.audit(request, acting, action=f"portal.{page}.{method} {details}".strip())
            return view(request, acting.patient, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def _appointment_owner(appointment_id: int, **_kwargs: Any) -> int | None:
    return selectors.appointment_owner(appointment_id=appointment_id)


def _registration_owner(registration_id: int, **_kwargs: Any) -> int | None:
    return selectors.registration_owner(registration_id=registration_id)


def _acting_refused(request: HttpRequest, actor: Patient, exc: DomainError) -> HttpResponse:
    """Acting for someone the registry does not allow: the choice page says why; nothing changed."""
    acting = acting_lib.resolve(request, actor, patient_id=actor.pk)
    request.cer_acting = acting  # type: ignore[attr-defined]
    return render(
        request,
        "portal/acting_for.html",
        {"acting": acting, "refusal": exc.message, "next": _safe_next(request, "")},
        status=exc.status,
    )


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


def _oidc_enabled() -> bool:
    return bool(getattr(settings, "OIDC_RP_CLIENT_ID", "")) and bool(
        getattr(settings, "OIDC_OP_TOKEN_ENDPOINT", "")
    )


# --- sign-in -----------------------------------------------------------------------------------------


@sensitive_post_parameters("pesel")
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    code_signin = settings.CER_PATIENT_CODE_SIGNIN
    if request.method == "POST" and not code_signin:
        raise Http404  # production signs patients in through the national login (OIDC) only
    form = PeselForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # Known or unknown PESEL, refused or not: the answer takes at least the same time (sending
        # the code is the slow part), so timing does not tell who is registered.
        floor = time.monotonic() + float(settings.CER_SIGNIN_MIN_SECONDS)
        try:
            code_id = login_code_request(
                pesel=form.cleaned_data["pesel"], address=str(request.META.get("REMOTE_ADDR", ""))
            )
        except SignInError as exc:
            form.add_error("pesel", exc.message)
            code_id = -1
        time.sleep(max(0.0, floor - time.monotonic()))
        if code_id != -1:
            # Unknown PESEL: the same next page, so the form does not tell who is registered.
            request.session[SESSION_LOGIN_CODE] = code_id or 0
            request.session[SESSION_DECOY_ATTEMPTS] = 0
            next_url = _safe_next(request, "")
            return redirect(
                reverse("portal:login_code") + (f"?{urlencode({'next': next_url})}" if next_url else "")
            )
    return render(
        request,
        "portal/login.html",
        {
            "form": form,
            "code_signin": code_signin,
            "oidc_enabled": _oidc_enabled(),
            "next": _safe_next(request, ""),
            "debug": settings.DEBUG,
        },
    )


@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def login_code_view(request: HttpRequest) -> HttpResponse:
    if not settings.CER_PATIENT_CODE_SIGNIN:
        raise Http404
    if SESSION_LOGIN_CODE not in request.session:
        return redirect("portal:login")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        code_id = request.session[SESSION_LOGIN_CODE]
        try:
            if not code_id:
                attempts = request.session.get(SESSION_DECOY_ATTEMPTS, 0) + 1
                request.session[SESSION_DECOY_ATTEMPTS] = attempts
                raise SignInError("wrong_code" if attempts < 5 else "code_expired")
            patient = login_code_verify(login_code_id=code_id, code=form.cleaned_data["code"])
        except SignInError as exc:
            form.add_error("code", exc.message)
        else:
            user = patient_user_link(patient=patient)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")  # rotates the session
            request.session.pop(SESSION_LOGIN_CODE, None)
            request.session.pop(SESSION_DECOY_ATTEMPTS, None)
            if patient.language:
                request.session["_language"] = patient.language
            return redirect(_safe_next(request, reverse("portal:appointments")))
    return render(
        request,
        "portal/login_code.html",
        {"form": form, "next": _safe_next(request, ""), "debug": settings.DEBUG},
    )


@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":  # a bookmarked or reloaded sign-out: nothing to do but go on
        return redirect("portal:appointments" if request.user.is_authenticated else "portal:home")
    logout(request)
    messages.success(request, _("You have signed out."))
    return redirect("portal:home")


def dev_outbox(request: HttpRequest) -> HttpResponse:
    """Development only: the messages just sent, sign-in codes included. 404 unless DEBUG."""
    if not settings.DEBUG:
        raise Http404
    return render(request, "portal/dev_outbox.html", {"entries": cache.get(DEV_OUTBOX_KEY) or []})


# --- whom the signed-in person books for --------------------------------------------------------------


@patient_required
@require_http_methods(["GET", "POST"])
def acting_for_view(request: HttpRequest, patient: Patient) -> HttpResponse:
    """Choose for whom to book: oneself, a child under 18, or an adult who authorised one (the patient
    registry's list). `patient_required` has checked and stored the posted choice already."""
    acting = request.cer_acting  # type: ignore[attr-defined]
    if request.method == "POST":
        messages.success(request, _("You are now booking for: %(name)s.") % {"name": acting.label})
        return redirect(_safe_next(request, reverse("portal:appointments")))
    return render(request, "portal/acting_for.html", {"acting": acting, "next": _safe_next(request, "")})


# --- search and booking ------------------------------------------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    """Search: places grouped with their earliest dates (paged by place), or one place's dates (paged
    by date) after "more dates at this place"; filters by time of day and place."""
    form = SearchForm(request.GET or None)
    slots: list[Slot] = []
    places: list[selectors.Place] = []
    more = False
    searched = False
    near: Near | None = None
    join_form = None
    already: dict[str, Any] = {}
    page = 1
    cards = mark_safe("")  # the one place's dates (markup)
    area: selectors.AreaPlaces | None = None  # read once for the grouped results and the place select
    if request.GET and form.is_valid():
        searched = True
        data = form.cleaned_data
        near = form.near()
        page = data.get("page") or 1
        if data.get("facility") is not None:
            slots, more = selectors.slot_page_search(
                service=data["service"],
                facility=data["facility"],
                time_of_day=data.get("time_of_day") or None,
                date_from=data.get("date_from"),
                date_to=data.get("date_to"),
                limit=RESULTS,
                offset=(page - 1) * RESULTS,
            )
            cards = results.cards_html(
                results.cards(slots, centre=near and data.get("locality")), grouped=False, request=request
            )
        else:
            area = selectors.area_places(
                service=data["service"],
                voivodeship=data.get("voivodeship"),
                locality=data.get("locality"),
                near=near,
            )
            places, more = selectors.place_search(
                service=data["service"],
                area=area,
                date_from=data.get("date_from"),
                date_to=data.get("date_to"),
                time_of_day=data.get("time_of_day") or None,
                places=PLACES_PER_PAGE,
                per_place=SLOTS_PER_PLACE,
                offset=(page - 1) * PLACES_PER_PAGE,
            )
            slots = [slot for place in places for slot in place.slots]
            centre = near and data.get("locality")
            for place in places:
                place.more_url = _page_query(request, 1, facility=place.facility.pk)
                place.distance = results.distance_text(place.distance_km, centre)
                place.cards = results.cards_html(
                    results.cards(place.slots, distances=False), grouped=True, request=request
                )
        # The place filter lists the places of the searched area (kept across pages: it is in the query).
        form.offer_places(
            selectors.facilities_in_area(
                service=data["service"],
                voivodeship=data.get("voivodeship"),
                locality=data.get("locality"),
                near=near,
                area=area,
            )
        )
        # One registration per service: someone already waiting (or booked) is shown that entry, beside
        # the dates found (booking one of them takes the entry's place), or instead of joining again.
        already = _existing_for_service(request, data["service"])
        if not slots and page == 1 and not already:
            join_form = WaitlistJoinForm(initial={**request.GET.dict()})
            if data["service"].referral_required:
                for name in ("referral_number", "referral_code"):
                    join_form.fields[name].required = True  # marked as required on the page
    return render(
        request,
        "portal/home.html",
        {
            "form": form,
            "slots": slots,
            "cards": cards,
            "places": places,
            "one_place": form.cleaned_data.get("facility") if searched else None,
            "searched": searched,
            "join_form": join_form,
            "service": form.cleaned_data.get("service") if searched else None,
            "preferences": form.cleaned_data if searched else None,
            "distance_from": near and form.cleaned_data.get("locality"),
            "next_page": _page_query(request, page + 1) if more else "",
            "previous_page": _page_query(request, page - 1) if searched and page > 1 else "",
            "all_places": _page_query(request, 1, facility=None) if searched else "",
            **already,
        },
    )


def _page_query(request: HttpRequest, page: int, **changes: Any) -> str:
    """The search's query string with another page (and these parameters changed, None: dropped), as
    `QueryDict.urlencode` writes it (without copying the QueryDict: a page makes up to eight)."""
    query = dict(request.GET.lists())
    query["page"] = [str(page)]
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = [str(value)]
    return "?" + urlencode([(key, value) for key, values in query.items() for value in values])


def _existing_for_service(request: HttpRequest, service: Any) -> dict[str, Any]:
    """The live registration for the service of the person the search is for (the signed-in patient
    or a dependant): their waiting-list entry and place, or their upcoming appointment. One query when
    there is none (the usual search)."""
    acting = acting_lib.current(request)
    if acting is None:
        return {}
    acting_lib.audit(request, acting, action="portal.home.get registrations")
    registration = selectors.live_registration_of(patient=acting.patient, service=service)
    if registration is None:
        return {}
    if registration.status == registration.Status.WAITING:
        position = booking_selectors.waitlist_position(registration=registration)
        return {"waiting_entry": registration, "waiting_position": position}
    booked = selectors.upcoming_appointment_of(registration=registration)
    return {"booked_appointment": booked} if booked is not None else {}


def facility_page(request: HttpRequest, facility_id: int) -> HttpResponse:
    """Where a visit takes place: address, phone, hours, accessibility, map and directions."""
    facility = selectors.facility_for_page(facility_id=facility_id)
    if facility is None:
        raise Http404
    lat, lon = f"{facility.lat:.5f}", f"{facility.lon:.5f}"
    return render(
        request,
        "portal/facility.html",
        {
            "facility": facility,
            "services": selectors.services_at_facility(facility=facility),
            "map_url": f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}",
            "directions_url": f"https://www.openstreetmap.org/directions?to={lat}%2C{lon}",
            "accessibility": [
                (_("Step-free entrance or ramp"), facility.has_ramp),
                (_("Lift"), facility.has_lift),
                (_("Parking"), facility.has_parking),
                (_("Accessible toilet"), facility.has_accessible_toilet),
            ],
        },
    )


def slot_page(request: HttpRequest, slot_id: int) -> HttpResponse:
    """One slot (the FHIR `booking-deep-link` points here, and "sign in to book this date" comes back
    here): what, when, where, and the button that holds it. A slot no longer free says so."""
    slot = selectors.slot_for_page(slot_id=slot_id)
    if slot is None:
        raise Http404
    free = slot.status == Slot.Status.FREE and slot.start > timezone.now()
    return render(
        request,
        "portal/slot.html",
        {"slot": slot, "free": free, "search": f"{reverse('portal:home')}?service={slot.service_id}"},
    )


@patient_required
@require_http_methods(["GET", "POST"])
def slot_hold_view(request: HttpRequest, patient: Patient, slot_id: int) -> HttpResponse:
    back = _safe_next(request, reverse("portal:home"))
    if request.method == "GET":  # e.g. back here after signing in: holding a slot needs a POST
        return redirect(back)
    extending = "extend" in request.POST
    if extending:
        # WCAG 2.2.1: the patient may ask for more time, up to HOLD_EXTENSIONS_MAX times per slot.
        counts = request.session.get(SESSION_HOLD_EXTENSIONS, {})
        if counts.get(str(slot_id), 0) >= HOLD_EXTENSIONS_MAX:
            messages.error(request, _("The date cannot be kept any longer. Book it now or choose again."))
            return redirect(
                reverse("portal:booking_summary", args=[slot_id]) + f"?{urlencode({'next': back})}"
            )
        counts[str(slot_id)] = counts.get(str(slot_id), 0) + 1
        request.session[SESSION_HOLD_EXTENSIONS] = counts
    try:
        booking_services.slot_hold(slot_id=slot_id, patient=patient)
    except DomainError as exc:
        portal_refused(exc)
        existing = selectors.live_appointment_on_slot(patient=patient, slot_id=slot_id)
        if existing is not None:
            return redirect("portal:appointment", appointment_id=existing.pk)
        messages.error(request, exc.message)
        return redirect(back)
    if extending:
        minutes = int(settings.CER_HOLD_SECONDS) // 60
        messages.success(
            request, _("We keep the date for you for another %(minutes)s minutes.") % {"minutes": minutes}
        )
    return redirect(reverse("portal:booking_summary", args=[slot_id]) + f"?{urlencode({'next': back})}")


@patient_required
@require_http_methods(["GET", "POST"])
def booking_summary(request: HttpRequest, patient: Patient, slot_id: int) -> HttpResponse:
    """Step 2 of booking: the held slot, the e-referral if needed, and the "book" button.

    A second click on "book" (or a replayed form) finds the booking already made and shows it.
    """
    back = _safe_next(request, reverse("portal:home"))
    slot = selectors.held_slot_get(patient=patient, slot_id=slot_id, now=timezone.now())
    if slot is None:
        # Not held (any more): booked by this patient (a replayed form, or the other click of a
        # double-click that has just committed), or the hold ran out. Asked in this order, there is no
        # moment in which a booking just made reads as an expired hold.
        existing = selectors.live_appointment_on_slot(patient=patient, slot_id=slot_id)
        if existing is not None:
            messages.info(request, _("This appointment is booked."))
            return redirect("portal:appointment", appointment_id=existing.pk)
        portal_refused(DomainError("hold_expired"))
        messages.error(request, DomainError("hold_expired").message)
        return redirect(back)
    form = ReferralForm(request.POST or None, required=slot.service.referral_required)
    refusal = None
    if request.method == "POST":
        if "release" in request.POST:
            booking_services.slot_release_hold(slot_id=slot_id, patient=patient)
            messages.info(request, _("The slot was released. You can choose another one."))
            return redirect(back)
        if form.is_valid():
            try:
                appointment = booking_services.appointment_book(
                    slot_id=slot_id,
                    patient=patient,
                    channel=Appointment.Channel.WEB,
                    referral_number=form.cleaned_data.get("referral_number") or None,
                    referral_code=form.cleaned_data.get("referral_code") or None,
                )
            except DomainError as exc:
                portal_refused(exc)
                existing = selectors.live_appointment_on_slot(patient=patient, slot_id=slot_id)
                if existing is not None:  # the first click of a double-click won the race
                    return redirect("portal:appointment", appointment_id=existing.pk)
                if exc.field and exc.field in form.fields:
                    form.add_error(exc.field, exc.message)
                else:
                    refusal = exc.message
            else:
                # Not a flash: the appointment's page opens with a panel that takes the focus and says
                # what happens next (once; a reload shows the plain page).
                request.session[SESSION_JUST_BOOKED] = appointment.pk
                return redirect("portal:appointment", appointment_id=appointment.pk)
    return render(
        request,
        "portal/booking_summary.html",
        {
            "slot": slot,
            "form": form,
            "refusal": refusal,
            "next": back,
            "hold_until": slot.hold_until,
            # Whole seconds left, from the server's clock (the browser's may be off): the warning's timer.
            "hold_seconds_left": max(
                0, int(((slot.hold_until or timezone.now()) - timezone.now()).total_seconds())
            ),
            "hold_warning_seconds": HOLD_WARNING_SECONDS,
        },
    )


# --- my appointments ---------------------------------------------------------------------------------


@patient_required
def appointments(request: HttpRequest, patient: Patient) -> HttpResponse:
    upcoming = list(booking_selectors.appointment_list_for_patient(patient=patient, upcoming=True))
    past = list(booking_selectors.appointment_list_for_patient(patient=patient, upcoming=False)[:50])
    waiting = booking_selectors.waitlist_entries_for_patient(patient=patient)
    return render(
        request, "portal/appointments.html", {"upcoming": upcoming, "past": past, "waiting": waiting}
    )


def _own_appointment(patient: Patient, appointment_id: int) -> Appointment:
    appointment = booking_selectors.appointment_get_for_patient(
        patient=patient, appointment_id=appointment_id
    )
    if appointment is None:
        raise Http404
    return appointment


@patient_required(owner=_appointment_owner)
def appointment_detail(request: HttpRequest, patient: Patient, appointment_id: int) -> HttpResponse:
    appointment = _own_appointment(patient, appointment_id)
    just_booked = request.session.get(SESSION_JUST_BOOKED) == appointment.pk
    if just_booked:
        del request.session[SESSION_JUST_BOOKED]
    return render(
        request,
        "portal/appointment_detail.html",
        {
            "appointment": appointment,
            "live": _is_live(appointment),
            "past": appointment.start <= timezone.now(),
            "from_waitlist": appointment.channel == Appointment.Channel.WAITLIST,
            "just_booked": just_booked,
        },
    )


def _is_live(appointment: Appointment) -> bool:
    """Still to come and still booked: only then can it be confirmed, moved or cancelled."""
    return appointment.status in LIVE_APPOINTMENT and appointment.start > timezone.now()


def _not_live_redirect(request: HttpRequest, appointment: Appointment) -> HttpResponse:
    """A cancelled, moved or past appointment's cancel or reschedule page: its own page says why."""
    return redirect("portal:appointment", appointment_id=appointment.pk)


def _act(
    request: HttpRequest, appointment: Appointment, action: Callable[[], Any], done: str
) -> HttpResponse:
    try:
        action()
    except DomainError as exc:
        portal_refused(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("portal:appointment", appointment_id=appointment.pk)


@patient_required(owner=_appointment_owner)
@require_http_methods(["GET", "POST"])
def appointment_confirm(request: HttpRequest, patient: Patient, appointment_id: int) -> HttpResponse:
    appointment = _own_appointment(patient, appointment_id)
    if request.method == "GET":  # reloaded after a language switch, or a link: the page it acts on
        return redirect("portal:appointment", appointment_id=appointment.pk)
    return _act(
        request,
        appointment,
        lambda: booking_services.appointment_confirm(appointment=appointment),
        _("Thank you. Your attendance is confirmed."),
    )


@patient_required(owner=_appointment_owner)
@require_http_methods(["GET", "POST"])
def appointment_cancel(request: HttpRequest, patient: Patient, appointment_id: int) -> HttpResponse:
    appointment = _own_appointment(patient, appointment_id)
    if request.method == "POST":
        return _act(
            request,
            appointment,
            lambda: booking_services.appointment_cancel_by_patient(appointment=appointment),
            _("The appointment is cancelled. The slot goes back to other patients."),
        )
    if not _is_live(appointment):
        return _not_live_redirect(request, appointment)
    return render(request, "portal/appointment_cancel.html", {"appointment": appointment})


@patient_required(owner=_appointment_owner)
@require_http_methods(["GET", "POST"])
def appointment_release(request: HttpRequest, patient: Patient, appointment_id: int) -> HttpResponse:
    appointment = _own_appointment(patient, appointment_id)
    if request.method == "GET":
        return redirect("portal:appointment", appointment_id=appointment.pk)
    try:
        booking_services.allocation_release(appointment=appointment)
    except DomainError as exc:
        portal_refused(exc)
        messages.error(request, exc.message)
        return redirect("portal:appointment", appointment_id=appointment.pk)
    messages.success(request, _("The slot was released. You keep your place on the waiting list."))
    return redirect("portal:appointments")


@patient_required(owner=_appointment_owner)
@require_http_methods(["GET", "POST"])
def appointment_reschedule(request: HttpRequest, patient: Patient, appointment_id: int) -> HttpResponse:
    appointment = _own_appointment(patient, appointment_id)
    if request.method == "POST":
        try:
            slot_id = int(request.POST.get("slot", ""))
        except ValueError:
            raise Http404 from None
        try:
            new = booking_services.appointment_reschedule(appointment=appointment, new_slot_id=slot_id)
        except DomainError as exc:
            portal_refused(exc)
            messages.error(request, exc.message)
            return redirect("portal:appointment_reschedule", appointment_id=appointment.pk)
        messages.success(request, _("Your appointment has been moved."))
        return redirect("portal:appointment", appointment_id=new.pk)
    if not _is_live(appointment):
        return _not_live_redirect(request, appointment)
    form = SearchForm(request.GET or None, initial={"service": appointment.service_id})
    form.fields["service"].disabled = True
    slots: list[Slot] = []
    if appointment.status in LIVE_APPOINTMENT:
        filters: dict[str, Any] = {"service": appointment.service, "limit": RESULTS}
        if request.GET and form.is_valid():
            data = form.cleaned_data
            near = form.near()
            filters.update(
                voivodeship=data.get("voivodeship"),
                locality=data.get("locality") if near is None else None,
                near=near,
                date_from=data.get("date_from"),
                date_to=data.get("date_to"),
            )
        else:
            filters["voivodeship"] = appointment.facility.voivodeship_id
        slots = slot_search(**filters)
    return render(
        request,
        "portal/appointment_reschedule.html",
        {"appointment": appointment, "form": form, "slots": slots},
    )


@patient_required(owner=_appointment_owner)
def appointment_ics(request: HttpRequest, patient: Patient, appointment_id: int) -> HttpResponse:
    appointment = _own_appointment(patient, appointment_id)
    response = HttpResponse(
        ics.appointment_ics(appointment=appointment, language=translation.get_language() or "pl"),
        content_type="text/calendar; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="wizyta-{appointment.pk}.ics"'
    return response


# --- the signed manage link of messages (no sign-in) ----------------------------------------------------


MANAGE_ACTIONS = ("confirm", "cancel", "reschedule")


@require_http_methods(["GET", "POST"])
def manage_view(request: HttpRequest, token: str) -> HttpResponse:
    """Confirm, cancel or move one appointment from the link in an SMS or e-mail, in one step."""
    if manage.limited(token=token, address=str(request.META.get("REMOTE_ADDR", ""))):
        return render(request, "portal/manage_invalid.html", {"limited": True}, status=429)
    appointment = manage.appointment_for_token(token)
    if appointment is None:
        return render(request, "portal/manage_invalid.html", {"limited": False}, status=404)
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action not in MANAGE_ACTIONS:
            return redirect("portal:manage", token=token)
        manage.audit(appointment=appointment, action=action)
        try:
            if action == "confirm":
                booking_services.appointment_confirm(appointment=appointment)
                messages.success(request, _("Thank you. Your attendance is confirmed."))
            elif action == "cancel":
                booking_services.appointment_cancel_by_patient(appointment=appointment)
                messages.success(
                    request, _("The appointment is cancelled. The slot goes back to other patients.")
                )
            else:
                try:
                    slot_id = int(request.POST.get("slot", ""))
                except ValueError:
                    return redirect("portal:manage", token=token)
                new = booking_services.appointment_reschedule(appointment=appointment, new_slot_id=slot_id)
                messages.success(request, _("Your appointment has been moved."))
                return redirect("portal:manage", token=manage.manage_token(appointment_id=new.pk))
        except DomainError as exc:
            portal_refused(exc)
            messages.error(request, exc.message)
        return redirect("portal:manage", token=token)
    manage.audit(appointment=appointment, action="view")
    live = _is_live(appointment)
    other_dates = (
        selectors.slot_page_search(service=appointment.service, facility=appointment.facility, limit=5)[0]
        if live
        else []
    )
    return render(
        request,
        "portal/manage.html",
        {
            "appointment": appointment,
            "live": live,
            "other_dates": other_dates,
            "moved_to": manage.manage_token(appointment_id=appointment.rescheduled_to_id)
            if appointment.rescheduled_to_id
            else "",
        },
    )


# --- waiting list --------------------------------------------------------------------------------------


@patient_required
@require_http_methods(["GET", "POST"])
def waitlist_join(request: HttpRequest, patient: Patient) -> HttpResponse:
    if request.method == "GET":
        # The error page reloaded or its language switched (a POST-only URL gave a blank 405): the
        # waiting list's own page, which says how to join.
        return redirect("portal:waitlist")
    form = WaitlistJoinForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            booking_services.waitlist_join(
                patient=patient,
                service=data["service"],
                referral_number=data.get("referral_number") or None,
                referral_code=data.get("referral_code") or None,
                date_from=data.get("date_from"),
                date_to=data.get("date_to"),
                voivodeship=data.get("voivodeship"),
                locality=data.get("locality"),
                max_distance_km=data.get("radius_km"),
                facility=data.get("facility"),
            )
        except DomainError as exc:
            portal_refused(exc)
            if exc.field and exc.field in form.fields:
                form.add_error(exc.field, exc.message)
            else:
                form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                _("You joined the waiting list. We will book the first matching slot and let you know."),
            )
            return redirect("portal:waitlist")
    return render(request, "portal/waitlist_join.html", {"form": form}, status=400)


@patient_required
def waitlist(request: HttpRequest, patient: Patient) -> HttpResponse:
    entries = booking_selectors.waitlist_entries_for_patient(patient=patient)
    return render(request, "portal/waitlist.html", {"entries": entries})


def _entry_gone() -> str:
    return _("This entry is no longer on the waiting list. A date booked for you is in My appointments.")


@patient_required(owner=_registration_owner)
@require_http_methods(["GET", "POST"])
def waitlist_preferences(request: HttpRequest, patient: Patient, registration_id: int) -> HttpResponse:
    """See and change a waiting entry's preferences; its place in the queue stays (the order does not
    depend on preferences: `booking_services.waitlist_preferences_update`)."""
    entry = selectors.waiting_registration_get(patient=patient, registration_id=registration_id)
    if entry is None:  # allocated or left meanwhile (another patient's entry is a 404, as elsewhere)
        messages.info(request, _entry_gone())
        return redirect("portal:waitlist")
    form = WaitlistPreferencesForm(request.POST or None, registration=entry)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            facility = data.get("facility")
            try:
                booking_services.waitlist_preferences_update(
                    registration=entry,
                    date_from=data.get("date_from"),
                    date_to=data.get("date_to"),
                    voivodeship=data.get("voivodeship"),
                    locality=data.get("locality"),
                    max_distance_km=data.get("radius_km"),
                    facility=facility,
                    # A doctor (set by the facility that registered the entry) goes with their place.
                    practitioner=entry.practitioner
                    if facility and facility.pk == entry.facility_id
                    else None,
                )
            except DomainError as exc:
                portal_refused(exc)
                if exc.code == "waitlist_entry_not_found":
                    messages.error(request, _entry_gone())
                    return redirect("portal:waitlist")
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(
                    request, _("Your preferences are saved. Your place in the queue has not changed.")
                )
                return redirect("portal:waitlist")
        status = 400
    area = form.cleaned_data if form.is_bound and hasattr(form, "cleaned_data") else None
    form.offer_places(
        selectors.facilities_in_area(
            service=entry.service,
            voivodeship=area.get("voivodeship") if area else entry.voivodeship,
            locality=area.get("locality") if area else entry.locality,
            near=form.near() if area else _entry_near(entry),
        )
    )
    return render(
        request,
        "portal/waitlist_preferences.html",
        {"entry": entry, "form": form, "position": booking_selectors.waitlist_position(registration=entry)},
        status=status,
    )


def _entry_near(entry: Any) -> Near | None:
    if entry.locality is not None and entry.max_distance_km:
        return Near(lat=entry.locality.lat, lon=entry.locality.lon, radius_km=float(entry.max_distance_km))
    return None


@patient_required(owner=_registration_owner)
@require_http_methods(["GET", "POST"])
def waitlist_leave(request: HttpRequest, patient: Patient, registration_id: int) -> HttpResponse:
    if request.method == "GET":
        return redirect("portal:waitlist")
    registration = selectors.waiting_registration_get(patient=patient, registration_id=registration_id)
    if registration is None:
        raise Http404
    try:
        booking_services.waitlist_leave(registration=registration)
    except DomainError as exc:
        portal_refused(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, _("You left the waiting list."))
    return redirect("portal:waitlist")


# --- in-app messages -----------------------------------------------------------------------------------


@patient_required
def inbox(request: HttpRequest, patient: Patient) -> HttpResponse:
    if request.method == "POST":
        with contextlib.suppress(ValueError):
            message_mark_read(patient=patient, message_id=int(request.POST.get("message", "")))
        return redirect("portal:inbox")
    items = inbox_list(patient=patient)
    return render(request, "portal/inbox.html", {"items": items})
