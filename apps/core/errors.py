"""One error path for the whole system.

Services raise `DomainError(code, **params)`. The code is stable and machine-readable; the message
exists in Polish and English and is written for a patient, not a developer. The API renders it as
RFC 9457 problem+json (`apps.core.api_errors`), the HTML pages show the same message in the form.
New codes are added to `MESSAGES` (the test suite checks that every raised code has both languages).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import dateformat, timezone, translation

# code -> (HTTP status, Polish message, English message). Messages may use {named} params.
MESSAGES: dict[str, tuple[int, str, str]] = {
    "validation_error": (400, "Dane są niepoprawne.", "The data is not valid."),
    "not_found": (404, "Nie znaleziono.", "Not found."),
    "unknown_service": (
        404,
        "Nie ma takiego świadczenia: {service}.",
        "There is no such service: {service}.",
    ),
    "service_not_covered": (
        409,
        "Świadczenie {service_name} nie jest objęte Centralną e-Rejestracją w dniu {date}.",
        "The service {service_name} is not covered by Central e-Registration on {date}.",
    ),
    "invalid_pesel": (
        400,
        "Numer PESEL jest niepoprawny: {reason}.",
        "The PESEL number is not valid: {reason}.",
    ),
    "slot_not_found": (404, "Nie ma takiego terminu.", "There is no such appointment slot."),
    # --- reimbursement reconciliation (staff pages, import, reconcile command) ---
    "reconciliation_busy": (
        409,
        "Rozliczenie tego okresu ({scope}) już trwa. Poczekaj na jego zakończenie.",
        "A reconciliation of this period ({scope}) is already running. Wait until it finishes.",
    ),
    "reconciliation_run_state": (
        409,
        "Tego przebiegu rozliczenia nie można uruchomić (stan: {state}).",
        "This reconciliation run cannot be started (state: {state}).",
    ),
    "invalid_period": (400, "Niepoprawny okres: {value}.", "Invalid period: {value}."),
    "import_unreadable": (
        400,
        "Nie można odczytać pliku: {reason}.",
        "The file cannot be read: {reason}.",
    ),
    "justification_required": (
        400,
        "Podaj uzasadnienie zmiany werdyktu.",
        "Give a justification for changing the verdict.",
    ),
    "override_unchanged": (
        409,
        "Werdykt ma już tę wartość.",
        "The verdict already has this value.",
    ),
    "reconciliation_period_open": (
        409,
        "Okresu {period} nie można jeszcze rozliczyć: jeszcze się nie zakończył.",
        "The period {period} cannot be reconciled yet: it has not ended.",
    ),
    # --- the integration API's protocol (facility systems) ---
    "invalid_idempotency_key": (
        400,
        "Nagłówek Idempotency-Key musi mieć od 1 do 255 drukowalnych znaków ASCII.",
        "Idempotency-Key must be 1-255 printable ASCII characters.",
    ),
    "idempotency_key_reused": (
        422,
        "Ten Idempotency-Key użyto już dla innego żądania (metoda, ścieżka lub treść). Użyj nowego klucza.",
        "This Idempotency-Key was used for a different request (method, path or body). Use a new key.",
    ),
    "idempotency_in_progress": (
        409,
        "Pierwsze żądanie z tym kluczem jeszcze trwa. Ponów je za chwilę.",
        "The first request with this key is still running. Retry in a moment.",
    ),
    "rate_limited": (
        429,
        "Za dużo żądań: limit to {limit} na okno czasowe. Ponów za {reset} s.",
        "Too many requests: the limit is {limit} per window. Retry in {reset} s.",
    ),
    "invalid_cursor": (
        400,
        "Kursor jest niepoprawny: użyj wartości `next` z poprzedniej odpowiedzi.",
        "The cursor is not valid: use `next` as returned.",
    ),
    "precondition_required": (
        428,
        "Wymagany jest nagłówek If-Match z aktualnym ETag (z odpowiedzi na GET).",
        "If-Match is required: send the current ETag (from GET).",
    ),
    "invalid_scope": (
        400,
        "Nieznane lub puste zakresy uprawnień: {unknown}. Dostępne: {known}.",
        "Unknown or empty scopes: {unknown}. Known: {known}.",
    ),
    "invalid_expiry": (400, "Ważność musi wynosić od 1 do 3650 dni.", "Validity must be 1 to 3650 days."),
    "api_client_not_found": (404, "Nie ma takiego klienta API.", "There is no such API client."),
    "api_client_inactive": (
        409,
        "Ten klient API jest odwołany lub wygasł.",
        "This API client is revoked or expired.",
    ),
    "schedule_not_found": (
        404,
        "Nie ma takiego harmonogramu w Twojej placówce.",
        "There is no such schedule in your facility.",
    ),
    "practitioner_not_found": (
        404,
        "Nie ma takiego lekarza w Twojej placówce.",
        "There is no such practitioner in your facility.",
    ),
    "webhook_not_found": (
        404,
        "Nie ma takiej subskrypcji webhooka.",
        "There is no such webhook subscription.",
    ),
    "delivery_not_found": (404, "Nie ma takiego doręczenia webhooka.", "There is no such webhook delivery."),
    "patient_not_found": (
        404,
        "CeR nie zna pacjenta o tym numerze PESEL. Aby zarejestrować nową osobę, wyślij także obiekt "
        "`patient` z imieniem i nazwiskiem potwierdzonymi w placówce (telefon i e-mail opcjonalnie).",
        "No patient with this PESEL is known to CeR. To register a new person, also send `patient` "
        "with the first and last name confirmed at your facility (phone and e-mail optional).",
    ),
    "generate_until_too_far": (
        400,
        "Terminy można generować najwyżej dwa lata naprzód.",
        "Slots can be generated at most two years ahead.",
    ),
    "visits_batch_too_large": (
        413,
        "Za dużo wizyt w jednym żądaniu ({count}); najwyżej {limit}. Podziel je na kilka żądań.",
        "Too many visits in one request ({count}); at most {limit}. Split them into several requests.",
    ),
    "facility_forbidden": (
        403,
        "Możesz zgłaszać tylko wizyty własnej placówki ({own}).",
        "You can only report visits of your own facility ({own}).",
    ),
    "precondition_failed": (
        412,
        "Ktoś inny zmienił ten zasób w międzyczasie. Odczytaj go ponownie i ponów zmianę.",
        "Someone else changed this resource meanwhile. Read it again (GET) and retry with its current "
        "ETag in If-Match.",
    ),
    "slot_in_past": (409, "Ten termin już minął.", "This appointment slot is in the past."),
    "slot_not_free": (
        409,
        "Ten termin jest już zajęty lub niedostępny. Wybierz inny.",
        "This appointment slot is already taken or unavailable. Please choose another one.",
    ),
    "hold_expired": (
        409,
        "Czas na potwierdzenie rezerwacji minął. Wybierz termin ponownie.",
        "The time to confirm the booking has run out. Please choose the slot again.",
    ),
    "hold_not_yours": (
        409,
        "Ten termin jest zarezerwowany dla innej osoby.",
        "This slot is held for someone else.",
    ),
    "active_registration_exists": (
        409,
        "Masz już aktywną rejestrację na to świadczenie ({existing}). Możesz zmienić jej termin.",
        "You already have an active registration for this service ({existing}). You can reschedule it.",
    ),
    "referral_required": (
        400,
        "To świadczenie wymaga e-skierowania: podaj numer i 4-cyfrowy kod dostępu.",
        "This service requires an e-referral: enter its number and 4-digit access code.",
    ),
    "referral_invalid": (
        400,
        "Nie znaleziono e-skierowania o tym numerze i kodzie dostępu.",
        "No e-referral matches this number and access code.",
    ),
    "referral_used": (
        409,
        "To e-skierowanie zostało już wykorzystane.",
        "This e-referral has already been used.",
    ),
    "referral_expired": (
        409,
        "To e-skierowanie straciło ważność {date}.",
        "This e-referral expired on {date}.",
    ),
    "referral_wrong_service": (
        409,
        "To e-skierowanie dotyczy innego świadczenia ({service}).",
        "This e-referral is for another service ({service}).",
    ),
    "referral_registered": (
        409,
        "To e-skierowanie jest już zarejestrowane na inną wizytę lub w Poczekalni. Odwołaj tamtą "
        "rejestrację, aby użyć go ponownie.",
        "This e-referral is already registered for another appointment or on the waiting list. Cancel "
        "that registration to use it again.",
    ),
    "referral_locked": (
        429,
        "Zbyt wiele błędnych prób dla tego e-skierowania. Spróbuj ponownie za {minutes} min.",
        "Too many wrong attempts for this e-referral. Try again in {minutes} min.",
    ),
    "slot_kind_mismatch": (
        409,
        "Ten termin jest przeznaczony na wizytę kontynuacyjną, a nie na pierwszą wizytę.",
        "This slot is for a follow-up visit, not for a first visit.",
    ),
    "not_eligible_sex": (
        409,
        "To badanie przesiewowe jest przeznaczone dla innej grupy pacjentów.",
        "This screening test is meant for another group of patients.",
    ),
    "not_eligible_age": (
        409,
        "To badanie jest dla osób w wieku {age_min}-{age_max} lat (liczy się rok urodzenia).",
        "This test is for people aged {age_min}-{age_max} (by year of birth).",
    ),
    "not_eligible_interval": (
        409,
        "Poprzednie badanie wykonano {last}. Kolejne będzie możliwe od {next}.",
        "Your previous test was on {last}. The next one is possible from {next}.",
    ),
    "booking_not_found": (404, "Nie ma takiej wizyty.", "There is no such appointment."),
    "booking_state": (
        409,
        "Tej wizyty nie można już {action} (stan: {state}).",
        "This appointment can no longer be {action} (state: {state}).",
    ),
    "outcome_too_early": (
        409,
        "Wynik wizyty można zgłosić dopiero po jej rozpoczęciu.",
        "The outcome can only be reported once the visit has started.",
    ),
    "waitlist_entry_not_found": (
        404,
        "Nie ma takiego wpisu w Poczekalni.",
        "There is no such waiting-list entry.",
    ),
    "waitlist_entry_not_waiting": (
        409,
        "Ten wpis nie czeka już w Poczekalni (stan: {state}). Jeśli pacjent dostał termin, odwołaj "
        "tę wizytę.",
        "This entry is no longer waiting (state: {state}). If the patient was given an appointment, "
        "cancel that booking instead.",
    ),
    "waitlist_window_invalid": (
        400,
        "Zakres dat jest niepoprawny: data końcowa nie może być wcześniejsza niż dziś ani niż data "
        "początkowa, a obie muszą przypadać najwyżej {days} dni od dziś.",
        "The date window is not valid: date_to may not be before today or before date_from, and "
        "both must be at most {days} days from today.",
    ),
    "waitlist_preference_unknown": (
        400,
        "Preferencja {preference} wskazuje coś, czego nie ma w katalogu (kod TERYT województwa, kod SIMC "
        "miejscowości, kod NFZ placówki albo lekarz tej placówki).",
        "The preference {preference} names nothing in the catalogue (voivodeship TERYT code, locality SIMC "
        "code, facility NFZ code, or a practitioner of that facility).",
    ),
    "unknown_entitlement": (
        400,
        "Nieznany kod uprawnienia: {entitlement}. Kody: GET /api/v1/entitlements.",
        "Unknown entitlement code: {entitlement}. Codes: GET /api/v1/entitlements.",
    ),
    "entitlement_not_valid": (
        400,
        "Dokument uprawnienia musi być ważny dziś ({today}): valid_from nie później, valid_to nie wcześniej.",
        "The entitlement document must be valid today ({today}): valid_from not later, valid_to not earlier.",
    ),
    "schedule_overlap": (
        409,
        "Terminy w tym harmonogramie nachodzą na siebie.",
        "Slots in this schedule overlap.",
    ),
    "reason_required": (400, "Podaj powód.", "Give a reason."),
    "unknown_reason": (400, "Nieznany kod powodu: {reason}.", "Unknown reason code: {reason}."),
    "facility_not_contracted": (
        409,
        "Placówka nie ma umowy z NFZ na to świadczenie w tym okresie.",
        "The facility has no NFZ contract for this service in that period.",
    ),
    "slot_beyond_horizon": (
        400,
        "Termin można opublikować najwyżej {days} dni naprzód.",
        "A slot can be published at most {days} days ahead.",
    ),
    "webhook_target_refused": (
        400,
        "Ten adres nie może odbierać webhooków: wymagany jest https, port {ports} i publiczny adres IP.",
        "This URL cannot receive webhooks: it needs https, port {ports} and a public IP address.",
    ),
    "slot_too_long": (
        400,
        "Termin tego świadczenia może trwać najwyżej {minutes} min.",
        "A slot of this service may last at most {minutes} minutes.",
    ),
    # --- open interfaces: FHIR read API, SMART bulk publication, open data (apps.fhir, apps.opendata) ---
    "fhir_unknown_parameter": (
        400,
        "Nieobsługiwany parametr wyszukiwania: {name}.",
        "Unsupported search parameter: {name}.",
    ),
    "fhir_invalid_parameter": (
        400,
        "Niepoprawna wartość parametru {name}.",
        "Invalid value of the parameter {name}.",
    ),
    "fhir_resource_not_found": (
        404,
        "Nie ma zasobu {resource} o identyfikatorze {id}.",
        "There is no {resource} with the id {id}.",
    ),
    "fhir_unsupported": (
        404,
        "Ten serwer FHIR nie obsługuje: {what}.",
        "This FHIR server does not support: {what}.",
    ),
    "opendata_invalid_parameter": (
        400,
        "Niepoprawna wartość parametru {name}.",
        "Invalid value of the parameter {name}.",
    ),
    "extract_not_found": (
        404,
        "Nie ma takiego pliku wyciągu badawczego.",
        "There is no such research extract file.",
    ),
}


# The same refusal worded for a facility system (integration API) where the patient's wording would
# mislead: the caller is not the patient. Same code and status; only the text differs.
FACILITY_MESSAGES: dict[str, tuple[str, str]] = {
    "active_registration_exists": (
        "Pacjent ma już aktywną rejestrację na to świadczenie ({existing}). Jedna rejestracja na "
        "świadczenie w całym kraju: zmień jej termin albo odwołaj ją.",
        "The patient already has an active registration for this service ({existing}). One "
        "registration per service in the whole country: reschedule or cancel that one.",
    ),
    "referral_required": (
        "To świadczenie wymaga e-skierowania: podaj jego numer i 4-cyfrowy kod dostępu.",
        "This service requires an e-referral: send referral_number and its 4-digit referral_code.",
    ),
}


def localised(pl: str, en: str) -> dict[str, str]:
    """A message parameter in both languages: each message picks the one it is written in."""
    return {"pl": pl, "en": en}


def param_in(value: Any, language: str) -> str:
    """A message parameter in one language: a {"pl": ..., "en": ...} pair picks its own. A date stays
    ISO 8601 here (the API's machine-readable `params`); `message_param` words it for people."""
    if isinstance(value, dict) and "pl" in value and "en" in value:
        return str(value["pl"] if language.startswith("pl") else value["en"])
    return str(value)


def message_param(value: Any, language: str) -> str:
    """A parameter as the message text shows it: dates as people write them ("5 marca 2027",
    "5 March 2027"), date-times with the Warsaw wall-clock time, everything else as `param_in`."""
    if isinstance(value, dt.date):
        with translation.override("pl" if language.startswith("pl") else "en"):
            if isinstance(value, dt.datetime):
                return dateformat.format(timezone.localtime(value), "j E Y, H:i")
            return dateformat.format(value, "j E Y")
    return param_in(value, language)


class DomainError(Exception):
    """A refusal by a business rule. Nothing was changed when it is raised."""

    def __init__(
        self,
        code: str,
        *,
        status: int | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> None:
        if code not in MESSAGES:
            raise KeyError(f"undeclared error code {code!r}: add it to apps.core.errors.MESSAGES")
        self.code = code
        self.params = params
        self.field = field
        self.status = status or MESSAGES[code][0]
        self.headers = headers or {}  # HTTP headers of the API answer (Retry-After, ...)
        super().__init__(self.message_in("en"))

    def message_in(self, language: str, audience: str = "patient") -> str:
        _, pl, en = MESSAGES[self.code]
        if audience == "facility" and self.code in FACILITY_MESSAGES:
            pl, en = FACILITY_MESSAGES[self.code]
        template = pl if language.startswith("pl") else en
        try:
            return template.format(**{k: message_param(v, language) for k, v in self.params.items()})
        except (KeyError, IndexError):
            return template

    @property
    def message(self) -> str:
        return self.message_in(translation.get_language() or "pl")
