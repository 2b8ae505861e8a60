"""Error codes of the reconciliation context.

They belong in `apps.core.errors.MESSAGES` (the lead moves them there); until then they are registered
from here on import, so `DomainError(code)` works and every code still has both languages.
"""

from __future__ import annotations

from apps.core.errors import MESSAGES

RECONCILIATION_MESSAGES: dict[str, tuple[int, str, str]] = {
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
}

for _code, _message in RECONCILIATION_MESSAGES.items():
    MESSAGES.setdefault(_code, _message)
