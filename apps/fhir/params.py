"""FHIR search parameters parsed strictly: an unknown parameter, a malformed date or a count out of
range is a 400 OperationOutcome, never silently ignored and never a 500 (dates from year 0001 to
9999, NUL bytes and lone surrogates included)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django.http import QueryDict

from apps.core.errors import DomainError
from apps.integration.selectors import cursor_decode

WARSAW = ZoneInfo("Europe/Warsaw")
DEFAULT_COUNT = 50
MAX_COUNT = 500
COMMON = frozenset({"_count", "_cursor", "_format"})


def _bad(name: str) -> DomainError:
    return DomainError("fhir_invalid_parameter", field=name, name=name)


def check_known(query: QueryDict, allowed: frozenset[str]) -> None:
    for name in query:
        if name not in allowed | COMMON:
            safe = name[:40].encode("utf-8", "backslashreplace").decode("utf-8")
            raise DomainError("fhir_unknown_parameter", field=safe, name=safe)


def single(query: QueryDict, name: str) -> str | None:
    values = query.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise _bad(name)
    value = values[0]
    if "\x00" in value or len(value) > 200:
        raise _bad(name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(name) from None
    return value


def count(query: QueryDict) -> int:
    raw = single(query, "_count")
    if raw is None:
        return DEFAULT_COUNT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_COUNT:
        raise _bad("_count")
    return int(raw)


def cursor(query: QueryDict, kinds: tuple[type, ...]) -> tuple[Any, ...] | None:
    raw = single(query, "_cursor")
    if raw is None:
        return None
    try:
        return cursor_decode(raw, types=kinds)
    except DomainError:
        raise _bad("_cursor") from None


def _instant(name: str, text: str) -> dt.datetime:
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            value = dt.datetime.combine(day, dt.time(), tzinfo=WARSAW)
        else:
            value = dt.datetime.fromisoformat(text)
            if value.tzinfo is None:
                value = value.replace(tzinfo=WARSAW)
        value.astimezone(dt.UTC)  # year 0001 or 9999 with an offset would overflow later
        return value
    except (ValueError, OverflowError):
        raise _bad(name) from None


def date_range(query: QueryDict, name: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """`name=geX` and/or `name=ltY` (FHIR date prefixes; the two this server supports)."""
    lower = upper = None
    values = query.getlist(name)
    if len(values) > 2:
        raise _bad(name)
    for raw in values:
        if "\x00" in raw or len(raw) > 40:
            raise _bad(name)
        prefix, text = raw[:2], raw[2:]
        if prefix == "ge" and lower is None:
            lower = _instant(name, text)
        elif prefix == "lt" and upper is None:
            upper = _instant(name, text)
        else:
            raise _bad(name)
    return lower, upper


def token_code(raw: str, *, system: str, name: str) -> str:
    """A token search value: `code` or `system|code` with our system."""
    if "|" in raw:
        given_system, code = raw.split("|", 1)
        if given_system not in ("", system):
            raise _bad(name)
        raw = code
    if not raw:
        raise _bad(name)
    return raw


def reference_id(raw: str, *, resource: str, name: str) -> int:
    if raw.startswith(f"{resource}/"):
        raw = raw[len(resource) + 1 :]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise _bad(name)
    return int(raw)
