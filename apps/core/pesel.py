"""PESEL, the Polish national identification number: validation and (for tests and demo data) generation.

Structure YYMMDDZZZXQ: the month carries the century (+80 for 1800s, +0 1900s, +20 2000s, +40 2100s,
+60 2200s), X (10th digit) is odd for men and even for women, Q is the check digit with weights
1-3-7-9 repeated. Source: ustawa o ewidencji ludności, art. 15; MSWiA description of the number.
A PESEL is personal data: never put it in a URL or a log line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

WEIGHTS = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
_CENTURY_OFFSETS = {0: 1900, 20: 2000, 40: 2100, 60: 2200, 80: 1800}


# The reasons a PESEL is refused, in Polish (the English phrase is the key and the exception text).
REASONS_PL = {
    "it must be exactly 11 digits": "musi mieć dokładnie 11 cyfr",
    "wrong check digit": "błędna cyfra kontrolna",
    "impossible month": "niemożliwy miesiąc",
    "impossible date of birth": "niemożliwa data urodzenia",
    "the sex digit does not match the declared sex": "cyfra płci nie zgadza się z podaną płcią",
}


class InvalidPesel(ValueError):
    """`reason` is a short English phrase (a key of REASONS_PL); `reason_pl` the same in Polish."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.reason_pl = REASONS_PL[reason]
        super().__init__(reason)


@dataclass(frozen=True)
class PeselInfo:
    pesel: str
    birth_date: dt.date
    sex: str  # "M" or "F"


def check_digit(first_ten: str) -> int:
    total = sum(int(d) * w for d, w in zip(first_ten, WEIGHTS, strict=True))
    return (10 - total % 10) % 10


def parse(value: str, *, sex: str | None = None) -> PeselInfo:
    """Validate a PESEL and return what it encodes; `sex` (M/F), if given, must match the sex digit."""
    if not isinstance(value, str) or len(value) != 11 or not value.isascii() or not value.isdigit():
        raise InvalidPesel("it must be exactly 11 digits")
    if check_digit(value[:10]) != int(value[10]):
        raise InvalidPesel("wrong check digit")
    yy, mm, dd = int(value[0:2]), int(value[2:4]), int(value[4:6])
    offset = (mm // 20) * 20
    if offset not in _CENTURY_OFFSETS:
        raise InvalidPesel("impossible month")
    try:
        birth = dt.date(_CENTURY_OFFSETS[offset] + yy, mm - offset, dd)
    except ValueError:
        raise InvalidPesel("impossible date of birth") from None
    encoded_sex = "M" if int(value[9]) % 2 else "F"
    if sex is not None and sex != encoded_sex:
        raise InvalidPesel("the sex digit does not match the declared sex")
    return PeselInfo(pesel=value, birth_date=birth, sex=encoded_sex)


def is_valid(value: str) -> bool:
    try:
        parse(value)
    except InvalidPesel:
        return False
    return True


def generate(birth_date: dt.date, sex: str, serial: int) -> str:
    """A valid PESEL for a birth date, sex and serial number 0..4999 (for demo and test data)."""
    if not 0 <= serial < 5000:
        raise ValueError("serial must be 0..4999")
    offset = next(o for o, base in _CENTURY_OFFSETS.items() if base <= birth_date.year < base + 100)
    ordinal = int(f"{serial % 1000:03d}{(serial // 1000) * 2 + (1 if sex == 'M' else 0)}")
    first_ten = f"{birth_date.year % 100:02d}{birth_date.month + offset:02d}{birth_date.day:02d}{ordinal:04d}"
    return first_ten + str(check_digit(first_ten))


def mask(value: str) -> str:
    """What may be shown or logged: the last 4 digits only."""
    return "*******" + value[-4:] if value else ""
