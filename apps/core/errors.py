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
    "cursor_expired": (
        410,
        "Kursor wskazuje zdarzenia starsze niż przechowywane: część zdarzeń po nim już usunięto.",
        "The cursor is older than the events kept: some events after it are no longer kept.",
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
    "external_id_taken": (
        409,
        "Twoja placówka ma już harmonogram o identyfikatorze zewnętrznym {external_id} (id {existing}).",
        "Your facility already has a schedule with the external id {external_id} (id {existing}).",
    ),
    # --- the HTTP protocol of every API (raised by the framework, not by a business rule) ---
    "malformed_request": (
        400,
        "Treść żądania nie jest poprawnym JSON-em (UTF-8, bez znaków NUL, zagnieżdżenie do 32 poziomów).",
        "The request body is not valid JSON (UTF-8, no NUL characters, nesting up to 32 levels).",
    ),
    "bad_request": (400, "Żądanie jest niepoprawne.", "The request is not valid."),
    "authentication_failed": (
        401,
        "Token dostępu jest niepoprawny, wygasł albo dane dostępowe odwołano.",
        "The access token is invalid or expired, or the credentials were revoked.",
    ),
    "not_authenticated": (
        401,
        "Brak danych uwierzytelniających: wyślij nagłówek Authorization: Bearer z tokenem.",
        "No credentials: send Authorization: Bearer with an access token.",
    ),
    "forbidden": (
        403,
        "Twój token nie ma zakresu uprawnień wymaganego przez tę operację.",
        "Your token lacks the scope this operation needs.",
    ),
    "method_not_allowed": (
        405,
        "Ta metoda HTTP nie jest dostępna pod tym adresem (zobacz nagłówek Allow).",
        "This HTTP method is not available at this address (see the Allow header).",
    ),
    "not_acceptable": (
        406,
        "Odpowiedź jest dostępna tylko jako application/json.",
        "The response is only available as application/json.",
    ),
    "payload_too_large": (413, "Treść żądania jest zbyt duża.", "The request body is too large."),
    "unsupported_media_type": (
        415,
        "Nagłówek Content-Type musi mieć wartość application/json.",
        "Content-Type must be application/json.",
    ),
    "server_error": (
        500,
        "Błąd wewnętrzny; został zapisany. Ponów żądanie z tym samym Idempotency-Key.",
        "Internal error; it has been logged. Retry with the same Idempotency-Key.",
    ),
    "service_unavailable": (
        503,
        "CeR jest chwilowo niedostępna. Ponów żądanie po czasie z nagłówka Retry-After.",
        "The service is temporarily unavailable. Retry after the time in Retry-After.",
    ),
    "signature_invalid": (
        401,
        "Podpis żądania jest niepoprawny albo jego znacznik czasu jest nieaktualny.",
        "The request signature is invalid or its timestamp is stale.",
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
    # --- patient pages: acting for another person (apps.patients.services.acting_check) ---
    "acting_not_allowed": (
        403,
        "Nie możesz działać w imieniu tej osoby: rejestr pacjentów nie wskazuje Cię jako jej rodzica, "
        "opiekuna prawnego ani osoby upoważnionej. Nic nie zostało zmienione.",
        "You cannot act for this person: the patient registry does not name you as their parent, legal "
        "guardian or authorised person. Nothing was changed.",
    ),
    "acting_child_adult": (
        403,
        "Ta osoba jest pełnoletnia od {date}: rodzic ani opiekun prawny nie działa już w jej imieniu. "
        "Może ona sama umawiać wizyty albo upoważnić Cię w Internetowym Koncie Pacjenta. Nic nie zostało "
        "zmienione.",
        "This person has been of age since {date}: a parent or legal guardian no longer acts for them. "
        "They can book for themselves or authorise you in their Internet Patient Account. Nothing was "
        "changed.",
    ),
    "acting_authorisation_expired": (
        403,
        "Upoważnienie do działania w imieniu tej osoby wygasło {date}. Może ona udzielić nowego w "
        "Internetowym Koncie Pacjenta. Nic nie zostało zmienione.",
        "The authorisation to act for this person expired on {date}. They can give a new one in their "
        "Internet Patient Account. Nothing was changed.",
    ),
}


# What a caller does about each code (docs/errors.md, generated by `manage.py errors_catalogue`).
ACTIONS: dict[str, str] = {
    "validation_error": "Correct the fields named in `errors` and send the request again.",
    "not_found": "Check the path and the id: ids of other facilities are never visible.",
    "unknown_service": "Use a service code from GET /api/v1/services.",
    "service_not_covered": "Choose a date within the service's coverage (GET /api/v1/services).",
    "invalid_pesel": "Check the PESEL (11 digits, valid date and check digit).",
    "slot_not_found": "Use a slot id of your facility (GET /api/v1/slots).",
    "reconciliation_busy": "Wait for the running reconciliation to finish, then start again.",
    "reconciliation_run_state": "Only a pending or failed run can be started; create a new run.",
    "invalid_period": "Give the period as YYYY-MM.",
    "import_unreadable": "Export the file again in the documented format (docs/reconciliation.md).",
    "justification_required": "Write a justification for the override.",
    "override_unchanged": "Nothing to do: the verdict already has this value.",
    "reconciliation_period_open": "Reconcile the period after it has ended.",
    "invalid_idempotency_key": "Send 1-255 printable ASCII characters, e.g. a UUID.",
    "idempotency_key_reused": "Use a new Idempotency-Key for a different request.",
    "idempotency_in_progress": "Retry the same request with the same key in a moment.",
    "rate_limited": "Wait the seconds in Retry-After; spread requests using the RateLimit header.",
    "invalid_cursor": "Send the `next` value of the previous page unchanged, or start without a cursor.",
    "cursor_expired": (
        "Re-read what you need (bookings, schedules, waiting-list entries), then poll without a cursor."
    ),
    "precondition_required": "GET the resource and send its ETag in If-Match.",
    "invalid_scope": "Ask only for scopes listed in the message.",
    "invalid_expiry": "Give a validity of 1 to 3650 days.",
    "api_client_not_found": "Check the API client id.",
    "api_client_inactive": "Ask NFZ for new credentials.",
    "schedule_not_found": "Use a schedule id of your facility (GET /api/v1/schedules).",
    "practitioner_not_found": "Use a practitioner of your facility.",
    "webhook_not_found": "Use a subscription id from GET /api/v1/webhooks.",
    "delivery_not_found": "Use a delivery id from GET /api/v1/webhooks/{id}/deliveries.",
    "patient_not_found": "Send `patient` with the first and last name confirmed at your desk.",
    "generate_until_too_far": "Generate at most two years ahead.",
    "visits_batch_too_large": "Split the visits into several requests.",
    "facility_forbidden": "Report only visits of your own facility.",
    "precondition_failed": "GET the resource again and retry with its current ETag.",
    "slot_in_past": "Choose a slot that has not started yet.",
    "slot_not_free": "Choose another free slot (GET /api/v1/slots?status=free).",
    "hold_expired": "Choose the slot again.",
    "hold_not_yours": "Choose another slot.",
    "active_registration_exists": "Reschedule or cancel the patient's existing registration.",
    "referral_required": "Send referral_number and its 4-digit referral_code.",
    "referral_invalid": "Check the e-referral number and its access code.",
    "referral_used": "The patient needs a new e-referral.",
    "referral_expired": "The patient needs a new e-referral.",
    "referral_wrong_service": "Book the service the e-referral is for.",
    "referral_registered": "Cancel the other registration that holds the e-referral first.",
    "referral_locked": "Wait the minutes given, then check the number and code.",
    "slot_kind_mismatch": "Book a slot of kind `first` for a first visit.",
    "not_eligible_sex": "The screening programme does not cover this patient.",
    "not_eligible_age": "The screening programme does not cover this patient's age.",
    "not_eligible_interval": "Book on or after the date given.",
    "booking_not_found": "Use a booking id of your facility (GET /api/v1/bookings).",
    "booking_state": "GET the booking: it has ended or moved (see `rescheduled_to`).",
    "outcome_too_early": "Report the outcome once the visit has started.",
    "waitlist_entry_not_found": "Use an entry id you registered.",
    "waitlist_entry_not_waiting": "If the patient was given a booking, cancel that booking.",
    "waitlist_window_invalid": "Give a window from today to at most the number of days stated.",
    "waitlist_preference_unknown": "Use codes from the catalogue (TERYT, SIMC, NFZ facility code).",
    "unknown_entitlement": "Use a code from GET /api/v1/entitlements.",
    "entitlement_not_valid": "Send an entitlement document valid today.",
    "schedule_overlap": "Publish slots that do not overlap the existing ones.",
    "reason_required": "Send a reason code from GET /api/v1/reason-codes.",
    "unknown_reason": "Use a reason code of the right kind from GET /api/v1/reason-codes.",
    "facility_not_contracted": "Publish only services and periods of your NFZ contract.",
    "slot_beyond_horizon": "Publish slots at most the number of days stated ahead.",
    "webhook_target_refused": "Use an https URL on a public address and an allowed port.",
    "slot_too_long": "Publish shorter slots.",
    "external_id_taken": "Use the existing schedule (its id is given) or another external id.",
    "malformed_request": "Send a valid JSON body.",
    "bad_request": "Check the request line and headers.",
    "authentication_failed": "Get a new access token from /api/v1/oauth/token/.",
    "not_authenticated": "Send Authorization: Bearer <access token>.",
    "forbidden": "Ask NFZ for the scope, then get a new token that includes it.",
    "method_not_allowed": "Use one of the methods in the Allow header.",
    "not_acceptable": "Accept application/json (or */*).",
    "payload_too_large": "Send a smaller body.",
    "unsupported_media_type": "Send Content-Type: application/json.",
    "server_error": "Retry with the same Idempotency-Key; report the X-Request-ID if it persists.",
    "service_unavailable": "Retry after the seconds in Retry-After (same Idempotency-Key for writes).",
    "signature_invalid": "Sign the exact body with the shared secret and a current timestamp.",
    "fhir_unknown_parameter": "Use only the search parameters in the CapabilityStatement.",
    "fhir_invalid_parameter": "Correct the parameter's value.",
    "fhir_resource_not_found": "Check the resource type and id.",
    "fhir_unsupported": "Use an interaction listed in the CapabilityStatement.",
    "opendata_invalid_parameter": "Correct the parameter's value (docs/open-data.md).",
    "extract_not_found": "Use an extract listed on the extracts page.",
    "acting_not_allowed": 'Choose yourself or a person listed under "Booking for".',
    "acting_child_adult": "The person books for themselves, or authorises you in their IKP.",
    "acting_authorisation_expired": "Ask the person for a new authorisation in their IKP.",
}

# Secondary texts of API answers (field errors, the reason of an authentication failure): composed in
# the response's one language like the messages above. key -> (Polish, English).
TEXTS: dict[str, tuple[str, str]] = {
    "unknown_field": ("Nieznane pole.", "Unknown field."),
    "see_errors": ("Zobacz `errors` przy każdym polu.", "See `errors` for each field."),
    "date_bounds": ("Musi być między {low} a {high}.", "Must be between {low} and {high}."),
    "utc_offset": (
        "Przesunięcie względem UTC musi mieścić się w +/-15:59.",
        "The UTC offset must be within +/-15:59.",
    ),
    "authorization_malformed": ("Niepoprawny nagłówek Authorization.", "Malformed Authorization header."),
    "token_invalid": (
        "Token dostępu jest niepoprawny albo wygasł.",
        "The access token is invalid or expired.",
    ),
    "credentials_inactive": (
        "Dane dostępowe API wygasły albo zostały odwołane.",
        "The API credentials are expired or revoked.",
    ),
    "scope_missing": ("Ta operacja wymaga zakresu {scope}.", "This operation needs the scope {scope}."),
    "after_start_time": ("Musi być później niż start_time.", "Must be after start_time."),
    "not_before_valid_from": ("Nie może być wcześniej niż valid_from.", "Must not be before valid_from."),
    "not_before_date_from": ("Nie może być wcześniej niż date_from.", "Must not be before date_from."),
    "day_in_past": ("Ten dzień już minął.", "The day is in the past."),
    "expected_slot_list": (
        "Oczekiwano listy {{start, end, kind}}.",
        "Expected a list of {{start, end, kind}}.",
    ),
    "at_least_one_slot": ("Co najmniej jeden termin.", "At least one slot."),
    "at_most_slots": ("Najwyżej {limit} terminów w jednym żądaniu.", "At most {limit} slots per request."),
    "expected_visit_list": ("Oczekiwano listy wizyt.", "Expected a list of visits."),
    "at_least_one_visit": ("Co najmniej jedna wizyta.", "At least one visit."),
    "https_only": ("Adres webhooka musi używać https.", "Webhook URLs must use https."),
    "unknown_event_type": (
        "Nieznany typ zdarzenia: {value}. Typy: {known}.",
        "Unknown event type: {value}. Types: {known}.",
    ),
}


def text(key: str, **params: Any) -> str:
    """A secondary text in the active language (the response's one language)."""
    pl, en = TEXTS[key]
    template = pl if (translation.get_language() or "pl").startswith("pl") else en
    return template.format(**params)


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


class _Params(dict):
    def __missing__(self, key: str) -> str:
        return "…"


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
        # The text is made when asked for (`__str__`): formatting dates in a language is most of the
        # cost of a refusal, and the waiting list judges many candidates whose refusals nobody reads.
        super().__init__(code)

    def __str__(self) -> str:
        return self.message_in("en")

    def message_in(self, language: str, audience: str = "patient") -> str:
        _, pl, en = MESSAGES[self.code]
        if audience == "facility" and self.code in FACILITY_MESSAGES:
            pl, en = FACILITY_MESSAGES[self.code]
        template = pl if language.startswith("pl") else en
        # A parameter a raise did not give reads "…", never a raw "{placeholder}".
        return template.format_map(_Params({k: message_param(v, language) for k, v in self.params.items()}))

    @property
    def message(self) -> str:
        return self.message_in(translation.get_language() or "pl")


# Codes no facility-system API answers with (staff pages, the SMS gateway's callback, FHIR, open data):
# the catalogue lists them in their own section, the OpenAPI document leaves them out.
OTHER_INTERFACES: dict[str, tuple[str, ...]] = {
    "Staff pages (reconciliation, API clients)": (
        "reconciliation_busy",
        "reconciliation_run_state",
        "invalid_period",
        "import_unreadable",
        "justification_required",
        "override_unchanged",
        "reconciliation_period_open",
        "invalid_scope",
        "invalid_expiry",
        "api_client_not_found",
        "api_client_inactive",
        "extract_not_found",
    ),
    "FHIR read API (/fhir/)": (
        "fhir_unknown_parameter",
        "fhir_invalid_parameter",
        "fhir_resource_not_found",
        "fhir_unsupported",
    ),
    "Open data (/opendata/)": ("opendata_invalid_parameter",),
    "SMS gateway callback": ("signature_invalid",),
    "Patient pages (acting for another person)": (
        "acting_not_allowed",
        "acting_child_adult",
        "acting_authorisation_expired",
    ),
}


def catalogue_entry(code: str) -> dict[str, Any]:
    status, pl, en = MESSAGES[code]
    if code in FACILITY_MESSAGES:
        pl, en = FACILITY_MESSAGES[code]
    return {"code": code, "status": status, "what_to_do": ACTIONS[code], "pl": pl, "en": en}


def api_codes() -> list[str]:
    """The codes of the facility integration API (/api/v1/), in the registry's order."""
    other = {code for codes in OTHER_INTERFACES.values() for code in codes}
    return [code for code in MESSAGES if code not in other]


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def catalogue_markdown() -> str:
    """docs/errors.md, generated from this registry (`make manage ARGS=errors_catalogue`); a test keeps
    the file equal to it."""
    lines = [
        "# Error catalogue",
        "",
        "<!-- Generated from apps/core/errors.py by `make manage ARGS=errors_catalogue`; do not edit. -->",
        "",
        "Every refusal is RFC 9457 `application/problem+json` with a stable `code`:",
        "",
        "```json",
        '{"type": "https://cer.nfz.gov.pl/problems/slot_not_free", "title": "...", "status": 409,',
        ' "code": "slot_not_free", "detail": "...", "instance": "<X-Request-ID>"}',
        "```",
        "",
        "- `type` ends with the code; its anchor in this page is the code itself (`#slot_not_free`).",
        "- `title` and `detail` are in one language, chosen by `Accept-Language` (`pl` by default, `en`).",
        "  `detail` may name the occurrence (a date, a service); `params` carries those values.",
        "- `errors` (400) names each invalid field; `instance` is the request id (`X-Request-ID`): quote it",
        "  when asking NFZ about one request.",
        "- The OpenAPI document lists, for each operation and status, the codes it may answer.",
        "- `{name}` in a text below stands for a value of the occurrence (also in `params`); an answer",
        "  never shows the braces.",
        "- `GET /problems/<code>` answers the entry of one code as JSON (what `type` points to).",
        "",
    ]

    def table(codes: list[str]) -> None:
        lines.append("| code | HTTP | what to do | Polish | English |")
        lines.append("| --- | --- | --- | --- | --- |")
        for code in codes:
            status, pl, en = MESSAGES[code]
            if code in FACILITY_MESSAGES:
                pl, en = FACILITY_MESSAGES[code]
            anchor = f'<a id="{code}"></a>`{code}`'
            lines.append(f"| {anchor} | {status} | {_cell(ACTIONS[code])} | {_cell(pl)} | {_cell(en)} |")
        lines.append("")

    lines += ["## Facility integration API (`/api/v1/`)", ""]
    table(sorted(api_codes(), key=lambda c: (MESSAGES[c][0], c)))
    for heading, codes in OTHER_INTERFACES.items():
        lines += [f"## {heading}", ""]
        table(sorted(codes, key=lambda c: (MESSAGES[c][0], c)))
    return "\n".join(lines)
