"""The API's JSON parser, bounded (issue 15): size, nesting depth, numbers and text PostgreSQL can store.

DRF's `JSONParser` reads the whole stream and recurses without limit: a body of 100,000 `[` raised
RecursionError (a 500 on any write), a lone surrogate ("\\ud800") failed the UTF-8 encoding of the
answer, a NUL cannot be stored in text or jsonb, and 2**70 overflows a bigint column. Each is refused
here as a malformed request (400) before any view sees the data.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32
INT_RANGE = (-(2**63), 2**63 - 1)


def text_is_storable(value: str) -> bool:
    """Neither NUL nor a lone surrogate: what PostgreSQL text and jsonb (and UTF-8) can hold."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _int(text: str) -> int:
    value = int(text)
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise ValueError("integer out of range")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_bounded(data: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise ValueError for nesting deeper than `max_depth` or text that cannot be stored. Iterative."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not text_is_storable(item):
                raise ValueError("text must be valid Unicode without NUL characters")
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, value in item.items():
                    stack.append((key, depth + 1))
                    stack.append((value, depth + 1))
            else:
                stack.extend((value, depth + 1) for value in item)


def loads_bounded(raw: bytes, *, encoding: str = "utf-8") -> Any:
    try:
        text = raw.decode(encoding)
        data = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except (UnicodeDecodeError, LookupError) as exc:
        raise ValueError(f"not {encoding} text") from exc
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    check_bounded(data)
    return data


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1 if limit is not None else -1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        try:
            return loads_bounded(raw, encoding=encoding)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
